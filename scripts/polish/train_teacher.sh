#!/usr/bin/env bash
# Trains the Polish teacher of the demo (issue 7) from scratch: a MistralForCausalLM of ~14M
# parameters (hidden 384, 8 layers, 6 query / 2 KV heads of 64, MLP 1024, tied embeddings,
# the 4096-token Polish BPE) on the corpus that scripts/polish/build_corpus.ts makes from Debian
# packages. Every step is a kompresor command, so the run is resumable: re-running this script
# continues an interrupted training (kompresor train --resume) instead of starting over.
#   OUT (default runs/polish/teacher)   STEPS (default 600, ~1.2M tokens = one epoch)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/polish/teacher}
STEPS=${STEPS:-600}
K="node bin/kompresor.mjs"
node --import tsx scripts/polish/build_corpus.ts
node --import tsx scripts/polish/train_tokenizer.ts
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
if [ -f "$OUT/run/latest" ]; then
  $K train --resume "$OUT/run"
elif [ ! -d "$OUT/run/final" ]; then
  $K train --init "$OUT/init/config.json" --data "$OUT/data" --out "$OUT/run" \
    --steps "$STEPS" --micro-batch 8 --seq-len 256 --lr 2e-3 --min-lr 2e-4 --warmup 50 \
    --save-every 100 --eval-every 100 --seed 1
fi
echo "teacher: $OUT/run/final"
