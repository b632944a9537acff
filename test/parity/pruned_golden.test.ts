// Pruned checkpoints against the independent PyTorch reference (scripts/reference/
// make_pruned_fixture.py): each case in test/fixtures_pruned/ holds synthetic scores, the pruned
// folder our pruner wrote (which the reference loaded from config.json alone and matched tensor
// by tensor against its own slicing of the source), and the reference's logits on it. Here:
// re-pruning from the committed scores must reproduce the committed folder byte for byte, and
// the engine's logits on it must match the reference's.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../../src/model/load.ts';
import { batchFromRows } from '../../src/model/batch.ts';
import { readSafetensorsHeader, readTensorF32 } from '../../src/io/safetensors.ts';
import { openCheckpoint } from '../../src/io/checkpoint.ts';
import { loadScores } from '../../src/prune/scores.ts';
import { makePlan, parseTarget, parseDepth } from '../../src/prune/plan.ts';
import { prune } from '../../src/prune/apply.ts';
import { relErr, tempDir } from '../helpers.ts';

const ROOT = path.join(import.meta.dirname, '..');
const CASES_DIR = path.join(ROOT, 'fixtures_pruned');
const LOGITS_TOL = 1e-4;

interface Golden { case: string; source: string; target: string; depth: string; ids: number[][] }

const tmp = tempDir('kompresor-pruned-golden-');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cases = fs.readdirSync(CASES_DIR).filter((d) => !d.startsWith('.')).sort();
test('pruned golden cases are present', () => {
  assert.deepEqual(cases, ['llama_head_dim_heads', 'llama_linear_rope_heads', 'llama_untied_depth_width', 'qwen2_bias_all_axes']);
});

for (const name of cases) {
  const dir = path.join(CASES_DIR, name);
  const golden: Golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8'));
  const committed = path.join(dir, 'model');

  test(`${name}: re-pruning from the committed scores reproduces the committed folder byte for byte`, () => {
    const src = path.join(ROOT, 'fixtures', golden.source);
    const plan = makePlan(openCheckpoint(src).config, { target: parseTarget(golden.target), depth: parseDepth(golden.depth) });
    const out = path.join(tmp, name);
    prune(src, plan, loadScores(path.join(dir, 'scores.json')), out);
    const files = fs.readdirSync(committed).sort();
    assert.deepEqual(fs.readdirSync(out).sort(), files);
    for (const f of files) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(committed, f))), `${f} differs`);
  });

  test(`${name}: engine logits on the pruned checkpoint within ${LOGITS_TOL} of the reference`, async () => {
    const { model } = await loadModel(committed);
    const batch = batchFromRows(golden.ids);
    const V = model.cfg.vocabSize;
    const ours = new Float32Array(batch.B * batch.T * V);
    model.logits(batch, (r0, rows, chunk) => ours.set(chunk.subarray(0, rows * V), r0 * V));
    const h = readSafetensorsHeader(path.join(dir, 'golden.safetensors'));
    const err = relErr(ours, readTensorF32(h, h.tensors.get('logits')!));
    assert.ok(err < LOGITS_TOL, `logits relative error ${err.toExponential(2)}`);
  });
}
