#!/usr/bin/env bash
# The error of lean AdamW moments against float32 moments on a real run (issue 11): the same
# short `kompresor train` of models/polish-teacher (14.2M parameters, continued training) on the
# licence texts Debian ships (/usr/share/common-licenses), once per --optim-state (f32, bf16, int8),
# plus int8 --recompute --freeze embeddings (tied: the embeddings are the lm_head too).
# Then scripts/experiments/optim_state_error.ts compares each run with the f32 one: final
# training and validation loss, and the weight difference per tensor (max and mean over tensors
# of ||w - w_f32|| / ||w_f32||, and of ||w - w_f32|| / ||w_f32 - w_start||: the error relative to
# how far training moved the weights).
# Usage: scripts/experiments/optim_state_error.sh [OUT]   (default runs/optim_state_error)
# Environment: STEPS (150; 256 tokens a step). A run whose final/ exists is skipped. Time: see
# docs/training.md ("Memory"), measured on a loaded machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/optim_state_error}
STEPS=${STEPS:-150}
WARMUP=$(( STEPS >= 80 ? 20 : STEPS / 4 ))
MODEL=models/polish-teacher
K=(node bin/kompresor.mjs)
COMMON=(--steps "$STEPS" --micro-batch 4 --seq-len 64 --lr 1e-3 --min-lr 1e-4 --warmup "$WARMUP"
  --eval-every 0 --eval-batches 16 --save-every 0 --seed 1 --json)
mkdir -p "$OUT"
if [ ! -f "$OUT/data/manifest.json" ]; then
  mkdir -p "$OUT/text" # the licence files (not their symlinked aliases), named .txt for data prepare
  for f in /usr/share/common-licenses/*; do [ -f "$f" ] && [ ! -L "$f" ] && cp "$f" "$OUT/text/$(basename "$f").txt"; done
  "${K[@]}" data prepare --input "$OUT/text" --tokenizer "$MODEL" --out "$OUT/data" --val-fraction 0.05 --seed 0
fi
run() { # name, extra flags
  local name=$1; shift
  if [ -d "$OUT/$name/final" ]; then echo "= $OUT/$name exists; skipped" >&2; return; fi
  rm -rf "$OUT/$name"
  local t0=$SECONDS
  "${K[@]}" train "$MODEL" --data "$OUT/data" --out "$OUT/$name" "${COMMON[@]}" "$@" > "$OUT/$name.json"
  echo "$name: $((SECONDS - t0)) s" | tee -a "$OUT/times.txt" >&2
}
run f32 --optim-state f32
run bf16 --optim-state bf16
run int8 --optim-state int8
run int8_recompute_freeze --optim-state int8 --recompute --freeze embeddings
node --import tsx scripts/experiments/optim_state_error.ts "$OUT" "$MODEL" f32 bf16 int8 int8_recompute_freeze | tee "$OUT/summary.md"
