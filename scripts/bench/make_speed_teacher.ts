// Writes the randomly initialised Mistral-shaped teacher of BENCHMARKS.md "Pruned vs teacher
// speed": a complete HF folder (config.json, model.safetensors, a byte-level BPE tokenizer) that
// `kompresor score`, `prune`, `bench` and `export` accept. Random weights are enough for speed.
//
//   node --import tsx scripts/bench/make_speed_teacher.ts OUT_DIR [--layers 20] [--hidden 384]
//     [--intermediate 1344] [--vocab 2048] [--seed 1]
//
// Shape (defaults): a Mistral/Bielik-like decoder scaled down: hidden 384, 20 layers, 6 query heads
// and 2 KV heads of 64 (GQA 3:1), SwiGLU MLP 1344 (3.5x), untied embeddings, RoPE theta 1e6, no
// sliding window; vocabulary 2048 = 256 bytes + 1789 byte-pair merges + 3 specials, so the
// embeddings are ~4% of the parameters (Bielik-11B: ~2%), not the bulk of a tiny model.
import fs from 'node:fs';
import path from 'node:path';
import { byteLevelTokenizer, bytesToUnicode } from '../../src/io/byte_tokenizer.ts';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { initWeights } from '../../src/model/init.ts';
import { saveModel } from '../../src/model/load.ts';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const out = process.argv[2];
if (!out || out.startsWith('--')) {
  console.error('usage: node --import tsx scripts/bench/make_speed_teacher.ts OUT_DIR [--layers N] [--hidden N] [--intermediate N] [--vocab N] [--seed N]');
  process.exit(1);
}
const vocab = arg('--vocab', 2048);
// merges of two single-byte symbols, printable pairs first: each adds one distinct token
const sym = bytesToUnicode();
const order = [...Array.from({ length: 95 }, (_, i) => 32 + i), ...Array.from({ length: 256 }, (_, i) => i).filter((b) => b < 32 || b > 126)];
const merges: [string, string][] = [];
for (const a of order) for (const b of order) if (merges.length < vocab - 259) merges.push([sym[a], sym[b]]);
const tf = byteLevelTokenizer(merges);
const hidden = arg('--hidden', 384);
const raw = {
  architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_act: 'silu',
  hidden_size: hidden, num_hidden_layers: arg('--layers', 20), num_attention_heads: hidden / 64, num_key_value_heads: 2, head_dim: 64,
  intermediate_size: arg('--intermediate', 1344), vocab_size: tf.vocabSize, max_position_embeddings: 4096, rope_theta: 1e6,
  rms_norm_eps: 1e-5, sliding_window: null, tie_word_embeddings: false, initializer_range: 0.02,
  bos_token_id: null, eos_token_id: tf.specialIds['<|im_end|>'], torch_dtype: 'float32',
};
const model = new Decoder(normalizeConfig(raw, 'speed teacher'));
initWeights(model, arg('--seed', 1));
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'tokenizer.json'), JSON.stringify(tf.tokenizerJson));
fs.writeFileSync(path.join(out, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
saveModel(model, out, raw);
console.log(`wrote ${out}: ${model.layout.total.toLocaleString('en-US')} parameters, vocabulary ${tf.vocabSize}`);
