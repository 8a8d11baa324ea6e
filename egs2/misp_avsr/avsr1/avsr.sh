#!/usr/bin/env bash
# The stages of the MISP AVSR recipe. run.sh sets the experiment, this script runs it.
# Every stage is re-runnable: finished units leave done-markers under ${expdir}/.done
# and are skipped next time (--force_stage "N ..." redoes whole stages).
set -euo pipefail
# The body is one { ... } block: bash parses it whole before running, so editing this
# file while a long run is going cannot derail that run.
{

help_message=$(cat <<'EOF'
Usage: ./avsr.sh [options]   (any variable below as --name value)

  --stage N / --stop_stage N   run stages N..M (0 corpus, 1 data prep, 2 audio front-end,
                               3 lip ROIs, 4 speed perturbation, 5 dumps, 6 token list,
                               7 collect stats, 8 train audio-only, 9 train AV, 10 decode
                               + score, 11 report)
  --force_stage "N ..."        redo these stages even where done-markers exist
  --nj N / --decode_nj N       parallel jobs for data stages / decoding
  --ngpu N                     training devices (N > 1: DDP through ESPnet)
  --use_amp true|false         mixed precision; empty (default) = use_amp of each training config
  --cmd_backend local|slurm    job launcher (cmd.sh)
  --misp_root DIR              real MISP release; empty = synthetic corpus (--hours, --corpus_seed)
  --train_set/--valid_set/--test_sets   <set>_<field> names, e.g. train_far dev_far "eval_far"
  --frontend wpe_ds|wpe_mvdr|ds|mvdr|first_channel|none   far/middle array front-end
  --speed_perturb_factors "0.9 1.0 1.1"                   empty disables
  --models "NAME:CONFIG:INIT[:TEACHER] ..."               one model per line or word
  --dropout_study_rates "0.1 0.3 0.5 0.7"               add the dropout-study models AVd<rate>
  --test_missing_rates "0 0.25 ..." --test_missing_pattern random --test_snrs "0 -5"
  --inference_args "..."       extra decoding options; --inference_tag NAME (default: derived)
  --decode_mode beam|ctc_greedy --gpu_inference true|false
                               decodes land in exp/<model>/<inference tag>/<set>[_miss<rate>_<pattern>]
  --train_threads N            CPU threads of a training job (default: all cores on CPU)
EOF
)

# ---- general
stage=0
stop_stage=100
force_stage=""
nj=4
decode_nj=""
ngpu=0
use_amp=""          # empty: each training config's use_amp decides (ESPnet's default: false)
cmd_backend="${cmd_backend:-local}"
train_threads=""     # CPU threads of a training job (default: all cores when --ngpu 0, else 1)
python=python
# ---- corpus
misp_root=""
corpus_dir=corpus
hours=0.1
corpus_seed=0
corpus_preset=demo   # make_mini_misp --preset: tiny | demo | bench | full
corpus_args=""
# ---- data
train_set=train_far
valid_set=dev_far
test_sets="eval_far"
frontend=wpe_ds
frontend_args=""
speed_perturb_factors="0.9 1.0 1.1"
token_type=char
nbpe=500
data_dir=data
dumpdir=dump
expdir=exp
# ---- models: one per line (or space separated): name:config:init[:teacher]
#      init "-" = from scratch; "A0" (an audio-only model) = init_from_asr;
#      "A0+V0" = the same plus the video branch from a lip reader V0 (encoder: video_conformer);
#      "AVk" = --init_param of that model's checkpoint. teacher = KD teacher model.
models="A0:conf/train_asr.yaml:-"
# The paper's dropout study: one extra AV model per rate, named AVd<rate>, trained with that
# fraction of video frames dropped in every sample (configs derived from dropout_study_config
# into ${expdir}/conf/). Empty = no study. E.g. --dropout_study_rates "0.1 0.3 0.5 0.7"
dropout_study_rates=""
dropout_study_config=conf/train_avsr.yaml
dropout_study_init=A0
train_args=""
speech_fold_length=80000   # samples (5 s); longer utterances halve the batch
text_fold_length=150
video_fold_length=125      # frames (5 s at 25 fps)
best_model=valid.acc.ave.pth
# ---- decoding and tests
asr_decode_config=conf/decode_asr.yaml
avsr_decode_config=conf/decode_avsr.yaml
inference_args=""
inference_tag=""           # decode dir name (ESPnet's); empty = derived from decode config, args, model file
decode_mode=beam           # beam (joint CTC/attention beam search) | ctc_greedy (CTC best path)
gpu_inference=false        # decode on a GPU (one per decoding job)
test_missing_rates="0 0.25 0.5 0.75 1.0"
test_missing_pattern=random
test_missing_fill=""
test_missing_seed=0
test_snrs="0 -5"
noise_missing_rates="0"    # missing rates decoded on the babble-noise sets (paper: complete video)
noise_test_sets=""
babble_source=""
noise_seed=0
relative_ref=A0            # audio-only model for relative CER and representation similarity
rep_similarity_samples=64  # utterances for the similarity matrices (0 = skip)
report_args=""

. ./path.sh
. ./db.sh
misp_root="${MISP_ROOT:-}"
. utils/parse_options.sh
. ./cmd.sh
. utils/stage_lib.sh

[ $# -eq 0 ] || die "unexpected arguments: $* (options are --name value)"
[ -n "${decode_nj}" ] || decode_nj="${nj}"
case "${decode_mode}" in beam|ctc_greedy) ;; *) die "--decode_mode takes beam or ctc_greedy, got '${decode_mode}'" ;; esac
case "${use_amp}" in ""|true|false) ;; *) die "--use_amp takes true or false (or empty: the config decides), got '${use_amp}'" ;; esac
if [ -z "${train_threads}" ]; then   # one training job at a time: CPU training gets every core
    train_threads=1
    [ "${ngpu}" -eq 0 ] && train_threads="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)"   # nproc obeys OMP_NUM_THREADS, which path.sh pins to 1
fi
marker_dir="${expdir}/.done"
mkdir -p "${expdir}" "${marker_dir}"
root_dir="$(pwd)"

# ------------------------------------------------------------------ helpers
# Value of a top-level or nested key in a YAML config ("" when absent).
yaml_get() {
    "${python}" - "$1" "$2" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1], encoding="utf-8")) or {}
for part in sys.argv[2].split("."):
    cfg = cfg.get(part) if isinstance(cfg, dict) else None
print("" if cfg is None else cfg)
PY
}

# Dropout-study models: derive one config per rate and append the models to the list.
study_models=""
if [ -n "${dropout_study_rates}" ]; then
    [ -f "${dropout_study_config}" ] || die "--dropout_study_config ${dropout_study_config} does not exist"
    mkdir -p "${expdir}/conf"
    for r in ${dropout_study_rates}; do
        cfg="${expdir}/conf/$(basename "${dropout_study_config}" .yaml)_drop_r${r}.yaml"
        "${python}" - "${dropout_study_config}" "${r}" "${cfg}" <<'PY' || die "cannot derive a dropout-study config for rate ${r}"
import sys, yaml
src, rate, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
if not 0.0 < rate <= 1.0:
    sys.exit(f"dropout study rate must be in (0, 1], got {sys.argv[2]}")
cfg = yaml.safe_load(open(src, encoding="utf-8")) or {}
cfg.setdefault("model_conf", {})["video_dropout"] = {
    "prob": 1.0, "rate": rate, "pattern": "random", "fill": "zeros"}
with open(out, "w", encoding="utf-8") as f:
    f.write(f"# Dropout study, rate {rate}: {src} with video_dropout on every sample (generated by avsr.sh)\n")
    yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
PY
        models="${models} AVd${r}:${cfg}:${dropout_study_init}"
        study_models="${study_models} AVd${r}"
    done
    unset r cfg
fi

# Models, parsed once: names[i], configs[i], inits[i], teachers[i].
names=(); configs=(); inits=(); teachers=()
for spec in ${models}; do
    IFS=: read -r _n _c _i _t <<< "${spec}"
    [ -n "${_n}" ] && [ -n "${_c}" ] || die "model spec '${spec}' is not name:config:init[:teacher]"
    names+=("${_n}"); configs+=("${_c}"); inits+=("${_i:--}"); teachers+=("${_t:--}")
done
unset _n _c _i _t
[ "${#names[@]}" -gt 0 ] || die "--models is empty"
for i in "${!names[@]}"; do   # init/teacher must be declared earlier in the list
    for ref in ${inits[$i]//+/ } "${teachers[$i]}"; do
        [ "${ref}" = - ] && continue
        ok=false
        for ((k = 0; k < i; k++)); do [ "${names[$k]}" = "${ref}" ] && ok=true; done
        ${ok} || die "model ${names[$i]} refers to '${ref}', which is not declared before it in --models"
    done
done
unset ok ref k
# What each model is, read from the configs in one go (one Python start, not one per question):
# asr (stock ESPnet ASR, its config named train_asr*), vsr (lip reader, encoder: video_conformer),
# adapter (model: ms_adapter, trains adapters on its frozen init model), avsr; missing: no config.
mapfile -t kinds < <("${python}" - "${configs[@]}" <<'PY'
import os, sys, yaml
for path in sys.argv[1:]:
    if os.path.basename(path).startswith("train_asr"):
        print("asr")
    elif not os.path.isfile(path):
        print("missing")
    else:
        try:
            cfg = yaml.safe_load(open(path, encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            sys.exit(f"{path}: not a readable YAML config ({e})")
        if not isinstance(cfg, dict):
            sys.exit(f"{path}: a config must be a YAML mapping, got {type(cfg).__name__}")
        print("vsr" if cfg.get("encoder") == "video_conformer"
              else "adapter" if cfg.get("model") == "ms_adapter" else "avsr")
PY
)
[ "${#kinds[@]}" -eq "${#names[@]}" ] || die "cannot read the model configs (see the error above)"
if [ "${stop_stage}" -ge 7 ] && [ "${stage}" -le 11 ]; then   # fail before hours of data prep
    for i in "${!names[@]}"; do
        [ -f "${configs[$i]}" ] || die "config ${configs[$i]} of model ${names[$i]} does not exist"
        if [ "${kinds[$i]}" = adapter ] && [ "${inits[$i]}" = - ]; then
            die "adapter model ${names[$i]} needs its base AV model as init"
        fi
    done
fi

model_index() {
    local i
    for i in "${!names[@]}"; do [ "${names[$i]}" = "$1" ] && { echo "$i"; return 0; }; done
    die "model '$1' is referenced but not declared in --models"
}
# Audio-only models run stock ESPnet ASR; their configs are named train_asr*.yaml.
is_asr_model() { [ "${kinds[$(model_index "$1")]}" = asr ]; }
# Lip readers (encoder: video_conformer) pre-train the video branch: init "A0+V0".
is_vsr_model() { [ "${kinds[$(model_index "$1")]}" = vsr ]; }
# MS-Adapter models decode as base checkpoint + --adapter_file.
is_adapter_model() { [ "${kinds[$(model_index "$1")]}" = adapter ]; }

# "X+Y" inits: X an audio-only model, Y a lip reader, the model itself audio-visual.
if [ "${stop_stage}" -ge 7 ] && [ "${stage}" -le 11 ]; then
    for i in "${!names[@]}"; do
        [[ "${inits[$i]}" == *+* ]] || continue
        _a="${inits[$i]%%+*}"; _v="${inits[$i]#*+}"
        { is_asr_model "${_a}" && is_vsr_model "${_v}" && ! is_asr_model "${names[$i]}" && ! is_vsr_model "${names[$i]}"; } \
            || die "model ${names[$i]}: init '${inits[$i]}' must be <audio-only model>+<lip reader (encoder: video_conformer)> for an AV model"
    done
    unset _a _v
fi

# The checkpoint a finished model is used through (averaged n-best, else best, else latest).
model_checkpoint() {
    local d="${expdir}/$1" f
    for f in "${best_model}" valid.acc.ave.pth valid.acc.best.pth valid.loss.ave.pth valid.loss.best.pth latest.pth; do
        [ -e "${d}/${f}" ] && { echo "${d}/${f}"; return 0; }
    done
    die "no checkpoint of model $1 in ${d} (train it first: stages 8-9)"
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

# ------------------------------------------------------------------ stage 0
if [ -z "${misp_root}" ]; then
    if stage_begin 0 "synthetic MISP-format corpus (${hours} h, seed ${corpus_seed}) -> ${corpus_dir}"; then
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
    for x in $(prepared_sets); do
        unit "prep_${x}" "${data_dir}/${x}/text" \
            local/data.sh --misp_root "${root}" --name "${x}" --data_dir "${data_dir}" \
                --cmd "${train_cmd}" --python "${python}"
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
    ${train_cmd} JOB=1:"${n}" "${out}/log/extract_lip_roi.JOB.log" \
        "${python}" -m espnet_avsr.bin.extract_lip_roi --data "${src}/split${n}/JOB" \
            --out "${out}" --scp_dir "${out}/part.JOB"
    # shellcheck disable=SC2046
    merge_dirs "${out}" $(part_list "${out}/part." "${n}")
    log_msg "${out}: $(wc -l < "${out}/roi.scp") ROI sequences for $(wc -l < "${src}/text") utterances"
}
if stage_begin 3 "lip ROIs (detection JSON + MP4 -> 96x96 grey .npy)"; then
    for x in $(prepared_sets); do
        unit "roi_${x}" "${dumpdir}/roi/${x}/roi.scp" roi_set "${x}"
    done
    stage_end
fi

# ------------------------------------------------------------------ stage 4
sp_dir="$(audio_dir "${train_set}")_sp"
if [ -n "${speed_perturb_factors}" ] && stage_begin 4 "speed perturbation of ${train_set} (${speed_perturb_factors})"; then
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
    ${train_cmd} JOB=1:"${n}" "${out}/log/dump_audio.JOB.log" \
        "${python}" -m espnet_avsr.bin.dump_audio --data "${src}/split${n}/JOB" --out "${out}" \
            --scp_dir "${out}/part.JOB" --roi_scp "${roi}" --no_roi "${no_roi}"
    # shellcheck disable=SC2046
    merge_dirs "${out}" $(part_list "${out}/part." "${n}")
    ${train_cmd} "${out}/log/check_dump.log" \
        "${python}" -m espnet_avsr.bin.check_dump --dump "${out}" --json_out "${out}/check_dump.json" \
        || die "audio/video frames disagree in ${out}, see ${out}/log/check_dump.log"
    log_msg "${out}: $(wc -l < "${out}/wav.scp") utterances dumped from $(wc -l < "${src}/text")"
}
if stage_begin 5 "dumps (per-utterance wav + ROI scp) and audio/video agreement check"; then
    if [ -n "${speed_perturb_factors}" ]; then
        unit "dump_$(train_name)" "${dumpdir}/raw/$(train_name)/wav.scp" \
            dump_set "${sp_dir}" "${sp_dir}/roi.scp" "$(train_name)"
    fi
    for x in $(prepared_sets); do
        [ -n "${speed_perturb_factors}" ] && [ "${x}" = "${train_set}" ] && continue
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
train_model() {   # train_model <name>
    local i; i="$(model_index "$1")"
    local name="$1" config="${configs[$i]}" init="${inits[$i]}" teacher="${teachers[$i]}"
    local task=avsr; is_asr_model "${name}" && task=asr
    local stats="${expdir}/${task}_stats_${token_type}" out="${expdir}/${name}"
    [ -f "${config}" ] || die "config ${config} of model ${name} does not exist"
    mkdir -p "${out}"
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
            "${python}" -m espnet_avsr.bin.init_from_asr --asr_model_file "${src}" "${vsr_opts[@]}" \
                --asr_train_config "${expdir}/${init}/config.yaml" --token_list "${token_list}" \
                --avsr_config "${config}" --out "${out}/init.pth" > "${out}/init_from_asr.log" 2>&1 \
                || die "init_from_asr failed, see ${out}/init_from_asr.log"
            extra+=(--init_param "${out}/init.pth")
        else
            extra+=(--init_param "${src}")
        fi
    fi
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
    log_msg "training ${name} (${task}, config ${config}, init ${inits[$i]}, teacher ${teacher}); log ${out}/train.log"
    # shellcheck disable=SC2046
    ${cuda_cmd} --gpu "${ngpu}" --num_threads "${train_threads}" "${out}/train.log" \
        "${python}" -m "$(train_module "${task}")" --config "${config}" $(token_opts) \
            $(data_opts train "$(train_name)" "${task}") $(data_opts valid "${valid_set}" "${task}") \
            "${stats_opts[@]}" --resume true --ngpu "${ngpu}" \
            --output_dir "${out}" "${extra[@]}" ${train_args} \
        || die "training ${name} failed, see ${out}/train.log"
    model_checkpoint "${name}" > /dev/null
}
if stage_begin 8 "train audio-only models (stock ESPnet ASR)"; then
    for name in "${names[@]}"; do
        is_asr_model "${name}" || continue
        unit "train_${name}" "${expdir}/${name}/config.yaml" train_model "${name}"
    done
    stage_end
fi
if stage_begin 9 "train audio-visual models (in list order)"; then
    for name in "${names[@]}"; do
        is_asr_model "${name}" && continue
        unit "train_${name}" "${expdir}/${name}/config.yaml" train_model "${name}"
    done
    stage_end
fi

# ------------------------------------------------------------------ stage 10
noise_sets() {   # dump names of the babble-noise copies of the test sets
    local x s
    for x in ${noise_test_sets:-${test_sets%% *}}; do
        for s in ${test_snrs}; do echo "${x}_babble${s}"; done
    done
}
make_noise_set() {   # make_noise_set <test set> <snr>
    local src_babble="${babble_source:-${dumpdir}/raw/$(train_name)/wav.scp}"
    ${train_cmd} "${expdir}/logs/mix_noise_$1_babble$2.log" \
        "${python}" -m espnet_avsr.bin.mix_noise --data "${dumpdir}/raw/$1" \
            --out "${dumpdir}/raw/$1_babble$2" --snr "$2" --noise babble \
            --babble_source "${src_babble}" --seed "${noise_seed}"
}

# Training settings for the report (score metadata), from the model list and its config:
# train_dropout (video dropout rate, 0 = none), train_dropout_prob, init, kd, adapter.
model_meta() {   # model_meta <name>
    local i; i="$(model_index "$1")"
    local modality=av
    is_asr_model "$1" && modality=audio
    is_vsr_model "$1" && modality=video
    local study=-
    [[ " ${study_models} " == *" $1 "* ]] && study=dropout
    "${python}" - "${configs[$i]}" "$1" "${inits[$i]}" "${teachers[$i]}" "${modality}" "${study}" <<'PY'
import sys, yaml
cfg_path, name, init, teacher, modality, study = sys.argv[1:7]
cfg = yaml.safe_load(open(cfg_path, encoding="utf-8")) or {}
mc = cfg.get("model_conf") or {}
meta = {"model": name, "modality": modality, "config": cfg_path.rsplit("/", 1)[-1].rsplit(".", 1)[0],
        "init": "none" if init == "-" else init}
if study != "-":   # a model added by --dropout_study_rates
    meta["study"] = study
adapter = cfg.get("model") == "ms_adapter" or bool(mc.get("adapter_conf"))
if modality == "av" and not adapter:
    vd = mc.get("video_dropout")
    if not vd:
        meta["train_dropout"] = 0
    else:
        rate = vd.get("rate", 0)
        meta["train_dropout"] = ("-".join(str(r) for r in rate) if isinstance(rate, (list, tuple)) else rate)
        meta["train_dropout_prob"] = vd.get("prob", 1.0)
        meta["train_dropout_pattern"] = vd.get("pattern", "random")
if modality == "av":
    kd = teacher != "-" or cfg.get("model") == "mda_kd"
    meta["kd"] = (mc.get("kd_distance") or "true") if kd else "false"
    if teacher != "-":
        meta["teacher"] = teacher
    meta["adapter"] = "true" if adapter else "false"
print(" ".join(f"{k}={str(v).replace(' ', '').replace(',', '-')}" for k, v in meta.items()))
PY
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
        if is_vsr_model "$1"; then   # a lip reader: complete video, clean sets only
            [[ "${test}" == *_babble* ]] || echo "${test} 0"
        elif is_asr_model "$1"; then
            echo "${test} -"
        else
            rates="${test_missing_rates}"
            [[ "${test}" == *_babble* ]] && rates="${noise_missing_rates}"
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
    echo "missing ${test_missing_pattern} ${test_missing_fill:-zeros} ${test_missing_seed}"
    echo "checkpoint ${ckpt} $(stat -L -c '%s %Y' "${ckpt}")"
    if is_adapter_model "$1"; then
        local base; base="$(model_checkpoint "${inits[$(model_index "$1")]}")"
        echo "base ${base} $(stat -L -c '%s %Y' "${base}")"
    fi
}
score_condition() {   # score_condition <model> <test> <rate|-> <decode dir> <jobs>
    local name="$1" test="$2" rate="$3" dir="$4" n="$5" d="${dumpdir}/raw/$2"
    # shellcheck disable=SC2046
    merge_parts "${dir}/text" $(for j in $(seq "${n}"); do echo "${dir}/logdir/output.${j}/1best_recog/text"; done)
    local snr=clean base="${test}"
    if [[ "${test}" =~ ^(.*)_babble(-?[0-9.]+)$ ]]; then base="${BASH_REMATCH[1]}"; snr="${BASH_REMATCH[2]}"; fi
    local miss=(missing_rate="${rate}" missing_pattern="${test_missing_pattern}" "missing_fill=${test_missing_fill:-zeros}")
    [ "${rate}" = - ] && miss=(missing_rate=none missing_pattern=none)
    # shellcheck disable=SC2046
    "${python}" -m espnet_avsr.bin.score_cer --ref "${d}/text" --hyp "${dir}/text" \
        --out "${dir}/score_cer" --meta $(model_meta "${name}") "test_set=${base}" "snr=${snr}" \
        noise=$([ "${snr}" = clean ] && echo none || echo babble) "${miss[@]}" \
        > "${dir}/score_cer.log" 2>&1 || die "scoring failed, see ${dir}/score_cer.log"
}
# decode_prepare <model> <jobs> (reads dec_ngpu): drops a decode made with other settings, splits every test set's
# keys into <jobs> round-robin shares, and appends the model's pending conditions to dec_pending
# ("<model> <test> <rate>") and its decode_conditions options to dec_args (models joined by ---).
decode_prepare() {
    local name="$1" n="$2" root; root="$(decode_root_of "$1")"
    local i; i="$(model_index "${name}")"
    local settings; settings="$(decode_settings "${name}")"
    if [ -f "${root}/decode_settings" ] && [ "$(cat "${root}/decode_settings")" != "${settings}" ]; then
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
    local block=() sets=""
    for c in "${pending[@]}"; do
        test="${c% *}"; rate="${c#* }"
        if [[ " ${sets} " != *" ${test} "* ]]; then
            sets+=" ${test}"
            rm -f "${root}/logdir/keys.${test}".*.scp
            split_keys "${dumpdir}/raw/${test}/wav.scp" "${n}" "${root}/logdir/keys.${test}"
        fi
        dir="$(decode_dir_of "${name}" "${test}" "${rate}")"
        rm -rf "${dir}"; mkdir -p "${dir}/logdir"
        block+=(--condition "out=${dir}/logdir/output.JOB,data=${dumpdir}/raw/${test},rate=${rate},keys=${root}/logdir/keys.${test}.JOB.scp")
        dec_pending+=("${name} ${test} ${rate}")
    done
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
    for x in $(noise_sets); do
        unit "noise_${x}" "${dumpdir}/raw/${x}/wav.scp" make_noise_set "${x%_babble*}" "${x##*_babble}"
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
        mkdir -p "${expdir}/logs"
        log_msg "decoding ${#dec_pending[@]} condition(s) in ${dec_jobs} job(s), one process each for all models; logs ${expdir}/logs/decode.*.log"
        ${dec_cmd} JOB=1:"${dec_jobs}" "${expdir}/logs/decode.JOB.log" \
            "${python}" -m espnet_avsr.bin.decode_conditions "${dec_args[@]}" \
            || die "decoding failed, see ${expdir}/logs/decode.*.log"
        for x in "${dec_pending[@]}"; do
            read -r name test rate <<< "${x}"
            unit "decode_${name}_${test}_${rate}" "$(decode_dir_of "${name}" "${test}" "${rate}")/score_cer/result.json" \
                score_condition "${name}" "${test}" "${rate}" "$(decode_dir_of "${name}" "${test}" "${rate}")" "${dec_jobs}"
        done
    fi
    stage_end
fi

# ------------------------------------------------------------------ stage 11
if stage_begin 11 "modality-bias metrics and report -> ${expdir}/RESULTS.md"; then
    if [ -f "${MAIN_ROOT}/espnet_avsr/bin/relative_cer.py" ] && [[ " ${names[*]} " == *" ${relative_ref} "* ]]; then
        for name in "${names[@]}"; do
            { is_asr_model "${name}" || is_vsr_model "${name}"; } && continue
            for test in ${test_sets}; do
                ref_dir="$(decode_dir_of "${relative_ref}" "${test}" -)"
                for rate in ${test_missing_rates}; do
                    dir="$(decode_dir_of "${name}" "${test}" "${rate}")"
                    # keyed by both decodes: a newer reference decode redoes it
                    if [ "${ref_dir}/text" -nt "${dir}/relative_cer/relative_cer.json" ]; then rm -rf "${dir}/relative_cer"; fi
                    # shellcheck disable=SC2046
                    unit "relcer_${name}_${test}_${rate}" "${dir}/relative_cer" \
                        "${python}" -m espnet_avsr.bin.relative_cer --ref_hyp "${ref_dir}/text" \
                            --hyp "${dir}/text" --out "${dir}/relative_cer" \
                            --meta $(model_meta "${name}") "test_set=${test}" "missing_rate=${rate}" \
                            "missing_pattern=${test_missing_pattern}" "ref_model=${relative_ref}" \
                            --log_level WARNING
                done
            done
        done
    fi
    # similarity of ASR and AVSR encoder representations (complete video), first test set
    if [ "${rep_similarity_samples}" -gt 0 ] && [[ " ${names[*]} " == *" ${relative_ref} "* ]]; then
        test="${test_sets%% *}"
        for name in "${names[@]}"; do
            { is_asr_model "${name}" || is_adapter_model "${name}" || is_vsr_model "${name}"; } && continue
            out="${expdir}/${name}/rep_similarity_${test}"
            # shellcheck disable=SC2046
            unit "repsim_${name}_${test}" "${out}/rep_similarity.json" \
                ${decode_cmd} "${out}/rep_similarity.log" \
                "${python}" -m espnet_avsr.bin.rep_similarity \
                    --asr_train_config "${expdir}/${relative_ref}/config.yaml" \
                    --asr_model_file "$(model_checkpoint "${relative_ref}")" \
                    --avsr_train_config "${expdir}/${name}/config.yaml" \
                    --avsr_model_file "$(model_checkpoint "${name}")" \
                    $(data_opts data "${test}" avsr) --num_samples "${rep_similarity_samples}" \
                    --device cpu --out "${out}" \
                    --meta $(model_meta "${name}") "test_set=${test}" "ref_model=${relative_ref}"
        done
    fi
    # The report reads a view of the current results only: this run's decode dirs (not those of
    # earlier decode settings) and similarity dirs, linked under ${expdir}/.report_view/<model>/.
    view="${expdir}/.report_view"
    rm -rf "${view}"
    for name in "${names[@]}"; do
        mkdir -p "${view}/${name}"
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
    stage_end
fi

log_msg "done (stages ${stage}..${stop_stage})"
exit 0
}
