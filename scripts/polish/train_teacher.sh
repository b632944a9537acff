#!/usr/bin/env bash
# Trains the Polish teacher of the demo (issue 7) from scratch: a MistralForCausalLM of ~14M
# parameters (hidden 384, 8 layers, 6 query / 2 KV heads of 64, MLP 1024, tied embeddings,
# the 4096-token Polish BPE) on the corpus that scripts/polish/build_corpus.ts makes from Debian
# packages, then briefly SFT'd on the project's Polish instruction data, then published as bf16 to
# models/polish-teacher (scripts/polish/publish_teacher.ts writes the model card from the metrics).
# Every step is a kompresor command, so the run is resumable: re-running this script continues an
# interrupted stage (kompresor train/sft --resume) instead of starting over. ~35 min on 2 cores.
#   OUT (default runs/polish/teacher)   MODEL (default models/polish-teacher)
# The published teacher was made exactly so: 600 steps (~1.2M tokens, one epoch), then the same run
# extended to 1800 steps with --resume --steps 1800 (the cosine schedule stretches from there on),
# then 300 SFT steps.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/polish/teacher}
MODEL=${MODEL:-models/polish-teacher}
K="node bin/kompresor.mjs"
node --import tsx scripts/polish/build_corpus.ts
node --import tsx scripts/polish/train_tokenizer.ts
node --import tsx scripts/polish/build_instructions.ts
mkdir -p "$OUT/init"
cp runs/polish/tokenizer/tokenizer.json runs/polish/tokenizer/tokenizer_config.json "$OUT/init/"
cat > "$OUT/init/config.json" <<JSON
{"architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 4096,
 "hidden_size": 384, "intermediate_size": 1024, "num_hidden_layers": 8,
 "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 64, "hidden_act": "silu",
 "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
 "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "float32"}
JSON
[ -f "$OUT/data/manifest.json" ] || $K data prepare --input runs/polish/corpus/train.jsonl \
  --tokenizer "$OUT/init" --out "$OUT/data" --val-fraction 0.05 --seed 1
# pretraining: 600 steps, then the same run extended to 1800 (each command resumes if interrupted)
if [ ! -d "$OUT/run" ]; then
  $K train --init "$OUT/init/config.json" --data "$OUT/data" --out "$OUT/run" \
    --steps 600 --micro-batch 8 --seq-len 256 --lr 2e-3 --min-lr 2e-4 --warmup 50 \
    --save-every 100 --eval-every 100 --seed 1
fi
if ! grep -q '"step":1800,' "$OUT/run/metrics.jsonl"; then
  $K train --resume "$OUT/run" --steps 1800
fi
# SFT on the instruction data (chat rows and plain few-shot arithmetic); every 25th row held out
if [ ! -f "$OUT/sft_train.jsonl" ]; then
  awk 'NR % 25 != 0' runs/polish/instructions/sft_mix.jsonl > "$OUT/sft_train.jsonl"
  awk 'NR % 25 == 0' runs/polish/instructions/sft_mix.jsonl > "$OUT/sft_eval.jsonl"
fi
if [ -f "$OUT/sft/latest" ] && [ ! -d "$OUT/sft/final" ]; then
  $K sft --resume "$OUT/sft"
elif [ ! -d "$OUT/sft/final" ]; then
  $K sft "$OUT/run/final" --data "$OUT/sft_train.jsonl" --eval-data "$OUT/sft_eval.jsonl" \
    --out "$OUT/sft" --steps 300 --micro-batch 8 --seq-len 256 --lr 2e-4 --min-lr 2e-5 \
    --warmup 20 --save-every 100 --eval-every 50 --seed 1
fi
node --import tsx scripts/polish/publish_teacher.ts --pretrain "$OUT/run" --sft "$OUT/sft" --out "$MODEL"
