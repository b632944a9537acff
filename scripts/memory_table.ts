// Bytes per parameter of a training run's state for every memory option (docs/training.md,
// "Memory"): weights, gradients, AdamW moments and the activation arena of one micro-batch, as
// src/train/memory.ts computes them (what `kompresor train|distill|sft|dpo|grpo` report at start).
// Usage: node --import tsx scripts/memory_table.ts (CONFIG.json | seed-student) [MICRO_BATCH SEQ_LEN]
//   seed-student = the seed's 7.35B student: 40 layers, hidden 4096, MLP 11264, 32/8 heads of
//   128, vocab 32128, untied lm_head (Bielik-11B-v3.0 pruned by recipes/bielik-11b-to-7b.yaml).
import fs from 'node:fs';
import { normalizeConfig } from '../src/io/hf_config.ts';
import { stateMemory } from '../src/train/memory.ts';
import type { OptimState } from '../src/train/moments.ts';
import type { FreezablePart } from '../src/model/freeze.ts';

const SEED_STUDENT = {
  architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32128, hidden_size: 4096, intermediate_size: 11264,
  num_hidden_layers: 40, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, max_position_embeddings: 8192,
  rms_norm_eps: 1e-5, rope_theta: 1e6, tie_word_embeddings: false, torch_dtype: 'bfloat16',
};

const [which = 'seed-student', mb = '1', sl = '4096'] = process.argv.slice(2);
const raw = which === 'seed-student' ? SEED_STUDENT : JSON.parse(fs.readFileSync(which, 'utf8'));
const cfg = normalizeConfig(raw, which);
const B = Number(mb), T = Number(sl);
const rows: [OptimState, FreezablePart[], boolean][] = [
  ['f32', [], false], ['bf16', [], false], ['int8', [], false], ['f32', [], true],
  ['int8', ['embeddings'], false], ['int8', ['embeddings', 'lm_head'], false],
  ['int8', ['embeddings'], true], ['int8', ['embeddings', 'lm_head'], true],
];
const g = (b: number) => (b / 2 ** 30).toFixed(2);
const first = stateMemory(cfg, { optimState: 'f32', freeze: [], recompute: false, microBatch: B, seqLen: T });
console.log(`${which}: ${first.parameters.toLocaleString('en-US')} parameters; activations for micro-batch ${B} x ${T} tokens\n`);
console.log('| options | weights | gradients | moments | state bytes/param | state GiB | activations GiB (bytes/token) | total GiB |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [optimState, freeze, recompute] of rows) {
  const m = stateMemory(cfg, { optimState, freeze, recompute, microBatch: B, seqLen: T });
  const per = (b: number) => (b / m.parameters).toFixed(2);
  const name = [`--optim-state ${optimState}`, freeze.length ? `--freeze ${freeze.join(',')}` : '', recompute ? '--recompute' : ''].filter(Boolean).join(' ');
  const state = m.weights_bytes + m.gradients_bytes + m.moments_bytes;
  console.log(`| \`${name}\` | ${per(m.weights_bytes)} | ${per(m.gradients_bytes)} | ${per(m.moments_bytes)} | ${m.bytes_per_parameter.toFixed(2)} | ${g(state)} | ` +
    `${g(m.activations_bytes)} (${Math.round(m.activation_bytes_per_token).toLocaleString('en-US')}) | ${g(state + m.activations_bytes)} |`);
}
