#!/usr/bin/env bash
# The stages of the MISP AVSR recipe. run.sh sets the experiment, this script runs it.
# Every stage is re-runnable: finished units leave done-markers under ${expdir}/.done
# and are skipped next time (--force_stage "N ..." redoes whole stages).
set -euo pipefail
# The body is one { ... } block: bash parses it whole before running, so editing this
# file while a long run is going cannot derail that run.
{

help_message=$(cat <<'EOF'
Usage: ./avsr.sh [options]   (every option below as --name value or --name=value)

Stages (--stage N --stop_stage M; ESPnet asr.sh stage in brackets, README "Stage map"):
   0 synthetic corpus                [-]      7 collect stats          [10]
   1 data preparation                [1]      8 train audio-only       [11]
   2 audio front-end (far/middle)    [-]      9 train audio-visual     [11]
   3 lip ROIs                        [-]     10 decode + score         [12, 13]
   4 speed perturbation              [2]     11 report                 [-]
   5 dumps + A/V check               [3, 4]  12 pack (espnet2.bin.pack) [14]
   6 token list                      [5]
--skip_data_prep / --skip_train / --skip_eval / --skip_packing true skip 0-6 / 7-9 / 10-11 / 12
(packing is skipped by default, as in asr.sh); --skip_stages "N ..." skips any stages.
Decodes land in exp/<model>/<inference tag>/<set>[_miss<rate>_<pattern>] (--inference_tag, --decode_mode).
EOF
)
# --help lists every option between "# <options>" and "# </options>" with its default.
options_from="$0"
# ESPnet asr.sh names for our variables (both names work).
option_aliases="inference_nj=decode_nj inference_asr_model=best_model asr_args=train_args"

# <options>
# ---- general
stage=0                # first stage to run
stop_stage=100         # last stage to run
force_stage=""         # redo these stages ("N ...") even where done-markers exist
nj=4                   # parallel jobs of the data stages
decode_nj=""           # parallel decoding jobs (default: nj)
ngpu=0                 # training devices (N > 1: DDP through ESPnet)
use_amp=""             # mixed precision: true | false | empty = each training config's use_amp decides
cmd_backend="${cmd_backend:-local}"   # job launcher: local | slurm (cmd.sh)
train_threads=""     # CPU threads of a training job (default: all cores when --ngpu 0, else 1)
python=python          # interpreter of every Python step
skip_data_prep=false   # skip stages 0-6 (ESPnet: skip_data_prep)
skip_train=false       # skip stages 7-9 (ESPnet: skip_train)
skip_eval=false        # skip stages 10-11 (ESPnet: skip_eval)
skip_packing=true      # skip stage 12, packing every model (ESPnet: skip_packing, same default)
skip_stages=""         # stages never run, e.g. "3 10" (ESPnet: skip_stages)
show_options=false     # print every option's value after parsing and exit
# ---- corpus
misp_root=""           # real MISP release; empty = synthetic corpus (or MISP_ROOT in db.sh)
corpus_dir=corpus      # where stage 0 writes the synthetic corpus
hours=0.1              # size of the synthetic corpus
corpus_seed=0          # seed of the synthetic corpus
corpus_preset=demo   # make_mini_misp --preset: tiny | demo | bench | full
corpus_args=""         # extra make_mini_misp options
# ---- data
train_set=train_far    # <set>_<field> names
valid_set=dev_far
test_sets="eval_far"   # space separated
frontend=wpe_ds        # far/middle arrays: wpe_ds | wpe_mvdr | ds | mvdr | first_channel | none
frontend_args=""       # extra enhance_audio options
speed_perturb_factors="0.9 1.0 1.1"   # empty disables
token_type=char        # char | bpe
nbpe=500               # BPE size (token_type bpe)
data_dir=data
dumpdir=dump
expdir=exp
# ---- models: one per line (or space separated): name:config:init[:teacher]
#      init "-" = from scratch; "A0" (an audio-only model) = init_avsr;
#      "A0+V0" = the same plus the video branch from a lip reader V0 (encoder: video_conformer);
#      "AVk" = --init_param of that model's checkpoint. teacher = KD teacher model.
models="A0:conf/train_asr.yaml:-"   # name:config:init[:teacher], one per line or word
asr_config=""          # ESPnet style: train this one config instead of --models (init "-")
asr_tag=""             # name of the --asr_config model (default: the config's file name)
# The paper's dropout study: one extra AV model per rate, named AVd<rate>, trained with that
# fraction of video frames dropped in every sample (configs derived from dropout_study_config
# into ${expdir}/conf/). Empty = no study. E.g. --dropout_study_rates "0.1 0.3 0.5 0.7"
dropout_study_rates=""
dropout_study_config=conf/train_avsr.yaml   # base config of the study models
dropout_study_init=A0  # init model of the study models (their dropped frames get --test_missing_fill)
# Training seeds, e.g. "0 1": each model is trained once per seed; seed 0 keeps the plain name,
# seed k > 0 names the model, its init chain and its teacher <name>_s<k> (--seeds 1 alone: V0_s1).
seeds=""               # training seeds, e.g. "0 1" (empty = ESPnet's default seed, one run)
seed_jobs=1            # seeds trained side by side (each seed's chain in list order; on CPU they share the cores)
train_args=""          # extra ESPnet training options for every model, e.g. "--max_epoch 5"
speech_fold_length=80000   # samples (5 s); longer utterances halve the batch
text_fold_length=150
video_fold_length=125      # frames (5 s at 25 fps)
best_model=valid.acc.ave.pth   # checkpoint decoded and packed (falls back to best/latest)
# ---- decoding and tests
inference_config=""    # one decode config for every model (default: the two below by model kind)
asr_decode_config=conf/decode_asr.yaml    # decode config of audio-only models
avsr_decode_config=conf/decode_avsr.yaml  # decode config of audio-visual models and lip readers
inference_args=""      # extra decoding options, e.g. "--beam_size 5"
inference_tag=""       # decode dir name (ESPnet's); empty = derived from decode config, args, model file
decode_mode=beam       # beam (joint CTC/attention beam search) | ctc_greedy (CTC best path)
gpu_inference=false    # decode on a GPU (one per decoding job)
use_lm=false           # ESPnet name; this recipe trains no language model, true is refused
test_missing_rates="0 0.25 0.5 0.75 1.0"   # fractions of video frames dropped at test time
test_missing_pattern=random   # pattern of the dropped frames (data.missing_video PATTERNS)
test_missing_fill=""   # fill of the missing frames (default zeros)
vsr_missing_rates="0"  # rates a lip reader is decoded at; 1.0 with --test_missing_fill black = its decoder's grammar alone (local/lip_calibration.sh)
test_missing_seed=0    # seed of the missing-frame simulation
test_snrs="0 -5"       # babble noise SNRs of the noisy test sets (empty or none = none)
noise_missing_rates="0"    # missing rates decoded on the babble-noise sets (paper: complete video)
noise_test_sets=""     # test sets given babble noise (default: the first test set; none = no babble sets)
babble_source=""       # babble talkers (data dir / wav.scp); empty = held-out bank (make_babble_bank)
noise_seed=0           # seed of the noise mixing
relative_ref=A0            # audio-only model for relative CER and representation similarity (per seed: A0_s<k>)
claims_test_set=""         # test set of the claims table (default: the last of --test_sets)
rep_similarity_samples=64  # utterances for the similarity matrices, on the claims test set (0 = skip)
report_args=""         # extra make_report options
# ---- packing (stage 12)
pack_args=""           # extra espnet_avsr.bin.avsr_pack options
# ---- reliability (docs/RELIABILITY.md)
max_drop_frac=0.2          # a data stage (1, 3, 5) stops when it drops more of the training set
max_drop_frac_eval=0.1     # ... or more of a dev/eval set (stricter: these sets are scored)
skip_bad_videos=false      # stage 3: skip (and count) the utterances of unreadable videos instead of stopping
video_fps_policy=refuse    # stage 3, a video not at 25 fps: refuse | map (40 ms frames to its frames nearest in time)
train_fresh=false          # stages 8-9: move aside an exp/<name> trained with other settings (default: stop naming them)
# </options>

. ./path.sh
. ./db.sh
misp_root="${MISP_ROOT:-}"
. utils/parse_options.sh
. ./cmd.sh
. local/stage_lib.sh

[ $# -eq 0 ] || die "unexpected arguments: $* (options are --name value)"
[ -n "${decode_nj}" ] || decode_nj="${nj}"
# ESPnet-style options that set ours: one decode config, one model, skip switches.
[ "${use_lm}" = false ] || die "--use_lm true: this recipe has no language model stage (asr.sh 6-9)"
if [ -n "${inference_config}" ]; then
    [ -f "${inference_config}" ] || die "--inference_config ${inference_config} does not exist"
    asr_decode_config="${inference_config}"; avsr_decode_config="${inference_config}"
fi
if [ -n "${asr_config}" ]; then
    [ -f "${asr_config}" ] || die "--asr_config ${asr_config} does not exist"
    [ -n "${asr_tag}" ] || asr_tag="$(basename "${asr_config}" .yaml)"
    models="${asr_tag}:${asr_config}:-"
fi
[ "${skip_data_prep}" = true ] && skip_stages+=" 0 1 2 3 4 5 6"
[ "${skip_train}" = true ] && skip_stages+=" 7 8 9"
[ "${skip_eval}" = true ] && skip_stages+=" 10 11"
[ "${skip_packing}" = true ] && skip_stages+=" 12"
if [ "${show_options}" = true ]; then
    print_options "${options_from}"
    exit 0
fi
# "none" turns the babble sets off (an empty --noise_test_sets means the first test set)
if [ "${noise_test_sets}" = none ] || [ "${test_snrs}" = none ]; then noise_test_sets=""; test_snrs=""; fi
case "${decode_mode}" in beam|ctc_greedy) ;; *) die "--decode_mode takes beam or ctc_greedy, got '${decode_mode}'" ;; esac
case "${use_amp}" in ""|true|false) ;; *) die "--use_amp takes true or false (or empty: the config decides), got '${use_amp}'" ;; esac
[[ "${seed_jobs}" =~ ^[1-9][0-9]*$ ]] || die "--seed_jobs takes a positive integer, got '${seed_jobs}'"
train_jobs="$(wc -w <<< "${seeds}")"   # training jobs at once: one per seed, at most --seed_jobs
[ "${train_jobs}" -ge 1 ] || train_jobs=1
[ "${train_jobs}" -le "${seed_jobs}" ] || train_jobs="${seed_jobs}"
if [ -z "${train_threads}" ]; then   # CPU training jobs share every core; on GPUs one thread each
    train_threads=1
    if [ "${ngpu}" -eq 0 ]; then   # nproc obeys OMP_NUM_THREADS, which path.sh pins to 1
        train_threads=$(( $(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1) / train_jobs ))
        [ "${train_threads}" -ge 1 ] || train_threads=1
    fi
fi
marker_dir="${expdir}/.done"
mkdir -p "${expdir}" "${marker_dir}"
# One run per experiment folder: a second one would race on the same markers and outputs.
# The lock is held by this process (and the jobs it starts) until they exit.
lock_file="${expdir}/.avsr.lock"
exec {lock_fd}>>"${lock_file}"
if ! flock -n "${lock_fd}"; then
    die "another avsr.sh run holds ${lock_file} ($(cat "${lock_file}" 2>/dev/null || echo 'holder unknown')); wait for it to finish or stop it first"
fi
echo "pid $$ on $(hostname), started $(date '+%Y-%m-%d %H:%M:%S') in $(pwd)" > "${lock_file}"
root_dir="$(pwd)"

# ------------------------------------------------------------------ helpers
# Value of a top-level or nested key in a YAML config ("" when absent).
yaml_get() { "${python}" -m espnet_avsr.bin.experiment value "$1" "$2"; }

# The model list, parsed and checked once in Python (espnet_avsr/common/experiment.py, model_list):
# the entries of --models, then the dropout-study models (one config per rate derived into
# ${expdir}/conf), then one copy of the list per seed. It writes ${expdir}/models.tsv, one row per
# model as it will be trained (name, config, init, teacher, seed, base name without the seed
# suffix, kind, study rate; "-" = none), and every model's ${expdir}/<name>/meta.json, the record
# the report reads. The kind comes from the config's model/encoder/video_frontend keys: asr (stock
# ESPnet ASR), vsr (lip reader, encoder: video_conformer), adapter (model: ms_adapter, trains
# adapters on its frozen init model), avsr; missing = no config.
check_configs=()
if [ "${stop_stage}" -ge 7 ] && [ "${stage}" -le 11 ]; then   # fail before hours of data prep
    check_configs=(--check_configs)
fi
"${python}" -m espnet_avsr.bin.experiment models --models "${models}" --seeds "${seeds}" \
    --dropout_study_rates "${dropout_study_rates}" --dropout_study_config "${dropout_study_config}" \
    --dropout_study_init "${dropout_study_init}" --dropout_study_fill "${test_missing_fill:-zeros}" \
    --conf_dir "${expdir}/conf" "${check_configs[@]}" \
    --out "${expdir}/models.tsv" --exp "${expdir}" \
    || die "cannot use the model list (--models, --seeds, --dropout_study_*): see the error above"
names=(); configs=(); inits=(); teachers=(); kinds=()
declare -A model_seed=() model_base=() study_rate=()
study_models=""
while IFS=$'\t' read -r _n _c _i _t _s _b _k _r; do
    names+=("${_n}"); configs+=("${_c}"); inits+=("${_i}"); teachers+=("${_t}"); kinds+=("${_k}")
    model_base["${_n}"]="${_b}"
    [ "${_s}" = - ] || model_seed["${_n}"]="${_s}"
    if [ "${_r}" != - ]; then study_rate["${_n}"]="${_r}"; study_models+=" ${_n}"; fi
done < "${expdir}/models.tsv"
unset _n _c _i _t _s _b _k _r

model_index() {
    local i
    for i in "${!names[@]}"; do [ "${names[$i]}" = "$1" ] && { echo "$i"; return 0; }; done
    die "model '$1' is referenced but not declared in --models"
}
# The kind of a model (its config's keys, models.tsv): asr = stock ESPnet ASR (audio only).
is_asr_model() { [ "${kinds[$(model_index "$1")]}" = asr ]; }
# Lip readers (encoder: video_conformer) pre-train the video branch: init "A0+V0".
is_vsr_model() { [ "${kinds[$(model_index "$1")]}" = vsr ]; }
# MS-Adapter models decode as base checkpoint + --adapter_file.
is_adapter_model() { [ "${kinds[$(model_index "$1")]}" = adapter ]; }

# The checkpoint a finished model is used through: --best_model, else the first present of
# espnet_avsr's CHECKPOINTS (averaged n-best, best, latest), the order avsr_pack uses too.
checkpoint_names="$("${python}" -m espnet_avsr.bin.experiment checkpoints)" || die "cannot list the checkpoint names"
find_checkpoint() {   # find_checkpoint <model>: prints it, or returns 1 quietly
    local d="${expdir}/$1" f
    for f in "${best_model}" ${checkpoint_names}; do
        [ -e "${d}/${f}" ] && { echo "${d}/${f}"; return 0; }
    done
    return 1
}
model_checkpoint() {
    find_checkpoint "$1" || die "no checkpoint of model $1 in ${expdir}/$1 (train it first: stages 8-9)"
}


set_part() { echo "${1%_*}"; }     # eval_far -> eval
set_field() { echo "${1##*_}"; }   # eval_far -> far

# Data dir with the (enhanced) audio of a prepared set.
audio_dir() {
    local f; f="$(set_field "$1")"
    if [ "${frontend}" != none ] && { [ "${f}" = far ] || [ "${f}" = middle ]; }; then
        echo "${data_dir}/$1_${frontend}"
    else
        echo "${data_dir}/$1"
    fi
}

# Number of parallel parts for a data dir: at most nj, at most its recordings.
n_parts() {
    local n; n=$(wc -l < "$1/wav.scp")
    [ "${n}" -lt "$2" ] && echo "${n}" || echo "$2"
}

# split_dir <data dir> <n>: the split<n> parts (by recording), made once.
split_dir() {
    if [ ! -f "$1/split$2/$2/wav.scp" ] || [ "$1/split$2/$2/wav.scp" -ot "$1/wav.scp" ]; then
        "${python}" -m espnet_avsr.bin.split_data_dir --log_level WARNING "$1" "$2" >/dev/null
    fi
}

# Sorted union of a file over parts: merge_parts <out> <part files...>
merge_parts() {
    local out="$1"; shift
    local f
    for f in "$@"; do [ -f "${f}" ] || die "missing part output ${f}"; done
    cat "$@" | sort -k1,1 -u > "${out}.tmp" && mv "${out}.tmp" "${out}"
}

prepared_sets() {   # unique <set>_<field> names the experiment needs
    echo "${train_set} ${valid_set} ${test_sets}" | tr ' ' '\n' | awk 'NF && !s[$0]++'
}

train_name() {      # the dump name of the training data
    if [ -n "${speed_perturb_factors}" ]; then echo "${train_set}_sp"; else echo "${train_set}"; fi
}

max_drop_of() {     # max_drop_of <set or dump name>: the drop bound of that set
    case "$1" in "${train_set}"|"${train_set}_sp") echo "${max_drop_frac}" ;; *) echo "${max_drop_frac_eval}" ;; esac
}
# bound_losses <prep|roi|dump> <out dir> <in dir|-> <set> <output to withdraw>: stop when the stage
# dropped more of the set than its bound; the output is renamed *.over_bound so no later stage uses it.
bound_losses() {
    local in=(); [ "$3" = - ] || in=(--in "$3")
    if ! "${python}" -m espnet_avsr.bin.check_losses --log_level WARNING --stage "$1" --out "$2" "${in[@]}" \
            --set "$4" --max_frac "$(max_drop_of "$4")"; then
        mv -f "$5" "$5.over_bound"
        die "stage ${_stage_now}: $4 lost too many utterances (counts above; report in $2)"
    fi
}

# ------------------------------------------------------------------ stage 0
if [ -z "${misp_root}" ]; then
    if stage_begin 0 "synthetic MISP-format corpus (${hours} h, seed ${corpus_seed}) -> ${corpus_dir}"; then
        # keyed by its options: other ones rerun the generator, which refuses to mix corpora in one folder
        keyed --opt "hours=${hours}" --opt "seed=${corpus_seed}" --opt "preset=${corpus_preset}" --opt "args=${corpus_args}"
        unit corpus "${corpus_dir}/transcription" \
            ${train_cmd} "${expdir}/logs/make_mini_misp.log" \
            "${python}" -m espnet_avsr.bin.make_mini_misp --out "${corpus_dir}" \
                --hours "${hours}" --seed "${corpus_seed}" --nj "${nj}" \
                --preset "${corpus_preset}" --no_progress ${corpus_args}
        stage_end
    fi
    root="${corpus_dir}"
else
    [ -d "${misp_root}" ] || die "--misp_root ${misp_root} is not a directory"
    root="${misp_root}"
fi

# ------------------------------------------------------------------ stage 1
if stage_begin 1 "data preparation: TextGrids -> ${data_dir}/{$(prepared_sets | paste -sd,)}"; then
    root_abs="$(cd "${root}" 2>/dev/null && pwd)" || die "corpus ${root} does not exist (run stage 0, or give --misp_root)"
    for x in $(prepared_sets); do
        # keyed by the corpus files of this set and field: another --misp_root or a changed file reruns it
        keyed --opt "misp_root=${root_abs}" --opt "max_drop_frac=$(max_drop_of "${x}")" \
            --tree "transcription=${root_abs}/transcription/$(set_part "${x}")" \
            --tree "audio=${root_abs}/audio/$(set_part "${x}")/$(set_field "${x}")" \
            --tree "video=${root_abs}/video/$(set_part "${x}")" --tree "detection=${root_abs}/detection/$(set_part "${x}")"
        clears "${data_dir}/${x}"
        unit "prep_${x}" "${data_dir}/${x}/text" \
            local/data.sh --misp_root "${root}" --name "${x}" --data_dir "${data_dir}" \
                --cmd "${train_cmd}" --python "${python}" --max_drop_frac "$(max_drop_of "${x}")"
    done
    stage_end
fi

# ------------------------------------------------------------------ stage 2
part_list() {   # part_list <prefix> <n>: "<prefix>1 ... <prefix>n"
    local j
    for j in $(seq "$2"); do echo "$1${j}"; done
}
merge_dirs() {  # merge_dirs <out dir> <part dirs...> (the inverse of split_data_dir)
    "${python}" -m espnet_avsr.bin.split_data_dir --log_level WARNING --merge "$@"
}
enhance_set() {   # enhance_set <set_field>
    local x="$1" src="${data_dir}/$1" dst wavs="${dumpdir}/enhanced/$1_${frontend}"
    dst="$(audio_dir "$1")"
    local n; n="$(n_parts "${src}" "${nj}")"
    split_dir "${src}" "${n}"
    rm -rf "${dst}"
    ${train_cmd} JOB=1:"${n}" "${dst}.log/enhance.JOB.log" \
        "${python}" -m espnet_avsr.bin.enhance_audio --data "${src}/split${n}/JOB" \
            --out "${wavs}" --out_data "${wavs}/data.JOB" --method "${frontend}" ${frontend_args}
    # shellcheck disable=SC2046
    merge_dirs "${dst}" $(part_list "${wavs}/data." "${n}")
    mkdir -p "${dst}/log" && mv "${dst}.log"/* "${dst}/log/" && rmdir "${dst}.log"
    "${python}" -m espnet_avsr.bin.validate_data_dir --log_level WARNING "${dst}"
}
if stage_begin 2 "audio front-end (${frontend}) for far/middle sets"; then
    for x in $(prepared_sets); do
        [ "$(audio_dir "${x}")" = "${data_dir}/${x}" ] && continue
        keyed --opt "frontend=${frontend}" --opt "frontend_args=${frontend_args}" \
            --data "src=${data_dir}/${x}@wav.scp,channels.scp"
        clears "${dumpdir}/enhanced/${x}_${frontend}" "$(audio_dir "${x}")"   # its kept wavs too
        unit "enhance_${x}_${frontend}" "$(audio_dir "${x}")/wav.scp" enhance_set "${x}"
    done
    stage_end
fi

# ------------------------------------------------------------------ stage 3
roi_set() {   # roi_set <set_field>
    local x="$1" src="${data_dir}/$1" out="${dumpdir}/roi/$1"
    local n; n="$(n_parts "${src}" "${nj}")"
    split_dir "${src}" "${n}"
    rm -f "${out}/roi.scp"
    local skip=()
    [ "${skip_bad_videos}" = true ] && skip=(--skip_bad_videos)
    ${train_cmd} JOB=1:"${n}" "${out}/log/extract_lip_roi.JOB.log" \
        "${python}" -m espnet_avsr.bin.extract_lip_roi --data "${src}/split${n}/JOB" \
            --out "${out}" --scp_dir "${out}/part.JOB" --video_fps_policy "${video_fps_policy}" "${skip[@]}"
    # shellcheck disable=SC2046
    merge_dirs "${out}" $(part_list "${out}/part." "${n}")
    log_msg "${out}: $(wc -l < "${out}/roi.scp") ROI sequences for $(wc -l < "${src}/text") utterances"
    bound_losses roi "${out}" "${src}" "${x}" "${out}/roi.scp"
}
if stage_begin 3 "lip ROIs (detection JSON + MP4 -> 96x96 grey .npy)"; then
    for x in $(prepared_sets); do
        # the data dir lists the videos and detection JSONs: a fixed JSON changes the key
        keyed --opt "skip_bad_videos=${skip_bad_videos}" --opt "video_fps_policy=${video_fps_policy}" --opt "max_drop=$(max_drop_of "${x}")" --data "src=${data_dir}/${x}"
        clears "${dumpdir}/roi/${x}"   # its kept .npy too
        unit "roi_${x}" "${dumpdir}/roi/${x}/roi.scp" roi_set "${x}"
    done
    stage_end
fi

# ------------------------------------------------------------------ stage 4
sp_dir="$(audio_dir "${train_set}")_sp"
if [ -n "${speed_perturb_factors}" ] && stage_begin 4 "speed perturbation of ${train_set} (${speed_perturb_factors})"; then
    keyed --opt "factors=${speed_perturb_factors}" --data "audio=$(audio_dir "${train_set}")" \
        --data "roi=${dumpdir}/roi/${train_set}"
    clears "${sp_dir}" "${dumpdir}/roi/${train_set}_sp"
    # shellcheck disable=SC2086
    unit "sp_${train_set}" "${sp_dir}/roi.scp" \
        ${train_cmd} "${sp_dir}/log/speed_perturb.log" \
        "${python}" -m espnet_avsr.bin.speed_perturb --data "$(audio_dir "${train_set}")" \
            --roi_scp "${dumpdir}/roi/${train_set}/roi.scp" \
            --out "${sp_dir}" --roi_out "${dumpdir}/roi/${train_set}_sp" \
            --factors ${speed_perturb_factors}
    stage_end
fi

# ------------------------------------------------------------------ stage 5
dump_set() {   # dump_set <audio data dir> <roi.scp> <dump name>
    local src="$1" roi="$2" out="${dumpdir}/raw/$3"
    # no lip ROI: dropped from the training dump; kept in dev/eval as video entirely missing
    local no_roi=mark
    if [ "$3" = "$(train_name)" ]; then no_roi=drop; fi
    local n; n="$(n_parts "${src}" "${nj}")"
    split_dir "${src}" "${n}"
    rm -f "${out}/wav.scp"
    ${train_cmd} JOB=1:"${n}" "${out}/log/make_dump.JOB.log" \
        "${python}" -m espnet_avsr.bin.make_dump --data "${src}/split${n}/JOB" --out "${out}" \
            --scp_dir "${out}/part.JOB" --roi_scp "${roi}" --no_roi "${no_roi}"
    # shellcheck disable=SC2046
    merge_dirs "${out}" $(part_list "${out}/part." "${n}")
    ${train_cmd} "${out}/log/check_dump.log" \
        "${python}" -m espnet_avsr.bin.check_dump --dump "${out}" --json_out "${out}/check_dump.json" \
        || die "audio/video frames disagree in ${out}, $(see_log "${out}/log/check_dump.log")"
    log_msg "${out}: $(wc -l < "${out}/wav.scp") utterances dumped from $(wc -l < "${src}/text")"
    bound_losses dump "${out}" "${src}" "$3" "${out}/wav.scp"
}
if stage_begin 5 "dumps (per-utterance wav + ROI scp) and audio/video agreement check"; then
    dump_key() {   # dump_key <audio data dir> <roi dir> <dump name>: key and clear list of one dump
        local no_roi=mark
        [ "$3" = "$(train_name)" ] && no_roi=drop
        keyed --opt "no_roi=${no_roi}" --opt "max_drop=$(max_drop_of "$3")" --data "audio=$1" --data "roi=$2"
        clears "${dumpdir}/raw/$3"   # its kept wavs too
    }
    if [ -n "${speed_perturb_factors}" ]; then
        dump_key "${sp_dir}" "${sp_dir}" "$(train_name)"
        unit "dump_$(train_name)" "${dumpdir}/raw/$(train_name)/wav.scp" \
            dump_set "${sp_dir}" "${sp_dir}/roi.scp" "$(train_name)"
    fi
    for x in $(prepared_sets); do
        [ -n "${speed_perturb_factors}" ] && [ "${x}" = "${train_set}" ] && continue
        dump_key "$(audio_dir "${x}")" "${dumpdir}/roi/${x}" "${x}"
        unit "dump_${x}" "${dumpdir}/raw/${x}/wav.scp" dump_set "$(audio_dir "${x}")" "${dumpdir}/roi/${x}/roi.scp" "${x}"
    done
    stage_end
fi

token_dir="${data_dir}/token_list/${token_type}"
token_list="${token_dir}/tokens.txt"
bpemodel=none
[ "${token_type}" = bpe ] && bpemodel="${token_dir}/bpe.model"

# ------------------------------------------------------------------ stage 6
if stage_begin 6 "token list (${token_type}) from ${dumpdir}/raw/$(train_name)/text"; then
    _bpe_args=""
    [ "${token_type}" = bpe ] && _bpe_args="--nbpe ${nbpe}"
    unit "tokens_${token_type}" "${token_list}" \
        "${python}" -m espnet_avsr.bin.make_token_list --text "${dumpdir}/raw/$(train_name)/text" \
            --out "${token_list}" --token_type "${token_type}" ${_bpe_args}
    stage_end
fi

# ESPnet data options of each task: <prefix>_data_path_and_name_and_type for a dump.
data_opts() {   # data_opts <train|valid|data> <dump name> <asr|avsr>
    local d="${dumpdir}/raw/$2" o="--$1_data_path_and_name_and_type"
    [ "$1" = data ] && o="--data_path_and_name_and_type"
    echo "${o} ${d}/wav.scp,speech,sound"
    [ "$3" = avsr ] && echo "${o} ${d}/roi.scp,video,npy"
    [ "$1" != data ] && echo "${o} ${d}/text,text,text"
    return 0
}
train_module() { [ "$1" = asr ] && echo espnet2.bin.asr_train || echo espnet_avsr.bin.avsr_train; }
token_opts() {
    echo "--use_preprocessor true --token_type ${token_type} --token_list ${token_list} --bpemodel ${bpemodel}"
}

# ------------------------------------------------------------------ stage 7
collect_stats() {   # collect_stats <asr|avsr> <config>
    local task="$1" config="$2" out="${expdir}/$1_stats_${token_type}"
    local n; n="$(wc -l < "${dumpdir}/raw/$(train_name)/wav.scp")"
    [ "${n}" -lt "${nj}" ] || n="${nj}"
    local nv; nv="$(wc -l < "${dumpdir}/raw/${valid_set}/wav.scp")"
    [ "${nv}" -lt "${n}" ] && n="${nv}"
    mkdir -p "${out}/logdir"
    split_keys "${dumpdir}/raw/$(train_name)/wav.scp" "${n}" "${out}/logdir/train"
    split_keys "${dumpdir}/raw/${valid_set}/wav.scp" "${n}" "${out}/logdir/valid"
    # shellcheck disable=SC2046
    ${train_cmd} JOB=1:"${n}" "${out}/logdir/stats.JOB.log" \
        "${python}" -m "$(train_module "${task}")" --collect_stats true $(token_opts) --normalize none \
            --config "${config}" --ngpu 0 --num_workers 0 \
            $(data_opts train "$(train_name)" "${task}") $(data_opts valid "${valid_set}" "${task}") \
            --train_shape_file "${out}/logdir/train.JOB.scp" \
            --valid_shape_file "${out}/logdir/valid.JOB.scp" \
            --output_dir "${out}/logdir/stats.JOB"
    local dirs=()
    for j in $(seq "${n}"); do dirs+=(--input_dir "${out}/logdir/stats.${j}"); done
    "${python}" -m espnet2.bin.aggregate_stats_dirs "${dirs[@]}" --output_dir "${out}"
    # ESPnet's samplers want the vocabulary size on the text shapes.
    local v; v=$(wc -l < "${token_list}")
    for s in train valid; do
        awk -v N="${v}" '{ print $0 "," N }' "${out}/${s}/text_shape" > "${out}/${s}/text_shape.${token_type}"
    done
}
split_keys() {   # split_keys <scp> <n> <prefix>: <prefix>.<j>.scp round-robin key lists
    awk -v n="$2" -v p="$3" '{ print $1 > (p "." ((NR - 1) % n + 1) ".scp") }' "$1"
}
first_config_of() {   # config of the first asr / avsr model (its frontend decides the stats)
    local i
    for i in "${!names[@]}"; do
        if [ "$1" = asr ] && is_asr_model "${names[$i]}"; then echo "${configs[$i]}"; return; fi
        if [ "$1" = avsr ] && ! is_asr_model "${names[$i]}"; then echo "${configs[$i]}"; return; fi
    done
}
if stage_begin 7 "collect stats (feature statistics and shape files)"; then
    for task in asr avsr; do
        cfg="$(first_config_of "${task}")"
        [ -n "${cfg}" ] || continue
        unit "stats_${task}" "${expdir}/${task}_stats_${token_type}/train/text_shape.${token_type}" \
            collect_stats "${task}" "${cfg}"
    done
    stage_end
fi

# ------------------------------------------------------------------ stages 8, 9
# reuse_twin <name>: a model whose training inputs (config content, init and teacher checkpoints,
# seed, --train_args: what train_inputs compares) equal those of a model of the list already
# trained is not trained again; its folder gets hard links to the twin's files (its own
# meta.json stays) and TWIN.txt names the twin. In the paper preset the study's AVd0.5 is AV1
# (same config content, A0+V0 start, seed): ~28 min of wall time with both seeds on 2 cores.
reuse_twin() {
    local i; i="$(model_index "$1")"
    local name="$1" out="${expdir}/$1" j twin f recorded=()
    [ -e "${out}/train_inputs.json" ] && return 1   # begun already: it resumes its own run
    recorded_args "${name}"
    for j in "${!names[@]}"; do
        twin="${names[$j]}"
        [ "${twin}" != "${name}" ] && [ "${kinds[$j]}" = "${kinds[$i]}" ] || continue
        [ "${inits[$j]}" = "${inits[$i]}" ] && [ "${teachers[$j]}" = "${teachers[$i]}" ] || continue
        [ "${model_seed[${twin}]:-}" = "${model_seed[${name}]:-}" ] || continue
        unit_is_done "train_${twin}" "${expdir}/${twin}/config.yaml" || continue
        "${python}" -m espnet_avsr.bin.train_inputs --exp "${expdir}/${twin}" --config "${configs[$i]}" \
            --init "${inits[$i]}" --teacher "${teachers[$i]}" --train_args "${train_args}" "${recorded[@]}" \
            > /dev/null 2>&1 || continue
        mkdir -p "${out}"
        for f in "${expdir}/${twin}"/*; do
            case "$(basename "${f}")" in meta.json|TWIN.txt) continue ;; esac
            cp -al "${f}" "${out}/" 2>/dev/null || cp -a "${f}" "${out}/"   # a copy across file systems
        done
        echo "${name} is ${twin}: the same training inputs (config content, init, teacher, seed, train_args), so its files link to ${expdir}/${twin}" \
            > "${out}/TWIN.txt"
        log_msg "model ${name}: trained already as ${twin} (the same training inputs); ${out} links to its files"
        return 0
    done
    return 1
}
train_model() {   # train_model <name>
    local i; i="$(model_index "$1")"
    local name="$1" config="${configs[$i]}" init="${inits[$i]}" teacher="${teachers[$i]}"
    local task=avsr; is_asr_model "${name}" && task=asr
    local stats="${expdir}/${task}_stats_${token_type}" out="${expdir}/${name}"
    [ -f "${config}" ] || die "config ${config} of model ${name} does not exist"
    reuse_twin "${name}" && return 0
    mkdir -p "${out}"
    local recorded=(); recorded_args "${name}"
    "${python}" -m espnet_avsr.bin.train_inputs --record --exp "${out}" --config "${config}" \
        --init "${init}" --teacher "${teacher}" --train_args "${train_args}" "${recorded[@]}" \
        || die "cannot record the training settings of model ${name} (see the error above)"
    local extra=()
    if [ "$(yaml_get "${config}" normalize)" = global_mvn ]; then
        extra+=(--normalize_conf "stats_file=${stats}/train/feats_stats.npz")
    fi
    if [ "${init}" != - ]; then
        # "A0+V0": audio side from an audio-only model, video branch from a lip reader
        local vsr_opts=() init_vsr=""
        if [[ "${init}" == *+* ]]; then
            init_vsr="${init#*+}"; init="${init%%+*}"   # types checked when the list is parsed
            vsr_opts=(--vsr_model_file "$(model_checkpoint "${init_vsr}")")
        fi
        local src; src="$(model_checkpoint "${init}")"
        if is_asr_model "${init}" && [ "${task}" = avsr ]; then
            # an audio-only model initialises the audio branch, encoder and decoder
            "${python}" -m espnet_avsr.bin.init_avsr --asr_model_file "${src}" "${vsr_opts[@]}" \
                --asr_train_config "${expdir}/${init}/config.yaml" --token_list "${token_list}" \
                --avsr_config "${config}" --out "${out}/init.pth" > "${out}/init_avsr.log" 2>&1 \
                || die "init_avsr failed, see ${out}/init_avsr.log"
            extra+=(--init_param "${out}/init.pth")
        else
            extra+=(--init_param "${src}")
        fi
    fi
    [ -z "${model_seed[${name}]:-}" ] || extra+=(--seed "${model_seed[${name}]}")
    if [ "${teacher}" != - ]; then
        extra+=(--model_conf "teacher_model_file=$(model_checkpoint "${teacher}")"
                --model_conf "teacher_config=${expdir}/${teacher}/config.yaml")
    fi
    # --use_amp only when given: on ESPnet's command line it would override the config's use_amp
    [ -n "${use_amp}" ] && extra+=(--use_amp "${use_amp}")
    if [ "${ngpu}" -gt 1 ]; then
        rm -f "${out}/.dist_init"
        extra+=(--multiprocessing_distributed true --dist_init_method "file://${root_dir}/${out}/.dist_init")
    fi
    local stats_opts=(
        --train_shape_file "${stats}/train/speech_shape"
        --train_shape_file "${stats}/train/text_shape.${token_type}"
        --valid_shape_file "${stats}/valid/speech_shape"
        --valid_shape_file "${stats}/valid/text_shape.${token_type}"
    )
    # folded batches: one fold length per shape file (samples, tokens, video frames)
    stats_opts+=(--fold_length "${speech_fold_length}" --fold_length "${text_fold_length}")
    if [ "${task}" = avsr ] && [ -f "${stats}/train/video_shape" ]; then
        stats_opts+=(--train_shape_file "${stats}/train/video_shape"
                     --valid_shape_file "${stats}/valid/video_shape"
                     --fold_length "${video_fold_length}")
    fi
    # a resumed run keeps the earlier runs' logs (their per-epoch results): train.log -> train.<k>.log
    if [ -s "${out}/train.log" ]; then
        local k=1
        while [ -e "${out}/train.${k}.log" ]; do k=$((k + 1)); done
        mv "${out}/train.log" "${out}/train.${k}.log"
    fi
    log_msg "training ${name} (${task}, config ${config}, init ${inits[$i]}, teacher ${teacher}); log ${out}/train.log"
    # shellcheck disable=SC2046
    ${cuda_cmd} --gpu "${ngpu}" --num_threads "${train_threads}" "${out}/train.log" \
        "${python}" -m "$(train_module "${task}")" --config "${config}" $(token_opts) \
            $(data_opts train "$(train_name)" "${task}") $(data_opts valid "${valid_set}" "${task}") \
            "${stats_opts[@]}" --resume true --ngpu "${ngpu}" \
            --output_dir "${out}" "${extra[@]}" ${train_args} \
        || die "training ${name} failed, $(see_log "${out}/train.log")"
    model_checkpoint "${name}" > /dev/null
}
# recorded_args <name>: appends to the caller's array recorded what train_inputs records beside the
# config: "--source <model>=<checkpoint>" for each model <name> starts from or learns from (init,
# both halves of "A0+V0", teacher) that has a checkpoint, so a retrained A0, V0 or teacher is
# noticed by content; and "--seed <k>" when the model has a training seed.
recorded_args() {
    local i; i="$(model_index "$1")"
    local m ckpt
    for m in ${inits[$i]//+/ } ${teachers[$i]}; do
        [ "${m}" = - ] && continue
        if ckpt="$(find_checkpoint "${m}")"; then recorded+=(--source "${m}=${ckpt}"); fi
    done
    # the seed too: a checkpoint of one seed is never continued with another
    [ -z "${model_seed[$1]:-}" ] || recorded+=(--seed "${model_seed[$1]}")
}
# check_train_inputs <name>: exp/<name> trained with other settings (config content, init, teacher,
# the content of their checkpoints, --train_args) is never resumed nor skipped as done: stop
# naming them, or move it aside (--train_fresh).
check_train_inputs() {
    local i; i="$(model_index "$1")"
    local out="${expdir}/$1" rc=0 diff recorded=()
    recorded_args "$1"
    diff="$("${python}" -m espnet_avsr.bin.train_inputs --exp "${out}" --config "${configs[$i]}" \
        --init "${inits[$i]}" --teacher "${teachers[$i]}" --train_args "${train_args}" "${recorded[@]}")" || rc=$?
    [ "${rc}" -eq 0 ] && return 0
    [ "${rc}" -eq 3 ] || die "cannot compare the training settings of model $1 (see the error above)"
    log_msg "model $1: ${out} was trained with other settings:"
    echo "${diff}" | sed 's/^/    /' >&2
    if [ "${train_fresh}" = true ]; then
        local old; old="${out}.replaced_$(date '+%Y%m%d_%H%M%S')"
        mv "${out}" "${old}"
        # meta.json describes the model of the list (written at start), not the one moved aside
        mkdir -p "${out}" && mv "${old}/meta.json" "${out}/meta.json"
        rm -f "$(_marker_path "train_$1")"
        log_msg "--train_fresh true: moved it to ${old}; training $1 afresh"
    else
        die "model $1: ${out} was trained with other settings (listed above); use a new model name, or --train_fresh true to move it aside and train afresh"
    fi
}
# train_chain <asr|av> <seed>: the stage's models of one seed ("" = no --seeds), in list order.
train_chain() {
    local name
    for name in "${names[@]}"; do
        [ "${model_seed[${name}]:-}" = "$2" ] || continue
        if [ "$1" = asr ]; then is_asr_model "${name}" || continue; else is_asr_model "${name}" && continue; fi
        check_train_inputs "${name}"
        unit "train_${name}" "${expdir}/${name}/config.yaml" train_model "${name}"
    done
}
# train_stage <asr|av>: every seed's chain; with --seed_jobs > 1 the chains run side by side (a
# seed's models never init from or learn from another seed's), at most --seed_jobs at once.
train_stage() {
    local s n running=() failed=0 chains=()
    for n in "${names[@]}"; do
        s="${model_seed[${n}]:-}"
        [[ " ${chains[*]} " == *" ${s:-none} "* ]] || chains+=("${s:-none}")
    done
    if [ "${train_jobs}" -le 1 ]; then
        for s in "${chains[@]}"; do train_chain "$1" "${s#none}"; done
        return 0
    fi
    log_msg "training the chains of seeds ${chains[*]} side by side (${train_jobs} at once, ${train_threads} thread(s) each)"
    for s in "${chains[@]}"; do
        if [ "${#running[@]}" -ge "${train_jobs}" ]; then
            wait "${running[0]}" || failed=1
            running=("${running[@]:1}")
        fi
        ( train_chain "$1" "${s#none}" ) &
        running+=("$!")
    done
    for n in "${running[@]}"; do wait "${n}" || failed=1; done
    [ "${failed}" -eq 0 ] || die "a seed's training chain failed (its error is above)"
}
if stage_begin 8 "train audio-only models (stock ESPnet ASR)"; then
    train_stage asr
    stage_end
fi
if stage_begin 9 "train audio-visual models (in list order)"; then
    train_stage av
    stage_end
fi

# ------------------------------------------------------------------ stage 10
# The babble-noise copies of the test sets, named here from what they are (which set, which SNR):
# noise_src / noise_snr keep those facts for the stages, mix_noise records them in each copy's
# set.json for scoring, and nothing parses the names back.
noise_list=()
declare -A noise_src=() noise_snr=()
for _x in ${noise_test_sets:-${test_sets%% *}}; do
    for _s in ${test_snrs}; do
        noise_list+=("${_x}_babble${_s}"); noise_src["${_x}_babble${_s}"]="${_x}"; noise_snr["${_x}_babble${_s}"]="${_s}"
    done
done
unset _x _s
noise_sets() { [ "${#noise_list[@]}" -eq 0 ] || printf '%s\n' "${noise_list[@]}"; }   # their dump names
is_noise_set() { [ -n "${noise_src[$1]:-}" ]; }
make_noise_set() {   # make_noise_set <noise set>: babble at noise_snr into the dump of noise_src
    local x="$1" src_babble="${babble_source}"
    if [ -z "${src_babble}" ]; then   # held-out talkers: voices and text never in training
        src_babble="${expdir}/babble_bank"
        [ -f "${src_babble}/.complete" ] || ${train_cmd} "${expdir}/logs/make_babble_bank.log" \
            "${python}" -m espnet_avsr.bin.make_babble_bank --out "${src_babble}" --seed "${noise_seed}" \
            || die "make_babble_bank failed, see ${expdir}/logs/make_babble_bank.log"
    fi
    ${train_cmd} "${expdir}/logs/mix_noise_${x}.log" \
        "${python}" -m espnet_avsr.bin.mix_noise --data "${dumpdir}/raw/${noise_src[${x}]}" \
            --out "${dumpdir}/raw/${x}" --snr "${noise_snr[${x}]}" --noise babble \
            --babble_source "${src_babble}" --seed "${noise_seed}"
}

# Decode directories, ESPnet style: ${expdir}/<model>/<inference tag>/<set>[_miss<rate>_<pattern>].
# The tag is derived from what decides the hypotheses (decode config, --inference_args, decode mode,
# missing-video fill and seed, the checkpoint file), so changed settings decode into a new directory;
# decode_settings in it records the rest (config contents, checkpoint identity) and a mismatch redoes it.
decode_config_of() { if is_asr_model "$1"; then echo "${asr_decode_config}"; else echo "${avsr_decode_config}"; fi; }
decode_root_of() {   # decode_root_of <model>
    local tag="${inference_tag}"
    if [ -z "${tag}" ]; then
        tag="$(basename "$(decode_config_of "$1")" .yaml)"
        [ -n "${inference_args}" ] && tag+="$(echo "${inference_args}" | sed -e 's/--/_/g' -e 's/[ |=]//g')"
        [ "${decode_mode}" = beam ] || tag+="_${decode_mode}"
        if ! is_asr_model "$1"; then
            [ -n "${test_missing_fill}" ] && tag+="_fill${test_missing_fill}"
            [ "${test_missing_seed}" = 0 ] || tag+="_mseed${test_missing_seed}"
        fi
        tag+="_$(basename "$(model_checkpoint "$1")" .pth)"
    fi
    echo "${expdir}/$1/${tag}"
}
decode_dir_of() {   # decode_dir_of <model> <test> <rate|->
    local root; root="$(decode_root_of "$1")"
    if [ "$3" = - ]; then echo "${root}/$2"; else echo "${root}/$2_miss$3_${test_missing_pattern}"; fi
}
decode_conditions_of() {   # decode_conditions_of <model>: "<test> <rate|->" per line
    local test rate
    for test in ${test_sets} $(noise_sets); do
        if is_vsr_model "$1"; then   # a lip reader: clean sets only, complete video unless asked
            is_noise_set "${test}" && continue
            for rate in ${vsr_missing_rates}; do echo "${test} ${rate}"; done
        elif [ -n "${study_rate[$1]:-}" ] && is_noise_set "${test}"; then
            continue   # the dropout study is read on the clean sets only (no claim uses its babble)
        elif is_asr_model "$1"; then
            echo "${test} -"
        else
            rates="${test_missing_rates}"
            if is_noise_set "${test}"; then rates="${noise_missing_rates}"; fi
            for rate in ${rates}; do echo "${test} ${rate}"; done
        fi
    done
}
decode_settings() {   # decode_settings <model>: everything a decode of this model depends on
    local ckpt; ckpt="$(model_checkpoint "$1")"
    echo "decode_config $(decode_config_of "$1")"
    cat "$(decode_config_of "$1")"
    echo "inference_args ${inference_args}"
    echo "decode_mode ${decode_mode}"
    # the missing-video settings only touch models that see video (an audio-only decode stays valid)
    is_asr_model "$1" || echo "missing ${test_missing_pattern} ${test_missing_fill:-zeros} ${test_missing_seed}"
    echo "checkpoint ${ckpt#"${expdir}/"} $(stat -L -c '%s %Y' "${ckpt}")"
    if is_adapter_model "$1"; then
        local base; base="$(model_checkpoint "${inits[$(model_index "$1")]}")"
        echo "base ${base#"${expdir}/"} $(stat -L -c '%s %Y' "${base}")"
    fi
}
# Checkpoints are recorded as <model>/<file> (their identity is size and time), so a decode stays
# valid when the experiment folder is moved or its models are linked into another one; records
# written with the folder's path in front read the same.
settings_key() { sed -E 's#^(checkpoint|base) ([^ ]*/)?([^/ ]+/[^/ ]+) #\1 \3 #'; }
score_condition() {   # score_condition <model> <test> <rate|-> <decode dir> <jobs>
    local name="$1" dir="$4" n="$5" d="${dumpdir}/raw/$2"
    # shellcheck disable=SC2046
    merge_parts "${dir}/text" $(for j in $(seq "${n}"); do echo "${dir}/logdir/output.${j}/1best_recog/text"; done)
    # the facts of the score: the test set's (set.json) and the decode condition's (condition.json,
    # written by decode_conditions); the model's own are in ${expdir}/<model>/meta.json
    "${python}" -m espnet_avsr.bin.score_cer --ref "${d}/text" --hyp "${dir}/text" \
        --out "${dir}/score_cer" --meta "model=${name}" \
        --facts "${d}/set.json" "${dir}/logdir/output.1/condition.json" \
        > "${dir}/score_cer.log" 2>&1 || die "scoring failed, see ${dir}/score_cer.log"
}
# A condition's decode is complete when every job wrote its condition.json (decode_conditions
# writes it after the job's last hypothesis) for the same job count and the same test keys, as
# recorded in logdir/jobs: a run stopped after decoding it (a session cut, a later condition
# failing) then scores it instead of decoding it again.
decode_stamp() { echo "jobs $2 keys $(cksum < "${dumpdir}/raw/$1/wav.scp")"; }   # <test> <jobs>
decoded_already() {   # decoded_already <decode dir> <jobs> <stamp>
    local j
    [ "$(cat "$1/logdir/jobs" 2>/dev/null)" = "$3" ] || return 1
    for j in $(seq "$2"); do [ -f "$1/logdir/output.${j}/condition.json" ] || return 1; done
}
# decode_prepare <model> <jobs> (reads dec_ngpu): drops a decode made with other settings, splits every test set's
# keys into <jobs> round-robin shares, and appends the model's pending conditions to dec_pending
# ("<model> <test> <rate>") and those not decoded yet, with the model's decode_conditions options,
# to dec_args (models joined by ---).
decode_prepare() {
    local name="$1" n="$2" root; root="$(decode_root_of "$1")"
    local i; i="$(model_index "${name}")"
    local settings; settings="$(decode_settings "${name}")"
    if [ -f "${root}/decode_settings" ] && [ "$(settings_key < "${root}/decode_settings")" != "$(settings_key <<< "${settings}")" ]; then
        log_msg "decode settings of ${name} changed since ${root} was decoded: decoding again"
        rm -rf "${root}"
    fi
    local pending=() test rate dir c
    while read -r test rate; do
        dir="$(decode_dir_of "${name}" "${test}" "${rate}")"
        unit_is_done "decode_${name}_${test}_${rate}" "${dir}/score_cer/result.json" || pending+=("${test} ${rate}")
    done < <(decode_conditions_of "${name}")
    if [ "${#pending[@]}" -eq 0 ]; then
        log_msg "[skip] decode ${name}: every condition done already (${root})"
        return 0
    fi
    mkdir -p "${root}/logdir"
    printf '%s\n' "${settings}" > "${root}/decode_settings"
    local block=() sets="" stamp
    for c in "${pending[@]}"; do
        test="${c% *}"; rate="${c#* }"
        dir="$(decode_dir_of "${name}" "${test}" "${rate}")"
        stamp="$(decode_stamp "${test}" "${n}")"
        dec_pending+=("${name} ${test} ${rate}")
        if decoded_already "${dir}" "${n}" "${stamp}"; then
            log_msg "decode ${name} ${test} ${rate}: decoded by an earlier run that stopped before scoring it; scoring it"
            continue
        fi
        if [[ " ${sets} " != *" ${test} "* ]]; then
            sets+=" ${test}"
            rm -f "${root}/logdir/keys.${test}".*.scp
            split_keys "${dumpdir}/raw/${test}/wav.scp" "${n}" "${root}/logdir/keys.${test}"
        fi
        rm -rf "${dir}"; mkdir -p "${dir}/logdir"
        echo "${stamp}" > "${dir}/logdir/jobs"
        block+=(--condition "out=${dir}/logdir/output.JOB,data=${dumpdir}/raw/${test},rate=${rate},keys=${root}/logdir/keys.${test}.JOB.scp")
    done
    [ "${#block[@]}" -gt 0 ] || return 0   # every pending condition only needs scoring
    local ckpt; ckpt="$(model_checkpoint "${name}")"
    local task=avsr
    if is_asr_model "${name}"; then
        task=asr
    else
        block+=(--missing_pattern "${test_missing_pattern}" --missing_seed "${test_missing_seed}")
        [ -n "${test_missing_fill}" ] && block+=(--missing_fill "${test_missing_fill}")
        if is_adapter_model "${name}"; then   # base weights + adapter-only checkpoint
            block+=(--adapter_file "${ckpt}")
            ckpt="$(model_checkpoint "${inits[$i]}")"
        fi
    fi
    # shellcheck disable=SC2206
    block+=(--task "${task}" --mode "${decode_mode}" --asr_train_config "${expdir}/${name}/config.yaml"
            --asr_model_file "${ckpt}" --config "$(decode_config_of "${name}")" --batch_size 1
            --ngpu "${dec_ngpu}" ${inference_args})
    [ "${#dec_args[@]}" -eq 0 ] || dec_args+=(---)
    dec_args+=("${block[@]}")
    log_msg "decode ${name}: ${#pending[@]} condition(s) -> ${root}"
}
if stage_begin 10 "decode (missing rates: ${test_missing_rates}; babble SNRs: ${test_snrs:-none}) and score"; then
    # the clean test sets' facts (set.json: the set, its field, no noise), read when scoring and mixing
    # shellcheck disable=SC2046
    "${python}" -m espnet_avsr.bin.experiment set_info --dumpdir "${dumpdir}/raw" \
        $(echo ${test_sets} ${noise_test_sets} | tr ' ' '\n' | awk 'NF && !s[$0]++') \
        || die "cannot record the test sets' facts (see the error above)"
    for x in $(noise_sets); do   # set.json is mix_noise's last output
        unit "noise_${x}" "${dumpdir}/raw/${x}/set.json" make_noise_set "${x}"
    done
    # one decode_conditions process per job for every model: one start-up, each model built once,
    # every job a share of every set (so at most as many jobs as the smallest set has utterances)
    dec_jobs="${decode_nj}"
    for x in ${test_sets} $(noise_sets); do
        c="$(wc -l < "${dumpdir}/raw/${x}/wav.scp")"
        if [ "${c}" -lt "${dec_jobs}" ]; then dec_jobs="${c}"; fi
    done
    dec_cmd="${decode_cmd}"; dec_ngpu=0
    if "${gpu_inference}"; then dec_cmd="${cuda_cmd} --gpu 1"; dec_ngpu=1; fi
    dec_args=(); dec_pending=()
    for name in "${names[@]}"; do
        decode_prepare "${name}" "${dec_jobs}"
    done
    if [ "${#dec_pending[@]}" -gt 0 ]; then
        if [ "${#dec_args[@]}" -gt 0 ]; then
            mkdir -p "${expdir}/logs"
            log_msg "decoding $(printf '%s\n' "${dec_args[@]}" | grep -c '^--condition$') condition(s) in ${dec_jobs} job(s), one process each for all models; logs ${expdir}/logs/decode.*.log"
            ${dec_cmd} JOB=1:"${dec_jobs}" "${expdir}/logs/decode.JOB.log" \
                "${python}" -m espnet_avsr.bin.decode_conditions "${dec_args[@]}" \
                || die "decoding failed, see ${expdir}/logs/decode.*.log (a condition every job finished is scored by the next run, not decoded again)"
        fi
        for x in "${dec_pending[@]}"; do
            read -r name test rate <<< "${x}"
            unit "decode_${name}_${test}_${rate}" "$(decode_dir_of "${name}" "${test}" "${rate}")/score_cer/result.json" \
                score_condition "${name}" "${test}" "${rate}" "$(decode_dir_of "${name}" "${test}" "${rate}")" "${dec_jobs}"
        done
    fi
    stage_end
fi

# ------------------------------------------------------------------ stage 11
# ref_of <model>: the audio-only reference of relative CER and similarity, from the model's seed
# (A0_s1 for AVd0.3_s1) when the list has it, else --relative_ref itself.
ref_of() {
    local sfx=""
    [ -n "${model_base[$1]:-}" ] && sfx="${1#"${model_base[$1]}"}"
    if [ -n "${sfx}" ] && [[ " ${names[*]} " == *" ${relative_ref}${sfx} "* ]]; then
        echo "${relative_ref}${sfx}"
    else
        echo "${relative_ref}"
    fi
}
# write_claims <set> <suffix>: the paper's claims on one test set, from the current decodes only,
# every seed pooled (espnet_avsr.eval.claims; rule and intervals there) -> CLAIMS<suffix>.md,
# claims<suffix>.json, inputs under claims_inputs<suffix>. The claims set (eval) has no suffix; every
# other test set (dev) gets "_<set>", so a reader can see whether dev and eval agree.
write_claims() {
    local set="$1" in="${expdir}/claims_inputs$2" name base seed test rate dir cond
    mkdir -p "${in}"
    : > "${in}/decodes.tsv"; : > "${in}/relative.tsv"; : > "${in}/similarity.tsv"
    for name in "${names[@]}"; do
        is_vsr_model "${name}" && continue
        base="${model_base[${name}]:-${name}}"; seed="${model_seed[${name}]:-0}"
        while read -r test rate; do
            [ "${noise_src[${test}]:-${test}}" = "${set}" ] || continue
            dir="$(decode_dir_of "${name}" "${test}" "${rate}")"
            [ -f "${dir}/score_cer/result.json" ] || continue
            if is_noise_set "${test}"; then
                [ "${rate}" = - ] || [ "$(printf '%g' "${rate}")" = 0 ] || continue   # complete video
                cond="babble=$(printf '%g' "${noise_snr[${test}]}")"
            elif [ "${rate}" = - ]; then   # audio only: the same decode at every missing rate
                for rate in ${test_missing_rates}; do
                    printf '%s\t%s\t%s\t%s\n' "${base}" "${seed}" "missing=$(printf '%g' "${rate}")" \
                        "${dir}/score_cer" >> "${in}/decodes.tsv"
                done
                continue
            else
                cond="missing=$(printf '%g' "${rate}")"
            fi
            printf '%s\t%s\t%s\t%s\n' "${base}" "${seed}" "${cond}" "${dir}/score_cer" >> "${in}/decodes.tsv"
        done < <(decode_conditions_of "${name}")
        if [ -n "${study_rate[${name}]:-}" ]; then   # the study's two trends
            ref="$(decode_dir_of "$(ref_of "${name}")" "${set}" -)"
            for rate in ${test_missing_rates}; do   # relative CER with complete video and with none, as in the figure
                case "$(printf '%g' "${rate}")" in 0|1) ;; *) continue ;; esac
                dir="$(decode_dir_of "${name}" "${set}" "${rate}")"
                if [ -f "${dir}/text" ] && [ -f "${ref}/text" ]; then
                    printf '%s\t%s\t%g\t%s\t%s\n' "${study_rate[${name}]}" "${seed}" "${rate}" "${ref}/text" \
                        "${dir}/text" >> "${in}/relative.tsv"
                fi
            done
            sim="${expdir}/${name}/rep_similarity_${set}/rep_similarity.json"
            [ -f "${sim}" ] && printf '%s\t%s\t%s\n' "${study_rate[${name}]}" "${seed}" "${sim}" >> "${in}/similarity.tsv"
        fi
    done
    local snrs="" x   # the babble claims only on a set that has babble copies
    for x in $(noise_sets); do if [ "${noise_src[${x}]}" = "${set}" ]; then snrs="${test_snrs}"; fi; done
    if [ ! -s "${in}/decodes.tsv" ]; then
        log_msg "claims: no decode of ${set} yet, skipped"
        return 0
    fi
    "${python}" -m espnet_avsr.bin.make_claims --decodes "${in}/decodes.tsv" --relative "${in}/relative.tsv" \
        --similarity "${in}/similarity.tsv" --babble_snrs "${snrs}" \
        --out_json "${expdir}/claims$2.json" --out_md "${expdir}/CLAIMS$2.md" > "${in}/make_claims.log" 2>&1 \
        || die "make_claims failed, see ${in}/make_claims.log"
    log_msg "claims (${set}, session-level intervals over every seed): ${expdir}/CLAIMS$2.md"
}
if stage_begin 11 "modality-bias metrics and report -> ${expdir}/RESULTS.md"; then
    if [ -f "${MAIN_ROOT}/espnet_avsr/bin/relative_cer.py" ] && [[ " ${names[*]} " == *" ${relative_ref} "* ]]; then
        for name in "${names[@]}"; do
            { is_asr_model "${name}" || is_vsr_model "${name}"; } && continue
            ref="$(ref_of "${name}")"
            for test in ${test_sets}; do
                ref_dir="$(decode_dir_of "${ref}" "${test}" -)"
                for rate in ${test_missing_rates}; do
                    dir="$(decode_dir_of "${name}" "${test}" "${rate}")"
                    # keyed by both decodes: a newer reference decode redoes it
                    if [ "${ref_dir}/text" -nt "${dir}/relative_cer/relative_cer.json" ]; then rm -rf "${dir}/relative_cer"; fi
                    # shellcheck disable=SC2046
                    unit "relcer_${name}_${test}_${rate}" "${dir}/relative_cer" \
                        "${python}" -m espnet_avsr.bin.relative_cer --ref_hyp "${ref_dir}/text" \
                            --hyp "${dir}/text" --out "${dir}/relative_cer" \
                            --meta "model=${name}" "ref_model=${ref}" \
                            --facts "${dumpdir}/raw/${test}/set.json" "${dir}/logdir/output.1/condition.json" \
                            --log_level WARNING
                done
            done
        done
    fi
    # similarity of ASR and AVSR encoder representations (complete video), on the claims' test set
    # (the last one, eval: the study's similarity trend is read there like its relative CER)
    if [ "${rep_similarity_samples}" -gt 0 ] && [[ " ${names[*]} " == *" ${relative_ref} "* ]]; then
        test="${claims_test_set:-${test_sets##* }}"
        for name in "${names[@]}"; do
            { is_asr_model "${name}" || is_adapter_model "${name}" || is_vsr_model "${name}"; } && continue
            out="${expdir}/${name}/rep_similarity_${test}"; ref="$(ref_of "${name}")"
            # shellcheck disable=SC2046
            unit "repsim_${name}_${test}" "${out}/rep_similarity.json" \
                ${decode_cmd} "${out}/rep_similarity.log" \
                "${python}" -m espnet_avsr.bin.rep_similarity \
                    --asr_train_config "${expdir}/${ref}/config.yaml" \
                    --asr_model_file "$(model_checkpoint "${ref}")" \
                    --avsr_train_config "${expdir}/${name}/config.yaml" \
                    --avsr_model_file "$(model_checkpoint "${name}")" \
                    $(data_opts data "${test}" avsr) --num_samples "${rep_similarity_samples}" \
                    --device cpu --out "${out}" \
                    --meta "model=${name}" "test_set=${test}" "ref_model=${ref}"
        done
    fi
    # The report reads a view of the current results only: this run's decode dirs (not those of
    # earlier decode settings) and similarity dirs, linked under ${expdir}/.report_view/<model>/,
    # next to the model's meta.json.
    view="${expdir}/.report_view"
    rm -rf "${view}"
    for name in "${names[@]}"; do
        mkdir -p "${view}/${name}"
        if [ -f "${expdir}/${name}/meta.json" ]; then ln -s "$(cd "${expdir}/${name}" && pwd)/meta.json" "${view}/${name}/meta.json"; fi
        while read -r test rate; do
            dir="$(decode_dir_of "${name}" "${test}" "${rate}")"
            if [ -f "${dir}/score_cer/result.json" ]; then
                ln -s "$(cd "${dir}" && pwd)" "${view}/${name}/$(basename "${dir}")"
            fi
        done < <(decode_conditions_of "${name}")
        for dir in "${expdir}/${name}"/rep_similarity_*; do
            if [ -d "${dir}" ]; then ln -s "$(cd "${dir}" && pwd)" "${view}/${name}/$(basename "${dir}")"; fi
        done
    done
    # the report is cheap: always rebuilt
    "${python}" -m espnet_avsr.bin.make_report --exp "${view}" --out "${expdir}/RESULTS.md" \
        --plots "${expdir}/plots" ${report_args}
    log_msg "report: ${expdir}/RESULTS.md"
    claims_set="${claims_test_set:-${test_sets##* }}"
    for test in ${test_sets}; do
        [ "${test}" = "${claims_set}" ] || write_claims "${test}" "_${test}"
    done
    write_claims "${claims_set}" ""
    stage_end
fi

# ------------------------------------------------------------------ stage 12
# ESPnet asr.sh's packing stage: one espnet2.bin.pack archive per model, decodable alone
# (MDA-KD: the student without its teacher; MS-Adapter: merged with its base model).
pack_one() {   # pack_one <model> <archive>
    local name="$1" i base=()
    i="$(model_index "${name}")"
    is_adapter_model "${name}" && base=(--base_model_file "$(model_checkpoint "${inits[$i]}")")
    # shellcheck disable=SC2086
    "${python}" -m espnet_avsr.bin.avsr_pack --asr_train_config "${expdir}/${name}/config.yaml" \
        --asr_model_file "$(model_checkpoint "${name}")" "${base[@]}" --outpath "$2" ${pack_args} \
        > "${expdir}/${name}/pack.log" 2>&1 || die "packing ${name} failed, see ${expdir}/${name}/pack.log"
}
if stage_begin 12 "pack every model (espnet2.bin.pack) -> ${expdir}/<model>/<model>_<checkpoint>.zip"; then
    for name in "${names[@]}"; do
        ckpt="$(model_checkpoint "${name}")"
        archive="${expdir}/${name}/${name}_$(basename "${ckpt}" .pth).zip"
        unit "pack_${name}" "${archive}" pack_one "${name}" "${archive}"
    done
    stage_end
fi

log_msg "done (stages ${stage}..${stop_stage})"
exit 0
}
