// The KD loss against golden values from an independent PyTorch statement of it
// (scripts/reference/make_kd_fixture.py, float64 autograd, F.kl_div with log_target): per-row KL,
// mean loss and d(loss)/d(student logits) for forward and reverse KL, temperatures 0.5 to 2, the
// T^2 factor, teacher top-k, and CE + KD with the KD term rescaled to CE. The bar: loss and
// gradient within 1e-5. The head runs on the kernels in use (native when built); the kernel-level
// check runs the TypeScript reference and, when built, the native kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kdLossOnRows } from '../../src/distill/kd_head.ts';
import { reference } from '../../src/tensor/ops.ts';
import { native } from '../../src/tensor/native.ts';
import type { Kernels } from '../../src/tensor/kernels/types.ts';
import { maxAbsDiff } from '../helpers.ts';

const TOL = 1e-5;

interface KdCase {
  name: string; temperature: number; topK: number; reverse: boolean; scaleT2: boolean; lmLoss: boolean; kdLossScale: number;
  N: number; V: number; logits: number[]; teacherLogits: number[]; targets: number[];
  rowKL: number[]; kd: number; ce: number | null; loss: number; grad: number[];
}

const file = join(import.meta.dirname, '../fixtures_kd/kd_cases.json');
const { cases } = JSON.parse(readFileSync(file, 'utf8')) as { cases: KdCase[] };

test('KD golden cases are present and cover every option', () => {
  assert.ok(cases.length >= 10, `expected at least 10 cases, found ${cases.length}`);
  for (const key of ['reverse', 'scaleT2', 'lmLoss'] as const) assert.ok(cases.some((c) => c[key]), `a case with ${key}`);
  assert.ok(cases.some((c) => c.topK > 0) && cases.some((c) => c.temperature !== 1), 'top-k and temperature cases');
});

/** |a - b| <= TOL * max(1, |b|) */
function assertNear(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b)), `${what}: ${a} vs reference ${b}`);
}

for (const c of cases) {
  const opts = { temperature: c.temperature, topK: c.topK, reverse: c.reverse, scaleT2: c.scaleT2, lmLoss: c.lmLoss, kdLossScale: c.kdLossScale };

  test(`KD golden ${c.name} (T=${c.temperature},topK=${c.topK},reverse=${c.reverse},t2=${c.scaleT2},lm=${c.lmLoss}): loss and gradient within ${TOL}`, () => {
    const logits = Float32Array.from(c.logits);
    const r = kdLossOnRows(logits, Float32Array.from(c.teacherLogits), Int32Array.from(c.targets), c.N, c.V, opts, true);
    assertNear(r.loss, c.loss, 'loss');
    assertNear(r.kd, c.kd, 'kd');
    if (c.ce !== null) assertNear(r.ce!, c.ce, 'ce');
    const err = maxAbsDiff(logits, c.grad);
    assert.ok(err <= TOL, `gradient: max abs difference ${err.toExponential(2)}`);
  });

  if (c.lmLoss) continue;
  const sides: [string, Kernels['kdForwardBackward'] | undefined][] = [['reference', reference.kdForwardBackward], ['native', native?.kdForwardBackward]];
  for (const [side, kernel] of sides) {
    test(`KD golden ${c.name}: the ${side} kernel's per-row KL and gradient within ${TOL}`, (t) => {
      if (!kernel) return t.skip('the native addon is not built');
      const count = c.targets.filter((x) => x >= 0).length, t2 = c.scaleT2 ? c.temperature ** 2 : 1;
      const losses = new Float32Array(c.N), grad = Float32Array.from(c.logits);
      kernel(losses, grad, Float32Array.from(c.teacherLogits), Int32Array.from(c.targets), c.N, c.V,
        c.temperature, c.topK, c.reverse, t2 / count);
      c.rowKL.forEach((kl, n) => assertNear(losses[n], kl, `row ${n} KL`));
      const err = maxAbsDiff(grad, c.grad);
      assert.ok(err <= TOL, `gradient: max abs difference ${err.toExponential(2)}`);
    });
  }
}
