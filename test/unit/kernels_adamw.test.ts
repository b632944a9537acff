// AdamW reference kernel against a float64 transcription of torch.optim.AdamW's single-tensor
// loop over several steps, a closed-form first step, and sumSquares' float64 accumulation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adamwUpdate, sumSquares } from '../../src/tensor/kernels/adamw.ts';
import { randn, relErr, assertClose } from '../helpers.ts';

interface Hyper { lr: number; beta1: number; beta2: number; eps: number; wd: number }

/**
 * torch/optim/adamw.py _single_tensor_adamw (amsgrad=False, maximize=False), in float64:
 *   step_t += 1; param.mul_(1 - lr * weight_decay)
 *   exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   step_size = lr / bias_correction1
 *   denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 */
function torchAdamW64(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, step: number, h: Hyper): void {
  const bc1 = 1 - h.beta1 ** step, bc2Sqrt = Math.sqrt(1 - h.beta2 ** step);
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - h.lr * h.wd;
    m[i] += (g[i] - m[i]) * (1 - h.beta1);
    v[i] = v[i] * h.beta2 + (1 - h.beta2) * g[i] * g[i];
    p[i] += -(h.lr / bc1) * m[i] / (Math.sqrt(v[i]) / bc2Sqrt + h.eps);
  }
}

// large lr and wd make the order of decay and update visible (lr*wd*lr ~ 5e-3 per step), and
// gradients ~ eps make the placement of eps visible
const configs: [string, Hyper, number][] = [
  ['lr=0.1,wd=0.5,eps=1e-3', { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-3, wd: 0.5 }, 1e-3],
  ['lr=1e-3,wd=0.1,eps=1e-8', { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, wd: 0.1 }, 1],
  ['lr=0.05,wd=0,eps=1e-6', { lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-6, wd: 0 }, 0.1],
];

for (const [name, h, gscale] of configs) {
  test(`adamwUpdate(n=257,steps=6,${name}) matches torch.optim.AdamW in float64`, () => {
    const n = 257, steps = 6;
    const p = randn(n, 31), m = new Float32Array(n), v = new Float32Array(n);
    const p64 = Float64Array.from(p), m64 = new Float64Array(n), v64 = new Float64Array(n);
    for (let step = 1; step <= steps; step++) {
      const g = randn(n, 100 + step, gscale);
      adamwUpdate(p, g, m, v, n, h.lr, h.beta1, h.beta2, h.eps, h.wd, step);
      torchAdamW64(p64, Float64Array.from(g), m64, v64, step, h);
    }
    // float32 state rounding only: a few ulps after six steps
    assert.ok(relErr(p, p64) < 1e-6, `params relErr ${relErr(p, p64)}`);
    assert.ok(relErr(m, m64) < 1e-6, `m relErr ${relErr(m, m64)}`);
    assert.ok(relErr(v, v64) < 1e-6, `v relErr ${relErr(v, v64)}`);
  });
}

test('adamwUpdate(n=4,step=1) first step is p*(1-lr*wd) - lr*g/(|g|+eps)', () => {
  // with m = v = 0 the bias corrections give mhat = g and vhat = g^2 exactly
  const lr = 0.01, wd = 0.1, eps = 1e-8;
  const p = new Float32Array([1, -2, 0.5, 3]), g = new Float32Array([0.3, -0.1, 0, 2]);
  const m = new Float32Array(4), v = new Float32Array(4);
  const want = Array.from(p, (pi, i) => pi * (1 - lr * wd) - lr * g[i] / (Math.abs(g[i]) + eps));
  adamwUpdate(p, g, m, v, 4, lr, 0.9, 0.999, eps, wd, 1);
  for (let i = 0; i < 4; i++) assertClose(p[i], want[i], 1e-7, `p[${i}]`);
  assert.deepEqual(Array.from(m), Array.from(g, (x) => Math.fround(0.1 * x)));
});

test('adamwUpdate(n=3) only touches the first n elements and rejects step 0', () => {
  const p = new Float32Array([1, 1, 1, 1]), g = new Float32Array([1, 1, 1, 1]);
  const m = new Float32Array(4), v = new Float32Array(4);
  adamwUpdate(p, g, m, v, 3, 0.1, 0.9, 0.999, 1e-8, 0, 1);
  assert.equal(p[3], 1);
  assert.ok(p[2] < 1);
  assert.throws(() => adamwUpdate(p, g, m, v, 3, 0.1, 0.9, 0.999, 1e-8, 0, 0), /step must be >= 1/);
});

test('sumSquares(n=1000) matches a float64 sum', () => {
  const x = randn(1000, 41);
  let want = 0;
  for (const xi of x) want += xi * xi;
  assertClose(sumSquares(x, 1000), want, 1e-12, 'sumSquares');
  assertClose(sumSquares(x, 10), x.subarray(0, 10).reduce((s, xi) => s + xi * xi, 0), 1e-12, 'first 10');
});

test('sumSquares(n=2^20+1) keeps terms a float32 sum would drop', () => {
  // 1 + 2^20 * (2^-12)^2 = 1.0625 exactly; in float32 every 2^-24 added to 1 is a tie that rounds back to 1
  const n = 2 ** 20 + 1, x = new Float32Array(n).fill(2 ** -12);
  x[0] = 1;
  assert.equal(sumSquares(x, n), 1.0625);
});
