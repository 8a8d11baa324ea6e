#!/usr/bin/env bash
# Why is our held-out babble so much harsher than MISP's (A0 88 % at 0 dB vs the paper's 33.5 %)?
# Decodes A0 / A0_s1 (exp_l7, beam, the recipe's decode config) on eval_far with babble varied
# along one axis at a time: SNR (6 talkers: 5/0/-5 exist; here 10, 20) and talker count at 0 dB
# (6 exist; here 24 and 48 talkers from a 48-voice bank). Resumable (mix and decode skip done work).
# Run from anywhere; it works in the recipe folder (exp_l7, dump_l7 of the benchmark) and writes
# under PROBE_DIR (default exp_l7/babble_probe; the recorded run used a folder outside the repo).
set -euo pipefail
cd "$(dirname "$0")/../.."
py="$(pwd)/../../../tools/venv/bin/python"
P="${PROBE_DIR:-exp_l7/babble_probe}"
[ -f $P/bank48/.complete ] || $py -m espnet_avsr.bin.make_babble_bank --out $P/bank48 --seed 0 --talkers 48 --utts_per_talker 2
mix() {  # mix <name> <snr> <talkers> <bank>
  [ -f $P/dump/$1/set.json ] || $py -m espnet_avsr.bin.mix_noise --data dump_l7/raw/eval_far --out $P/dump/$1 \
      --snr $2 --num_talkers $3 --babble_source $4 --seed 0 --log_level ERROR
}
mix t6_snr10 10 6 exp_l7/babble_bank
mix t6_snr20 20 6 exp_l7/babble_bank
mix t24_snr0 0 24 $P/bank48
mix t48_snr0 0 48 $P/bank48
mix t6b48_snr0 0 6 $P/bank48     # 6 talkers from the big bank: is it the bank or the count?
for m in A0 A0_s1; do
  args=()
  for c in t6_snr10 t6_snr20 t24_snr0 t48_snr0 t6b48_snr0; do
    [ -f $P/$m/$c/score/result.json ] && continue
    mkdir -p $P/$m/$c
    args+=(--condition out=$P/$m/$c/out,data=$P/dump/$c,rate=-)
  done
  if [ ${#args[@]} -gt 0 ]; then
    $py -m espnet_avsr.bin.decode_conditions --task asr --asr_train_config exp_l7/$m/config.yaml \
      --asr_model_file exp_l7/$m/valid.acc.ave.pth --config conf/decode_asr.yaml --batch_size 1 --ngpu 0 \
      "${args[@]}" > $P/$m.decode.log 2>&1
  fi
  for c in t6_snr10 t6_snr20 t24_snr0 t48_snr0 t6b48_snr0; do
    [ -f $P/$m/$c/score/result.json ] && continue
    $py -m espnet_avsr.bin.score_cer --ref $P/dump/$c/text --hyp $P/$m/$c/out/1best_recog/text \
      --out $P/$m/$c/score --meta model=$m cond=$c --log_level ERROR
  done
done
for m in A0 A0_s1; do for c in t6_snr10 t6_snr20 t24_snr0 t48_snr0 t6b48_snr0; do
  echo "$m $c $($py -c "import json,sys;print(json.load(open(sys.argv[1]))['cer'])" $P/$m/$c/score/result.json)"
done; done | tee $P/summary.txt
