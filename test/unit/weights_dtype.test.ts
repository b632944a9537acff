// Weights held as the checkpoint stores them: a bf16/f16 checkpoint loaded with weights 'auto'
// keeps its matrices in 16 bits (widened inside the GEMM) and its vectors in float32, and its
// forward computes what the float32 path computes on the same (widened) values: logits to float32
// rounding of a different summation order, the same greedy tokens. A float32 checkpoint forced to
// bf16 is rounded once at load, so its logits differ from float32's by bf16 rounding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { normalizeConfig } from '../../src/io/hf_config.ts';
import { Decoder } from '../../src/model/decoder.ts';
import { loadModel, saveModel, type WeightsOption } from '../../src/model/load.ts';
import { HalfBlocks, storeBytes } from '../../src/model/parameters.ts';
import { batchFromRows } from '../../src/model/batch.ts';
import { generate } from '../../src/model/generate.ts';
import { GREEDY } from '../../src/model/sampling.ts';
import type { FloatDtype } from '../../src/io/safetensors.ts';
import { randn, relErr, tempDir, throwsWith } from '../helpers.ts';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures');
const ROWS = [[1, 5, 9, 13, 2, 40, 7, 3], [4, 4, 8, 60, 31, 0, 11, 12]];

/** A fixture's config with random weights (norms near 1), saved in `dtype`. */
function saved(fixture: string, dtype: FloatDtype): string {
  const raw = JSON.parse(fs.readFileSync(path.join(FIXTURES, fixture, 'config.json'), 'utf8'));
  const m = new Decoder(normalizeConfig(raw, fixture));
  const w = randn(m.params.length, 7, 0.3);
  for (const s of m.layout.slots) {
    const v = m.params.view(s);
    v.set(w.subarray(s.offset, s.offset + s.size));
    if (s.name.endsWith('norm.weight')) for (let i = 0; i < v.length; i++) v[i] = 1 + 0.2 * v[i];
  }
  const dir = path.join(tempDir('kompresor-wdt-'), fixture);
  saveModel(m, dir, raw, { dtype });
  return dir;
}

function logits(m: Decoder): Float32Array {
  const out: number[] = [];
  m.logits(batchFromRows(ROWS), (_r0, _n, chunk) => out.push(...chunk));
  return Float32Array.from(out);
}

const greedy = (m: Decoder) => generate(m, ROWS, { maxNewTokens: 6, sampling: GREEDY, seed: 0, eosTokenIds: [] }).tokens;

for (const [fixture, dtype] of [['llama_untied', 'BF16'], ['qwen2_bias', 'BF16'], ['llama_tied_gqa', 'F16']] as const) {
  test(`${fixture} stored ${dtype}: weights 'auto' keep 16 bits, logits match the float32 path to float rounding, same greedy tokens`, async () => {
    const dir = saved(fixture, dtype);
    const f32 = (await loadModel(dir, { weights: 'f32' })).model;
    const half = (await loadModel(dir, { weights: 'auto' })).model;
    assert.equal(half.weightDtype, dtype === 'BF16' ? 'bf16' : 'f16');
    assert.ok(half.weights instanceof HalfBlocks);
    const held = half.weights.arrays.reduce((s, a) => s + a.byteLength, 0);
    assert.equal(held, storeBytes(half.layout, half.weightDtype), '2 bytes per parameter in the blocks');
    assert.equal(held * 2, f32.weights.arrays.reduce((s, a) => s + a.byteLength, 0), 'half the bytes of float32');
    const a = logits(half), b = logits(f32);
    assert.ok(relErr(a, b) < 1e-5, `logits relErr ${relErr(a, b)}`);
    assert.deepEqual(greedy(half), greedy(f32));
  });
}

test('a float32 checkpoint forced to bf16 is rounded once: logits within bf16 rounding of float32, not equal', async () => {
  const dir = saved('llama_untied', 'F32');
  const f32 = (await loadModel(dir, { weights: 'auto' })).model;
  assert.equal(f32.weightDtype, 'f32', "'auto' keeps a float32 checkpoint in float32");
  const bf = (await loadModel(dir, { weights: 'bf16' as WeightsOption })).model;
  const err = relErr(logits(bf), logits(f32));
  assert.ok(err > 1e-5 && err < 2e-2, `relErr ${err}: bf16 rounding of the weights (2^-9 relative per weight)`);
});

test('a 16-bit model runs forward only: backward, params and saving refuse with one clear line', async () => {
  const half = (await loadModel(saved('llama_tied_gqa', 'BF16'), { weights: 'auto' })).model;
  throwsWith(() => half.params, 'impl_error', /holds bf16 weights for forward passes only/);
  throwsWith(() => half.lossAndBackward(batchFromRows(ROWS)), 'impl_error', /a backward pass needs float32 weights; this model holds bf16/);
});

test('weights larger than the memory budget are refused before any read, naming the size and what would fit', async () => {
  const dir = saved('llama_untied', 'BF16');
  const layout = (await loadModel(dir, { weights: 'auto' })).model.layout;
  const f32Bytes = layout.total * 4;
  // float32 does not fit, bf16 does: the hint says keep them as stored
  await assert.rejects(loadModel(dir, { weights: 'f32', maxMemory: f32Bytes - 1 }), (e: Error) => {
    assert.match(e.message, /the weights must fit in memory; expected at most .* \(--max-memory\)/);
    assert.match(e.message, new RegExp(`${layout.total.toLocaleString('en-US')} parameters = .* as f32`));
    assert.match(e.message, /--weights-dtype auto/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  // neither fits: the hint points to streaming
  await assert.rejects(loadModel(dir, { weights: 'auto', maxMemory: 1000 }), /as bf16.*--stream/);
  assert.equal((await loadModel(dir, { weights: 'auto', maxMemory: layout.total * 2 })).model.weightDtype, 'bf16');
});
