#!/usr/bin/env bash
# Distillation beats training from scratch (issue 4; Minitron P1 Table 14 at toy scale), with the
# project's own commands on text Debian ships:
#   1. data      vim's documentation (/usr/share/vim/vim90/doc, package vim-runtime; else the
#                licence texts of base-files), byte-level tokenizer, `kompresor data prepare`
#   2. teacher   `kompresor train --init` a 6-layer Llama (2.4M parameters) from scratch
#   3. score     `kompresor score` the teacher on calibration text
#   4. prune     `kompresor prune --params 0.67` (Bielik-style policy: layers first, then MLP)
#   5. distill   `kompresor distill` the pruned student from the teacher for STUDENT_STEPS steps
#   6. scratch   `kompresor train --init pruned/config.json`: the same architecture from random
#                init, the same tokens (micro-batch x seq-len x steps), at the teacher's learning
#                rate and at the distillation one (the better of the two is the baseline)
#   7. report    curves (validation CE against tokens) and a JSON summary
# Usage: scripts/experiments/distill_vs_scratch.sh [OUT]   (default runs/distill_vs_scratch)
# A phase whose output exists is skipped, so the script can be run again after an interruption
# (a training run stopped half-way is continued with its own `--resume RUN_DIR` first).
# Environment: TEACHER_STEPS (800), STUDENT_STEPS (300), RESULTS (bench/results: where the SVG
# and the JSON summary are copied). About 10 minutes on 2 quiet cores (29 with other jobs running).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/distill_vs_scratch}
TEACHER_STEPS=${TEACHER_STEPS:-800}
STUDENT_STEPS=${STUDENT_STEPS:-300}
RESULTS=${RESULTS:-bench/results}
INPUT=/usr/share/vim/vim90/doc
[ -d "$INPUT" ] || INPUT=/usr/share/common-licenses
TEACHER_WARMUP=$(( TEACHER_STEPS >= 200 ? 50 : TEACHER_STEPS / 4 ))
STUDENT_WARMUP=$(( STUDENT_STEPS >= 120 ? 30 : STUDENT_STEPS / 4 ))
K=(node bin/kompresor.mjs)
GEOMETRY=(--micro-batch 16 --seq-len 128 --eval-batches 16 --save-every 0 --seed 1)

run() { echo "+ $*" >&2; local t0=$SECONDS; "$@"; echo "  ($((SECONDS - t0)) s)" >&2; }
# unless FILE exists: run the command
unless() { local f=$1; shift; if [ -e "$f" ]; then echo "= $f exists; skipped: $*" >&2; else run "$@"; fi; }

mkdir -p "$OUT"

# 1. tokenizer, teacher config, data
unless "$OUT/base/config.json" node --import tsx scripts/experiments/distill_vs_scratch.ts init "$OUT/base"
unless "$OUT/data/manifest.json" "${K[@]}" data prepare --input "$INPUT" --tokenizer "$OUT/base" --out "$OUT/data" --val-fraction 0.02 --seed 0

# 2. the teacher, from scratch
unless "$OUT/teacher/final" "${K[@]}" train --init "$OUT/base/config.json" --data "$OUT/data" --out "$OUT/teacher" \
  --steps "$TEACHER_STEPS" --lr 3e-3 --min-lr 3e-4 --warmup "$TEACHER_WARMUP" --eval-every 200 "${GEOMETRY[@]}"

# 3. importance scores on calibration text (the user manual part of the same documentation)
mapfile -t CALIB < <(ls "$INPUT"/usr_0*.txt 2>/dev/null || ls "$INPUT"/* | head -4)
unless "$OUT/scores.json" "${K[@]}" score "$OUT/teacher/final" --data "${CALIB[@]}" --out "$OUT/scores.json" --samples 64 --seq-len 128

# 4. prune to 67% of the parameters
unless "$OUT/pruned/config.json" "${K[@]}" prune "$OUT/teacher/final" --scores "$OUT/scores.json" --out "$OUT/pruned" --params 0.67

# 5. distill the pruned student
unless "$OUT/distill/final" "${K[@]}" distill --teacher "$OUT/teacher/final" --student "$OUT/pruned" --data "$OUT/data" --out "$OUT/distill" \
  --steps "$STUDENT_STEPS" --lr 1e-3 --min-lr 1e-4 --warmup "$STUDENT_WARMUP" --eval-every 50 "${GEOMETRY[@]}"

# 6. the same architecture from random init, same tokens
unless "$OUT/scratch/final" "${K[@]}" train --init "$OUT/pruned/config.json" --data "$OUT/data" --out "$OUT/scratch" \
  --steps "$STUDENT_STEPS" --lr 3e-3 --min-lr 3e-4 --warmup "$STUDENT_WARMUP" --eval-every 50 "${GEOMETRY[@]}"
unless "$OUT/scratch_lr1e-3/final" "${K[@]}" train --init "$OUT/pruned/config.json" --data "$OUT/data" --out "$OUT/scratch_lr1e-3" \
  --steps "$STUDENT_STEPS" --lr 1e-3 --min-lr 1e-4 --warmup "$STUDENT_WARMUP" --eval-every 50 "${GEOMETRY[@]}"

# 7. curves and numbers
run node --import tsx scripts/experiments/distill_vs_scratch.ts report "$OUT" \
  --svg "$RESULTS/distill_vs_scratch.svg" --json "$RESULTS/distill_vs_scratch.json"
