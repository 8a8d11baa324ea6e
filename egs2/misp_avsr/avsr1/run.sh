#!/usr/bin/env bash
# MISP audio-visual speech recognition robust to missing video frames
# (CVPR 2024, "A Study of Dropout-Induced Modality Bias on Robustness to Missing Video
# Frames for AVSR"). This file is the storyboard; avsr.sh runs the stages.
#
#   ./run.sh                          demo: synthetic corpus, tiny models, CPU (2 cores)
#   ./run.sh --preset small           CPU, ~1 h 55 min: 0.6 h corpus, A0, V0, AV0pre, AV0/3/5/6 (RESULTS.md)
#   ./run.sh --preset paper           CPU, MISP's regime: calibrated corpus, paper list + study, 2 seeds, claims
#   ./run.sh --preset bench           GPU benchmark: larger corpus, paper-sized configs
#   ./run.sh --misp_root /data/MISP2022 --preset bench --ngpu 4   the real corpus (or set db.sh)
#   ./run.sh --preset small --dropout_study true   + the dropout study (AVd0.1 ... AVd0.7)
#   ./run.sh --stage 10 --stop_stage 11                           resume / redo a range
#   ./run.sh --force_stage 11 --rep_similarity_samples 0          any avsr.sh option (./avsr.sh --help)
#   ./run.sh --inference_config conf/decode_avsr.yaml --skip_train true   ESPnet asr.sh names work too
set -euo pipefail
{   # parsed whole before it runs: editing run.sh during a run cannot derail that run

# <options>
preset=demo          # demo | small | paper | bench
stage=0              # first stage (./avsr.sh --help lists them)
stop_stage=100       # last stage
force_stage=""       # redo these stages even where done-markers exist
nj=""                # parallel data/decoding jobs (demo 2, bench 8)
ngpu=""              # training GPUs (demo 0, bench 1); > 1 = DDP through ESPnet
cmd_backend="${cmd_backend:-local}"   # local | slurm (cmd.sh)
. ./db.sh
misp_root="${MISP_ROOT:-}"   # empty = synthetic MISP-format corpus
hours=""             # size of the synthetic corpus
frontend=""          # far/middle arrays: wpe_ds | wpe_mvdr | ds | mvdr | first_channel
speed_perturb_factors=""
train_args=""        # extra ESPnet training options for every model, e.g. "--max_epoch 5"
test_missing_rates="0 0.25 0.5 0.75 1.0"   # video frames dropped at test time
test_missing_pattern=random
test_snrs=""         # babble SNRs (held-out talkers), complete video; default "0 -5" ("5 0 -5" for paper); none = no babble sets
models=""            # name:config:init[:teacher] lines (default: the preset's list)
dropout_study=false  # true: also train AVd0.1/0.3/0.5/0.7 (video dropout on every sample) for the study figures
dropout_study_rates="0.1 0.3 0.5 0.7"   # the study's rates (with --dropout_study true)
skip_bad_videos=false  # true: stage 3 skips (and counts) the utterances of unreadable videos instead of stopping
# </options>
help_message="Usage: ./run.sh [options]   (--name value or --name=value)
  The options below set the experiment (empty = the preset's value); every other option,
  e.g. --inference_args, --skip_train or --force_stage, goes to avsr.sh as given: see
  ./avsr.sh --help for all of them, with ESPnet asr.sh names and the stage map.
  Arguments after '--' also go to avsr.sh verbatim."
options_from="$0"
option_passthrough=true   # options run.sh does not declare go to avsr.sh (passthrough_args)
. utils/parse_options.sh
extra_args=("${passthrough_args[@]}" "$@")   # unknown options, then everything after "--"

# The experiment list, one model per line: name:config:init[:teacher]
#   init "-" = from scratch, an audio-only model = map its weights (init_avsr),
#   "A0+V0" = that plus the video branch of the lip reader V0 (encoder: video_conformer),
#   an AV model = start from its checkpoint; teacher = frozen MDA-KD teacher.
preset_args=()       # avsr.sh options a preset sets (before the user's, which win)
case "${preset}" in
    demo)
        # 2 CPU cores, ~20 min: 12 minutes of synthetic audio-visual speech whose sentences
        # come from a closed set of 30 (shared by train and eval, so tiny models learn in
        # minutes; the benchmark presets keep the open grammar), delay-and-sum. Far SNR 0-10 dB
        # so the audio alone is unsure and the lips pay (at 10-20 dB A0 had 5.4 % CER on 19
        # eval utterances and AV0 could only lose); a 0.2 eval share gives 40 eval utterances.
        : "${nj:=2}" "${ngpu:=0}" "${hours:=0.2}" "${frontend:=ds}"
        corpus_preset=closed30   # make_mini_misp's PRESETS hold its settings
        # epochs are the configs' own: A0 30, V0 12, AV0 8 (init A0 + V0, V0's front-end frozen:
        # from A0 alone the random lip front-end did not learn in 8 epochs, RESULTS.md)
        # The full paper list runs on CPU too (add to --models, ~5 min per AV model):
        #   AV1:conf/train_avsr_drop_all.yaml:A0+V0 AV2:conf/train_avsr_drop_p05.yaml:A0+V0
        #   AV3:conf/train_avsr_drop_p05.yaml:AV0 AV5:conf/train_avsr_kd.yaml:AV0:AV0
        #   AV6:conf/train_adapter.yaml:AV5
        : "${models:="
            A0:conf/train_asr.yaml:-
            V0:conf/train_vsr.yaml:-
            AV0:conf/train_avsr_v0.yaml:A0+V0
        "}"
        ;;
    small)
        # 2 CPU cores, ~1 h 55 min: 0.6 h of synthetic sessions with 15 training speakers,
        # delay-and-sum front-end (WPE would add ~45 min). The lip reader V0 pre-trains the
        # video branch; without it AV0 ignores the video at this size (RESULTS.md). AV0 is
        # trained in two steps (AV0pre, then the fine-tune), so that it is converged before
        # AV3 and AV5 start from it and before it teaches AV5.
        # Epochs are the configs' own (A0 30, V0 12, AV0pre 8, AV0/AV3/AV5/AV6 6).
        : "${nj:=2}" "${ngpu:=0}" "${hours:=0.6}" "${frontend:=ds}"
        corpus_preset=demo
        preset_args=(--corpus_args "--speakers_per_hour 30")
        : "${models:="
            A0:conf/train_asr.yaml:-
            V0:conf/train_vsr.yaml:-
            AV0pre:conf/train_avsr.yaml:A0+V0
            AV0:conf/train_avsr_ft.yaml:AV0pre
            AV3:conf/train_avsr_drop_p05.yaml:AV0
            AV5:conf/train_avsr_kd.yaml:AV0:AV0
            AV6:conf/train_adapter.yaml:AV5
        "}"
        ;;
    paper)
        # MISP's regime on 2 CPU cores (issue 15; RESULTS.md, top section): the calibrated corpus with point 7's lips
        # (far audio the strong modality, small blurred far mouths that help a little), the
        # paper's model list and the dropout study, two seeds, dev + eval decodes, babble from
        # held-out talkers at 5/0/-5 dB, and the claims table with session-level intervals.
        # Departures, stated: V0 pre-trains the video branch (A0+V0 inits) and its front-end
        # stays frozen in the AV models (freeze_video_frontend, half the CPU step), DS front-end.
        # The AV chain follows the paper's figure where issue 20's dev_far study found it no worse
        # (merge, black frames, KD taps and teacher audio: lines marked FIGURE in conf/paper/),
        # so missing frames are decoded black too.
        : "${nj:=2}" "${ngpu:=0}" "${hours:=2.4}" "${frontend:=ds}"
        corpus_preset=calibrated_lips
        : "${test_snrs:=5 0 -5}"
        dropout_study=true
        # the two seeds train side by side, one thread each: on 2 cores that is 1.4-1.7x the
        # throughput of one two-thread job (A0 epochs, RESULTS.md)
        preset_args=(--seeds "0 1" --seed_jobs 2 --test_sets "dev_far eval_far" --noise_test_sets eval_far --test_missing_fill black
                     --dropout_study_config conf/paper/train_avsr.yaml --dropout_study_init A0+V0)
        : "${models:="
            A0:conf/train_asr.yaml:-
            V0:conf/paper/train_vsr.yaml:-
            AV0:conf/paper/train_avsr.yaml:A0+V0
            AV1:conf/paper/train_avsr_drop_all.yaml:A0+V0
            AV2:conf/paper/train_avsr_drop_p05.yaml:A0+V0
            AV3:conf/paper/train_avsr_drop_p05_ft.yaml:AV0
            AV5:conf/paper/train_avsr_kd.yaml:AV0:AV0
            AV6:conf/paper/train_adapter.yaml:AV5
        "}"
        ;;
    bench)
        # GPU benchmark: tens of hours, speed perturbation, paper-sized Conformers.
        : "${nj:=8}" "${ngpu:=1}" "${hours:=20}" "${frontend:=wpe_mvdr}"
        corpus_preset=bench
        speed_perturb_factors="${speed_perturb_factors:-0.9 1.0 1.1}"
        : "${models:="
            A0:conf/tuning/train_asr_conformer_gpu.yaml:-
            V0:conf/tuning/train_vsr_gpu.yaml:-
            AV0:conf/tuning/train_avsr_conformer_gpu.yaml:A0+V0
            AV1:conf/tuning/train_avsr_drop_all_gpu.yaml:A0+V0
            AV2:conf/tuning/train_avsr_drop_p05_gpu.yaml:A0+V0
            AV3:conf/tuning/train_avsr_drop_p05_gpu.yaml:AV0
            AV5:conf/tuning/train_avsr_kd_gpu.yaml:AV0:AV0
            AV6:conf/tuning/train_adapter_gpu.yaml:AV5
        "}"
        ;;
    *) echo "$0: unknown --preset ${preset} (demo|small|paper|bench)" >&2; exit 1 ;;
esac

: "${test_snrs:=0 -5}"
[ "${test_snrs}" = none ] && test_snrs=""   # empty means the default above, so "none" turns them off
study_args=()
[ "${dropout_study}" = true ] && study_args=(--dropout_study_rates "${dropout_study_rates}")

./avsr.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --force_stage "${force_stage}" \
    --nj "${nj}" --ngpu "${ngpu}" --cmd_backend "${cmd_backend}" \
    --misp_root "${misp_root}" --hours "${hours}" --corpus_preset "${corpus_preset}" \
    --train_set train_far --valid_set dev_far --test_sets "eval_far" \
    --frontend "${frontend}" --speed_perturb_factors "${speed_perturb_factors}" \
    --models "${models}" --train_args "${train_args}" \
    --test_missing_rates "${test_missing_rates}" --test_missing_pattern "${test_missing_pattern}" \
    --test_snrs "${test_snrs}" --skip_bad_videos "${skip_bad_videos}" "${study_args[@]}" \
    "${preset_args[@]}" "${extra_args[@]}"
exit $?
}
