// RMSNorm reference kernel: forward against a naive float64 formula, backward against central
// finite differences of L = dot(out, proj) evaluated in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmsnormForward, rmsnormBackward } from '../../src/tensor/kernels/rmsnorm.ts';
import { randn, relErr, finiteDiff, dot } from '../helpers.ts';

/** HF LlamaRMSNorm written out directly in float64: y = x / sqrt(mean(x^2) + eps) * w. */
function rmsnormNaive64(inp: Float32Array, weight: Float32Array, N: number, C: number, eps: number): Float64Array {
  const y = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    const row = Array.from(inp.subarray(n * C, (n + 1) * C));
    const ms = row.reduce((s, v) => s + v * v, 0) / C;
    for (let c = 0; c < C; c++) y[n * C + c] = (row[c] / Math.sqrt(ms + eps)) * weight[c];
  }
  return y;
}

for (const [N, C, eps] of [[5, 64, 1e-5], [3, 576, 1e-6], [1, 7, 1e-5]] as const) {
  test(`rmsnorm(N=${N},C=${C},eps=${eps}) forward matches the float64 formula`, () => {
    const inp = randn(N * C, 1, 2), weight = randn(C, 2);
    const out = new Float32Array(N * C), rstd = new Float32Array(N);
    rmsnormForward(out, rstd, inp, weight, N, C, eps);
    const want = rmsnormNaive64(inp, weight, N, C, eps);
    assert.ok(relErr(out, want) < 1e-6, `out relErr ${relErr(out, want)}`);
    for (let n = 0; n < N; n++) {
      let ss = 0;
      for (let c = 0; c < C; c++) ss += inp[n * C + c] ** 2;
      const r = 1 / Math.sqrt(ss / C + eps);
      assert.ok(Math.abs(rstd[n] - r) <= 1e-7 * r, `rstd[${n}] = ${rstd[n]}, want ${r}`);
    }
  });
}

test('rmsnorm(N=2,C=4) forward on a hand-computed row', () => {
  // row [1, 2, 3, 4]: mean of squares 7.5 -> rstd = 1/sqrt(7.5); row 2 is zeros: out stays 0 (rstd = 1/sqrt(eps) is finite)
  const inp = new Float32Array([1, 2, 3, 4, 0, 0, 0, 0]), weight = new Float32Array([1, 0.5, 2, -1]);
  const out = new Float32Array(8), rstd = new Float32Array(2);
  rmsnormForward(out, rstd, inp, weight, 2, 4, 1e-6);
  const r = Math.fround(1 / Math.sqrt(7.5 + 1e-6));
  assert.deepEqual(Array.from(out.subarray(0, 4)), [r, r, 6 * r, -4 * r].map(Math.fround));
  assert.deepEqual(Array.from(out.subarray(4)), [0, 0, 0, -0]); // 0 * rstd * -1 is -0
  assert.equal(rstd[1], Math.fround(1 / Math.sqrt(1e-6)));
});

for (const [N, C] of [[5, 64], [2, 33]] as const) {
  test(`rmsnorm(N=${N},C=${C}) backward matches finite differences`, () => {
    const eps = 1e-5;
    const inp = randn(N * C, 3), weight = randn(C, 4, 0.5);
    for (let c = 0; c < C; c++) weight[c] += 1; // HF initialises the weight at 1
    const proj = randn(N * C, 5);
    const out = new Float32Array(N * C), rstd = new Float32Array(N);
    rmsnormForward(out, rstd, inp, weight, N, C, eps);

    const dinp = new Float32Array(N * C), dweight = new Float32Array(C);
    rmsnormBackward(dinp, dweight, proj, inp, weight, rstd, N, C);

    const L = () => dot(rmsnormNaive64(inp, weight, N, C, eps), proj);
    const fdInp = finiteDiff(L, inp, 2 ** -10), fdW = finiteDiff(L, weight, 2 ** -10);
    assert.ok(relErr(dinp, fdInp) < 1e-3, `dinp relErr ${relErr(dinp, fdInp)}`);
    assert.ok(relErr(dweight, fdW) < 1e-3, `dweight relErr ${relErr(dweight, fdW)}`);
  });
}

test('rmsnorm(N=3,C=16) backward adds into the gradient buffers', () => {
  const N = 3, C = 16;
  const inp = randn(N * C, 6), weight = randn(C, 7), dout = randn(N * C, 8);
  const out = new Float32Array(N * C), rstd = new Float32Array(N);
  rmsnormForward(out, rstd, inp, weight, N, C, 1e-5);
  const dinp0 = new Float32Array(N * C), dw0 = new Float32Array(C);
  rmsnormBackward(dinp0, dw0, dout, inp, weight, rstd, N, C);
  const dinp = randn(N * C, 9), dw = randn(C, 10);
  const want = Array.from(dinp, (v, i) => v + dinp0[i]), wantW = Array.from(dw, (v, i) => v + dw0[i]);
  rmsnormBackward(dinp, dw, dout, inp, weight, rstd, N, C);
  assert.ok(relErr(dinp, want) < 1e-6 && relErr(dw, wantW) < 1e-6, 'backward must accumulate, not overwrite');
});
