// Matmul (linear layer) reference kernel: forward against a naive float64 formula in the HF
// nn.Linear layout (weight is [OC, C]), bias and accumulate semantics, backward against central
// finite differences of L = dot(out, proj) evaluated in float64, and backward adding into (not
// overwriting) its gradients, each of which may be skipped with null.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matmulForward, matmulBackward } from '../../src/tensor/kernels/matmul.ts';
import { randn, relErr, finiteDiff, dot } from '../helpers.ts';

/** out[n, o] = sum_c inp[n, c] * weight[o, c] + bias[o], in float64. */
function linearNaive64(inp: Float32Array, weight: Float32Array, bias: Float32Array | null, N: number, C: number, OC: number): Float64Array {
  const y = new Float64Array(N * OC);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OC; o++) {
      let s = bias ? bias[o] : 0;
      for (let c = 0; c < C; c++) s += inp[n * C + c] * weight[o * C + c];
      y[n * OC + o] = s;
    }
  }
  return y;
}

test('matmul(N=2,C=3,OC=2) forward on a hand-computed example', () => {
  // inp = [[1, 2, 3], [4, 5, 6]], weight = [[1, 0, -1], [2, 1, 0]] ([OC, C]), bias = [10, 20]
  const inp = new Float32Array([1, 2, 3, 4, 5, 6]), weight = new Float32Array([1, 0, -1, 2, 1, 0]);
  const out = new Float32Array(4);
  matmulForward(out, inp, weight, new Float32Array([10, 20]), 2, 3, 2);
  assert.deepEqual(Array.from(out), [1 - 3 + 10, 2 + 2 + 20, 4 - 6 + 10, 8 + 5 + 20]);
  matmulForward(out, inp, weight, null, 2, 3, 2);
  assert.deepEqual(Array.from(out), [-2, 4, -2, 13]);
  matmulForward(out, inp, weight, null, 2, 3, 2, true); // out += inp @ weight^T
  assert.deepEqual(Array.from(out), [-4, 8, -4, 26]);
});

for (const [N, C, OC] of [[5, 64, 48], [1, 7, 3], [3, 300, 2]] as const) {
  for (const withBias of [true, false]) {
    test(`matmul(N=${N},C=${C},OC=${OC},bias=${withBias}) forward matches the float64 formula`, () => {
      const inp = randn(N * C, 1, 2), weight = randn(OC * C, 2, 0.1), bias = withBias ? randn(OC, 3) : null;
      const out = new Float32Array(N * OC).fill(NaN); // overwritten, never read
      matmulForward(out, inp, weight, bias, N, C, OC);
      const want = linearNaive64(inp, weight, bias, N, C, OC);
      // the reference sums each dot in a JS double and rounds once: within half a float32 ulp
      assert.ok(relErr(out, want) < 1e-7, `relErr ${relErr(out, want)}`);
    });
  }
}

test('matmul(N=4,C=32,OC=16) accumulate adds the product and the bias to out exactly once', () => {
  const N = 4, C = 32, OC = 16;
  const inp = randn(N * C, 4), weight = randn(OC * C, 5, 0.2), bias = randn(OC, 6), resid = randn(N * OC, 7);
  const lin = linearNaive64(inp, weight, bias, N, C, OC);
  for (const b of [bias, null]) {
    const out = resid.slice();
    matmulForward(out, inp, weight, b, N, C, OC, true);
    const want = Float64Array.from(resid, (r, i) => r + lin[i] - (b ? 0 : bias[i % OC]));
    assert.ok(relErr(out, want) < 1e-6, `bias=${b !== null}: relErr ${relErr(out, want)}`);
  }
  // accumulate=false (explicit) overwrites like the default
  const out = resid.slice();
  matmulForward(out, inp, weight, bias, N, C, OC, false);
  assert.ok(relErr(out, lin) < 1e-7, `relErr ${relErr(out, lin)}`);
});

for (const [N, C, OC] of [[3, 8, 5], [4, 17, 6]] as const) {
  test(`matmul(N=${N},C=${C},OC=${OC}) backward matches finite differences for dinp, dweight and dbias`, () => {
    const inp = randn(N * C, 11), weight = randn(OC * C, 12, 0.5), bias = randn(OC, 13), proj = randn(N * OC, 14);
    const dinp = new Float32Array(N * C), dweight = new Float32Array(OC * C), dbias = new Float32Array(OC);
    matmulBackward(dinp, dweight, dbias, proj, inp, weight, N, C, OC);
    const L = () => dot(linearNaive64(inp, weight, bias, N, C, OC), proj);
    // L is linear in each of inp, weight and bias, so central differences have no truncation
    // error at any step; the step 0.25 keeps the float32 rounding of x +- eps (~1e-7) small next to it
    const eps = 0.25;
    for (const [name, got, x] of [['dinp', dinp, inp], ['dweight', dweight, weight], ['dbias', dbias, bias]] as const) {
      const fd = finiteDiff(L, x, eps);
      assert.ok(relErr(got, fd) < 1e-5, `${name} relErr ${relErr(got, fd)}`);
    }
  });
}

test('matmul(N=3,C=8,OC=5) backward adds into its gradients and skips the null ones', () => {
  const N = 3, C = 8, OC = 5;
  const inp = randn(N * C, 21), weight = randn(OC * C, 22), dout = randn(N * OC, 23);
  const fresh = { dinp: new Float32Array(N * C), dweight: new Float32Array(OC * C), dbias: new Float32Array(OC) };
  matmulBackward(fresh.dinp, fresh.dweight, fresh.dbias, dout, inp, weight, N, C, OC);
  for (const v of Object.values(fresh)) assert.ok(v.some((x) => Math.abs(x) > 1e-3), 'the gradient must not be zero');
  for (const skip of ['none', 'dinp', 'dweight', 'dbias'] as const) {
    const pre = { dinp: randn(N * C, 24), dweight: randn(OC * C, 25), dbias: randn(OC, 26) };
    const bufs = {
      dinp: skip === 'dinp' ? null : pre.dinp.slice(),
      dweight: skip === 'dweight' ? null : pre.dweight.slice(),
      dbias: skip === 'dbias' ? null : pre.dbias.slice(),
    };
    matmulBackward(bufs.dinp, bufs.dweight, bufs.dbias, dout, inp, weight, N, C, OC);
    for (const k of ['dinp', 'dweight', 'dbias'] as const) {
      const got = bufs[k];
      if (!got) continue;
      const want = Float64Array.from(pre[k], (v, i) => v + fresh[k][i]);
      assert.ok(relErr(got, want) < 1e-6, `${k} (skipping ${skip}) must accumulate, not overwrite: relErr ${relErr(got, want)}`);
    }
  }
});
