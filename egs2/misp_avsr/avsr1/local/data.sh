#!/usr/bin/env bash
# Stage 1 for one <set>_<field>: MISP TextGrids -> Kaldi data dir, then validation.
#   local/data.sh --misp_root DIR --name train_far [--data_dir data] [--cmd utils/run_local.sh]
# The prep report (kept/dropped interval counts) lands in <data_dir>/<name>/prep_report.json.
set -euo pipefail

misp_root=""
name=""
data_dir=data
cmd=utils/run_local.sh
python=python
max_drop_frac=0.1   # stop when data errors (overlaps, duplicate ids ...) drop more of the intervals
. ./path.sh   # run on its own (from the recipe dir) it finds our venv too
help_message="Usage: local/data.sh --misp_root DIR --name <set>_<field> [--data_dir data] [--cmd launcher] [--max_drop_frac F]"
. utils/parse_options.sh

[ -n "${misp_root}" ] || { echo "$0: --misp_root is required" >&2; exit 1; }
split_field="$("${python}" -m espnet_avsr.bin.experiment set_name "${name}")" \
    || { echo "$0: bad --name '${name}' (the error above)" >&2; exit 1; }
read -r set_ field <<< "${split_field}"
[ -d "${misp_root}/transcription/${set_}" ] \
    || { echo "$0: no ${misp_root}/transcription/${set_} (is --misp_root a MISP release?)" >&2; exit 1; }
[ -d "${misp_root}/audio/${set_}/${field}" ] \
    || { echo "$0: no ${misp_root}/audio/${set_}/${field}: MISP ships no ${field} audio for ${set_}" >&2; exit 1; }

out="${data_dir}/${name}"
see_log() {   # a hint that names the log only when it was written
    if [ -s "$1" ]; then echo "see $1"; else echo "no log was written at $1 (the job did not start; see the messages above)"; fi
}
${cmd} "${out}/log/prepare.log" \
    "${python}" -m espnet_avsr.bin.prepare_misp_data --misp_root "${misp_root}" \
        --set "${set_}" --field "${field}" --out "${out}" \
    || { echo "$0: data preparation failed, $(see_log "${out}/log/prepare.log")" >&2; exit 1; }
${cmd} "${out}/log/validate.log" "${python}" -m espnet_avsr.bin.validate_data_dir "${out}" \
    || { echo "$0: ${out} does not validate, $(see_log "${out}/log/validate.log")" >&2; exit 1; }
if ! "${python}" -m espnet_avsr.bin.check_losses --log_level WARNING --stage prep --out "${out}" \
        --set "${name}" --max_frac "${max_drop_frac}"; then
    mv -f "${out}/text" "${out}/text.over_bound"
    echo "$0: ${name} lost too many intervals (counts above; report ${out}/prep_report.json)" >&2; exit 1
fi
echo "$0: ${out}: $(wc -l < "${out}/text") utterances, $(wc -l < "${out}/wav.scp") recordings"
