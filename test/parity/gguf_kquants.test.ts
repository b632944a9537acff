// The block types (Q4_0, Q4_K_M, Q5_K_M, Q6_K, and the 32-value fallbacks Q5_0/Q5_1/Q8_0) against
// llama.cpp itself: each export is loaded and run by llama.cpp (node-llama-cpp's prebuilt CPU
// binary), and its logits are compared with our engine run on the weights read back from the same
// file (our dequantizer). If a block layout were off by a bit, llama.cpp would decode other
// weights than ours and the two would disagree at the level of the quantization error itself;
// the remaining difference is llama.cpp quantizing the activations to 8 bits (Q8_K / Q8_0) for
// these matmuls, as q8_0 shows (its file weights are exact here). Measured relative L2 error
// (16 positions x 259 logits; weights N(0, std^2) with std scaled to the width):
//                       llama_256 q8_0 / q4_0 / q4_k_m / q5_k_m / q6_k      qwen2_96 q8_0 / q4_k_m / q5_k_m / q6_k
//   vs the file's weights  2.6e-2 / 2.4e-2 / 3.4e-2 / 3.4e-2 / 3.6e-2        2.4e-2 / 3.0e-2 / 3.1e-2 / 2.8e-2
//   vs the original        3.7e-2 / 0.40 / 0.33 / 0.19 / 0.10                3.7e-2 / 0.17 / 0.16 / 4.7e-2
// Tolerances: 5e-2 against the file's weights, and for the 4-5 bit types at most half the error
// against the original (a wrong layout would put it at or above that error).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../../src/model/load.ts';
import { batchFromRows } from '../../src/model/batch.ts';
import type { Decoder } from '../../src/model/decoder.ts';
import { exportGguf, tensorMap, chooseArch, type ExportDtype } from '../../src/export/gguf_export.ts';
import { readGguf, readGgufTensorF32 } from '../../src/export/gguf_reader.ts';
import { relErr, tempDir } from '../helpers.ts';
import { makeByteModel, llamaCppLogitsOf, cpuLlama } from '../gguf_helpers.ts';
import { measureQuality } from '../../src/eval/gguf_quality.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';

type NodeLlamaCpp = typeof import('node-llama-cpp');
let llama: Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
const tmp = tempDir('kompresor-gguf-kquants-');
const IDS = [72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10, 257, 200, 3];

before(async () => { llama = await cpuLlama(); });

after(async () => {
  await llama?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function logitsOf(model: Decoder): Float32Array {
  const V = model.cfg.vocabSize, out = new Float32Array(IDS.length * V);
  model.logits(batchFromRows([IDS]), (r0, n, chunk) => out.set(chunk.subarray(0, n * V), r0 * V));
  return out;
}

/** Overwrites the model's weights with the file's (dequantized, q/k rows back to HF order). */
function loadGgufWeights(model: Decoder, file: string): void {
  const g = readGguf(file);
  const byName = new Map(model.layout.slots.map((s) => [s.name, s]));
  for (const m of tensorMap(model.cfg, chooseArch(model.cfg))) {
    if (m.hf === null) continue;
    const x = readGgufTensorF32(g, m.gguf);
    const s = byName.get(m.hf)!;
    const dst = model.params.view(s);
    if (m.permuteHeads === 0) { dst.set(x); continue; }
    const rows = m.shape[0], cols = x.length / rows, hd = rows / m.permuteHeads, h2 = hd / 2;
    for (let h = 0; h < m.permuteHeads; h++) {
      for (let half = 0; half < 2; half++) {
        for (let i = 0; i < h2; i++) {
          const hf = (h * hd + half * h2 + i) * cols, gg = (h * hd + 2 * i + half) * cols;
          dst.set(x.subarray(gg, gg + cols), hf);
        }
      }
    }
  }
  if (model.cfg.tieWordEmbeddings && byName.has('lm_head.weight')) throw new Error('unexpected lm_head in a tied layout');
}

interface Case { name: string; fixture: string; overrides: Record<string, unknown>; std: number; dtypes: ExportDtype[]; types: string[] }
const K256 = { hidden_size: 256, intermediate_size: 512, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2 };
const CASES: Case[] = [
  // rows of 256 and 512: every matrix a true k-quant
  { name: 'llama_256', fixture: 'llama_untied', overrides: K256, std: 0.1, dtypes: ['q8_0', 'q4_0', 'q4_k_m', 'q5_k_m', 'q6_k'], types: ['Q4_0', 'Q4_K', 'Q5_K', 'Q6_K'] },
  // hidden 96: rows of 96 fall back to Q5_0 / Q5_1 / Q8_0; a tied head
  { name: 'qwen2_96', fixture: 'qwen2_bias', overrides: { hidden_size: 96, intermediate_size: 256, num_attention_heads: 3, num_key_value_heads: 1 }, std: 0.17,
    dtypes: ['q8_0', 'q4_k_m', 'q5_k_m', 'q6_k'], types: ['Q5_0', 'Q5_1', 'Q8_0'] },
];

for (const c of CASES) {
  test(`${c.name}: llama.cpp runs ${c.dtypes.join(', ')} like the engine on the same weights`, async (t) => {
    const dir = path.join(tmp, c.name);
    makeByteModel(dir, c.fixture, c.overrides, 7, [], c.std);
    const { model } = await loadModel(dir);
    const V = model.cfg.vocabSize;
    const original = logitsOf(model);
    const seen = new Set<string>(), lines: string[] = [];
    for (const dtype of c.dtypes) {
      const file = path.join(tmp, `${c.name}-${dtype}.gguf`);
      const s = exportGguf(dir, file, { dtype });
      Object.keys(s.types).forEach((k) => seen.add(k));
      const theirs = await llamaCppLogitsOf(llama, file, IDS, V);
      const { model: q } = await loadModel(dir);
      loadGgufWeights(q, file);
      const same = relErr(theirs, logitsOf(q)), orig = relErr(theirs, original);
      lines.push(`${dtype} vs same weights ${same.toExponential(2)}, vs original ${orig.toExponential(2)}`);
      assert.ok(same < 5e-2, `${c.name} ${dtype}: llama.cpp vs engine on the file's weights ${same.toExponential(3)} >= 5e-2`);
      // a misplaced bit would make llama.cpp decode other weights: its error would reach the quantization error itself
      if (dtype !== 'q8_0' && dtype !== 'q6_k') assert.ok(same < 0.5 * orig, `${c.name} ${dtype}: ${same.toExponential(3)} is not well below the quantization error ${orig.toExponential(3)}`);
    }
    for (const ty of c.types) assert.ok(seen.has(ty), `${c.name}: expected some ${ty} tensors, got ${[...seen].join(', ')}`);
    t.diagnostic(lines.join('; '));
  });
}

test('the quality report\'s bits per byte (filtered logits + total weight) equal the full-logits computation', async () => {
  const dir = path.join(tmp, 'quality');
  makeByteModel(dir, 'qwen2_bias', {}, 7, [], 0.1);
  const s = exportGguf(dir, path.join(tmp, 'quality-f16.gguf'), { dtype: 'f16' });
  const texts = ['Ala ma kota i psa.', 'The quick brown fox jumps over the lazy dog, twice.'];
  const jsonl = path.join(tmp, 'quality.jsonl');
  fs.writeFileSync(jsonl, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  const q = await measureQuality([{ dtype: 'f16', weighted: false, path: s.out, bytes: s.bytes, bits_per_weight: s.bits_per_weight }],
    dir, jsonl, { documents: 2, maxTokens: 64, threads: 1, kept: new Set([s.out]) });
  const tok = loadTokenizer(dir), V = 259;
  let nats = 0, bytes = 0;
  for (const text of texts) {
    const ids = tok.encode(text);
    const logits = await llamaCppLogitsOf(llama, s.out, ids, V, false);
    for (let t = 0; t + 1 < ids.length; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
      nats += max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0)) - row[ids[t + 1]];
    }
    bytes += Buffer.byteLength(text, 'utf8');
  }
  assert.equal(q.bytes, bytes);
  assert.ok(Math.abs(q.rows[0].bits_per_byte - nats / Math.LN2 / bytes) < 1e-5, `${q.rows[0].bits_per_byte} vs ${nats / Math.LN2 / bytes}`);
  assert.equal(q.rows[0].file, s.out);
});
