// GGUF export against llama.cpp itself (node-llama-cpp's prebuilt CPU binary, loaded offline): each
// small model is exported per dtype, loaded by llama.cpp, and its logits for a token sequence are
// compared with the engine's logits on the original checkpoint (relative L2 over all positions and
// the whole vocabulary). For f32 the greedy continuation must be the same too.
//
// llama.cpp runs with an F32 KV cache and without flash attention: its default F16 cache rounds K
// and V to f16, which alone costs ~1e-3 relative error and would hide an f32 mismatch.
// Tolerances, from the errors measured here (8 models x 16 positions x 259 logits, logit rms ~1.7):
//   f32  1e-4   measured 5e-7..1e-6: float32 summation order only
//   f16  5e-3   measured 1.3e-3..2.4e-3: f16 weights, and ggml rounds activations to f16 for f16 matmuls
//   bf16 3e-2   measured 1.05e-2..1.5e-2: 8-bit mantissas for the weights and (in ggml) the activations
//   q8_0 8e-2   measured 2.1e-2..5.1e-2: 8-bit weights per 32-block, and ggml quantizes activations to q8_0 too
// node-llama-cpp is an optionalDependency; when it is missing this test fails (it does not skip).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../../src/model/load.ts';
import { batchFromRows } from '../../src/model/batch.ts';
import { generate } from '../../src/model/generate.ts';
import { GREEDY } from '../../src/model/sampling.ts';
import { exportGguf, type ExportDtype } from '../../src/export/gguf_export.ts';
import { relErr, tempDir } from '../helpers.ts';
import { makeByteModel, llamaCppLogitsOf, cpuLlama } from '../gguf_helpers.ts';

import type { Token } from 'node-llama-cpp';
import { loadTokenizer } from '../../src/io/tokenizer.ts';

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;

const TOL: Partial<Record<ExportDtype, number>> = { f32: 1e-4, f16: 5e-3, bf16: 3e-2, q8_0: 8e-2 };
const DTYPES: ExportDtype[] = ['f32', 'f16', 'bf16', 'q8_0'];
/** "Hello world!\n" as bytes, then two special tokens and a few more ids. */
const IDS = [72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10, 257, 200, 3];

interface Case { name: string; fixture: string; arch: 'llama' | 'qwen2'; overrides?: Record<string, unknown> }
const CASES: Case[] = [
  { name: 'llama_tied_gqa', fixture: 'llama_tied_gqa', arch: 'llama' },
  { name: 'llama_untied', fixture: 'llama_untied', arch: 'llama' },
  { name: 'qwen2_bias', fixture: 'qwen2_bias', arch: 'qwen2' },
  { name: 'llama_head_dim', fixture: 'llama_head_dim', arch: 'llama' },
  // a head-pruned Qwen2: 4 x 16 = 64 != hidden 32 goes out as arch llama
  { name: 'qwen2_head_dim', fixture: 'qwen2_bias', arch: 'llama', overrides: { head_dim: 16 } },
  { name: 'llama3_rope', fixture: 'llama3_rope', arch: 'llama' },
  { name: 'llama_linear_rope_bias', fixture: 'llama_linear_rope', arch: 'llama' },
  // every row a multiple of 32, so q8_0 quantizes all matrices (the fixtures' intermediate 16 falls back to f16)
  { name: 'llama_q8_dims', fixture: 'llama_untied', arch: 'llama',
    overrides: { hidden_size: 64, intermediate_size: 96, num_attention_heads: 4, num_key_value_heads: 2 } },
];

let llama: Llama;
const tmp = tempDir('kompresor-gguf-llamacpp-');

before(async () => { llama = await cpuLlama(); });

after(async () => {
  await llama?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('node-llama-cpp loads its prebuilt CPU binary offline', () => {
  assert.equal(llama.buildType, 'prebuilt');
  assert.equal(llama.gpu, false);
});

const llamaCppLogits = (file: string, ids: number[], V: number) => llamaCppLogitsOf(llama, file, ids, V);

function argmaxRows(x: Float32Array, V: number): number[] {
  return Array.from({ length: x.length / V }, (_, t) => {
    let best = 0;
    for (let v = 1; v < V; v++) if (x[t * V + v] > x[t * V + best]) best = v;
    return best;
  });
}

for (const c of CASES) {
  test(`${c.name}: llama.cpp logits match the engine per dtype (${DTYPES.join(', ')})`, async (t) => {
    const dir = path.join(tmp, c.name);
    makeByteModel(dir, c.fixture, c.overrides);
    const { model } = await loadModel(dir);
    const V = model.cfg.vocabSize, T = IDS.length;
    const ours = new Float32Array(T * V);
    model.logits(batchFromRows([IDS]), (r0, n, chunk) => ours.set(chunk.subarray(0, n * V), r0 * V));
    const errors: string[] = [];
    for (const dtype of DTYPES) {
      const file = path.join(tmp, `${c.name}-${dtype}.gguf`);
      const s = exportGguf(dir, file, { dtype });
      assert.equal(s.gguf_arch, c.arch);
      const theirs = await llamaCppLogits(file, IDS, V);
      const err = relErr(theirs, ours);
      errors.push(`${dtype} ${err.toExponential(2)}`);
      assert.ok(err < TOL[dtype]!, `${c.name} ${dtype}: relative logit error ${err.toExponential(3)} >= ${TOL[dtype]}`);
      if (dtype === 'f32') assert.deepEqual(argmaxRows(theirs, V), argmaxRows(ours, V), 'f32 argmax per position');
    }
    t.diagnostic(`${c.name} relative logit error: ${errors.join(', ')}`);
  });
}

test('greedy continuation is the same token for token in llama.cpp (f32, llama and qwen2)', async () => {
  for (const name of ['llama_tied_gqa', 'qwen2_bias']) {
    const dir = path.join(tmp, name);
    const { model } = await loadModel(dir);
    const prompt = IDS.slice(0, 6);
    const res = generate(model, [prompt], { maxNewTokens: 12, sampling: GREEDY, seed: 0, eosTokenIds: [] });
    const seq = [...prompt, ...res.tokens[0]];
    const theirs = await llamaCppLogits(path.join(tmp, `${name}-f32.gguf`), seq, model.cfg.vocabSize);
    // llama.cpp's greedy choice after each prefix must be the engine's next token
    const next = argmaxRows(theirs, model.cfg.vocabSize).slice(prompt.length - 1, seq.length - 1);
    assert.deepEqual(next, res.tokens[0], `${name}: greedy tokens`);
  }
});

test('llama.cpp tokenizes and detokenizes like the model folder (byte-level BPE with merges, specials)', async () => {
  const dir = path.join(tmp, 'merges');
  makeByteModel(dir, 'llama_tied_gqa', {}, 7, [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['l', 'l'], ['ll', 'o']]);
  const file = path.join(tmp, 'merges.gguf');
  exportGguf(dir, file, { dtype: 'f16' });
  const tok = loadTokenizer(dir);
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    assert.equal(model.tokens.eos, tok.eosTokenIds[0]);
    for (const text of ['hello the world', 'Hello, the  tall hello!\n\n  héllo 世界 🙂 it\'s 42', '<|im_start|>user\nhello<|im_end|>']) {
      const ours = tok.encode(text);
      assert.deepEqual([...model.tokenize(text, true)], ours, `tokens of ${JSON.stringify(text)}`);
      assert.equal(model.detokenize(ours.map((t) => t as Token), true), text);
    }
  } finally {
    await model.dispose();
  }
});
