// A checkpoint of more than 2^32 parameters (the most one typed array holds on Node 20) loads and
// runs. Shape-only so CI stays small: hidden 256, 6 layers, MLP 1,048,576 channels (the largest
// intermediate_size a config may name) → 4.83B parameters, 9.7 GB of bf16 written sparsely (a header, the small tensors, and a few values at the
// far end of each MLP tensor; the rest is a hole in the file, read back as zeros).
//
// The check: the big model's forward equals that of a small model with the same weights and MLP 8,
// whose last MLP channel holds what the big model's channel 1,048,575 holds (every other channel
// is zero in both, so contributes nothing). It passes only if the loader lands values read past
// byte 2^32 of a file at their place in a layer block of 805M elements.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { loadModel } from '../../src/model/load.ts';
import { buildLayout, HalfBlocks } from '../../src/model/parameters.ts';
import { batchFromRows } from '../../src/model/batch.ts';
import { layerSlice } from '../../src/model/activations.ts';
import { f32ToBf16 } from '../../src/tensor/kernels/dtype.ts';
import { randn, relErr, tempDir } from '../helpers.ts';

const BIG_F = 2 ** 20, SMALL_F = 8, C = 256, L = 6, V = 256;
const config = (F: number) => ({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: V, hidden_size: C, intermediate_size: F,
  num_hidden_layers: L, num_attention_heads: 1, num_key_value_heads: 1, head_dim: C, max_position_embeddings: 64,
  rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, torch_dtype: 'bfloat16',
});

/** Values of every tensor of the small model, in bf16 (so both models hold exactly the same numbers). */
function smallValues(): Map<string, Uint16Array> {
  const layout = buildLayout(normalizeConfig(config(SMALL_F), 'small'));
  const out = new Map<string, Uint16Array>();
  layout.slots.forEach((s, i) => {
    const v = randn(s.size, 100 + i, s.name.endsWith('norm.weight') ? 0.1 : 0.3);
    if (s.name.endsWith('norm.weight')) for (let k = 0; k < v.length; k++) v[k] += 1;
    // only the last MLP channel is nonzero
    if (s.name.includes('.mlp.')) for (let k = 0; k < v.length; k++) if (!isLastChannel(s.name, s.shape, k)) v[k] = 0;
    const h = new Uint16Array(s.size);
    f32ToBf16(h, v, s.size);
    out.set(s.name, h);
  });
  return out;
}

function isLastChannel(name: string, shape: number[], k: number): boolean {
  const [rows, cols] = shape;
  return name.includes('down_proj') ? k % cols === cols - 1 : Math.floor(k / cols) === rows - 1;
}

/** A sparse bf16 safetensors file of the big shape: only the small tensors and the last MLP channel are written. */
function writeBig(dir: string, small: Map<string, Uint16Array>): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config(BIG_F)));
  const layout = buildLayout(normalizeConfig(config(BIG_F), 'big'));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const s of layout.slots) { header[s.name] = { dtype: 'BF16', shape: s.shape, data_offsets: [off, off + 2 * s.size] }; off += 2 * s.size; }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = fs.openSync(path.join(dir, 'model.safetensors'), 'w');
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(json.length));
  fs.writeSync(fd, len, 0, 8, 0);
  fs.writeSync(fd, Buffer.from(json), 0, json.length, 8);
  const data = 8 + json.length;
  const put = (at: number, values: Uint16Array) => fs.writeSync(fd, new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 0, values.byteLength, data + at);
  for (const s of layout.slots) {
    const begin = (header[s.name] as { data_offsets: number[] }).data_offsets[0];
    const v = small.get(s.name)!;
    if (!s.name.includes('.mlp.')) put(begin, v);
    else if (s.name.includes('down_proj')) for (let c = 0; c < C; c++) put(begin + 2 * (c * BIG_F + BIG_F - 1), v.subarray(c * SMALL_F + SMALL_F - 1, c * SMALL_F + SMALL_F));
    else put(begin + 2 * (BIG_F - 1) * C, v.subarray((SMALL_F - 1) * C, SMALL_F * C));
  }
  fs.ftruncateSync(fd, data + off);
  fs.closeSync(fd);
}

test(`a ${L}-layer checkpoint of 4.83B parameters (bf16, MLP ${BIG_F}) loads in blocks and computes what its small twin computes`, async () => {
  const small = smallValues();
  const dir = path.join(tempDir('kompresor-big-'), 'big');
  writeBig(dir, small);
  const big = (await loadModel(dir, { weights: 'auto' })).model;
  assert.ok(big.layout.total > 2 ** 32, `${big.layout.total} parameters`);
  assert.ok(big.weights instanceof HalfBlocks);
  assert.ok(big.weights.arrays.every((a) => a.length < 2 ** 32), 'no array over the typed-array limit');
  const twin = new Decoder(normalizeConfig(config(SMALL_F), 'small'));
  for (const s of twin.layout.slots) {
    const v = twin.params.view(s);
    const h = small.get(s.name)!;
    for (let k = 0; k < v.length; k++) v[k] = new Float32Array(new Uint32Array([h[k] << 16]).buffer)[0];
  }
  big.forwardOnly = twin.forwardOnly = true;
  const batch = batchFromRows([[3, 200, 17, 99]]);
  const out = (m: Decoder) => layerSlice(m.forward(batch).buf.lnf, 0, 4 * C).slice();
  const a = out(big), b = out(twin);
  assert.ok(b.some((x) => x !== 0));
  assert.ok(relErr(a, b) < 1e-5, `final hidden states relErr ${relErr(a, b)}`);
});
