// The engine against golden dumps of an independent PyTorch re-implementation of the HF modeling
// code (scripts/reference/, float64): logits, loss and EVERY parameter gradient, for each
// architecture variant (tied/untied, GQA, llama3 and linear RoPE scaling, Qwen2 bias, Mistral
// sliding window shorter than the sequence, explicit head_dim, packed documents).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/model/load.ts';
import { batchFromDocs, batchFromRows, IGNORE, type Batch } from '../../src/model/batch.ts';
import { readSafetensorsHeader, readTensorF32 } from '../../src/io/safetensors.ts';
import { relErr } from '../helpers.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures');
const LOGITS_TOL = 1e-4;   // ||dlogits|| / ||logits||, the bar
const GRAD_TOL = 1e-3;     // per tensor

interface Golden { ids: number[][]; doc_ids?: number[][]; targets: number[][]; loss: number; packed?: boolean }

function goldenBatch(g: Golden): Batch {
  if (!g.packed) return batchFromRows(g.ids);
  const T = g.ids[0].length;
  const rows = g.ids.map((ids, b) => {
    const docs: number[][] = [];
    ids.forEach((id, t) => {
      if (t === 0 || g.doc_ids![b][t] !== g.doc_ids![b][t - 1]) docs.push([]);
      docs[docs.length - 1].push(id);
    });
    return docs;
  });
  return batchFromDocs(rows, T, 0);
}

function goldenTensor(dir: string, name: string): Float32Array {
  const h = readSafetensorsHeader(join(dir, 'golden.safetensors'));
  return readTensorF32(h, h.tensors.get(name)!);
}

const cases = readdirSync(FIXTURES).filter((d) => !d.startsWith('.')).sort();
test('golden fixtures are present', () => {
  assert.ok(cases.length >= 8, `expected at least 8 fixture cases, found ${cases.length}`);
});

for (const name of cases) {
  const dir = join(FIXTURES, name);
  const golden: Golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));

  test(`${name}: batch targets match the reference's target rule`, () => {
    const batch = goldenBatch(golden);
    golden.targets.forEach((row, b) => {
      const ours = Array.from(batch.targets.subarray(b * batch.T, b * batch.T + row.length));
      assert.deepEqual(ours, row);
      assert.equal(batch.targets[(b + 1) * batch.T - 1], IGNORE, 'the last position has no target');
    });
  });

  test(`${name}: logits within ${LOGITS_TOL} of the HF reference`, async () => {
    const { model } = await loadModel(dir);
    const batch = goldenBatch(golden);
    const V = model.cfg.vocabSize;
    const ours = new Float32Array(batch.B * batch.T * V);
    model.logits(batch, (r0, rows, chunk) => ours.set(chunk.subarray(0, rows * V), r0 * V));
    const ref = goldenTensor(dir, 'logits');
    const err = relErr(ours, ref);
    assert.ok(err < LOGITS_TOL, `logits relative error ${err.toExponential(2)}`);
  });

  test(`${name}: loss and every parameter gradient within ${GRAD_TOL}`, async () => {
    const { model } = await loadModel(dir);
    const batch = goldenBatch(golden);
    model.zeroGrad();
    const loss = model.lossAndBackward(batch);
    assert.ok(Math.abs(loss - golden.loss) < 1e-5 * Math.max(1, golden.loss), `loss ${loss} vs reference ${golden.loss}`);
    for (const s of model.layout.slots) {
      const ours = model.grads!.view(s);
      const err = relErr(ours, goldenTensor(dir, `grad.${s.name}`));
      assert.ok(err < GRAD_TOL, `gradient of ${s.name}: relative error ${err.toExponential(2)}`);
    }
  });
}
