// SwiGLU reference kernel: forward against the float64 formula silu(g) * u, backward against
// central finite differences of L = dot(out, proj) evaluated in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { swigluForward, swigluBackward } from '../../src/tensor/kernels/swiglu.ts';
import { randn, relErr, finiteDiff, dot } from '../helpers.ts';

/** silu(g) * u with silu(g) = g / (1 + e^-g), rows of [gate | up]. */
function swigluNaive64(gateup: Float32Array, N: number, F: number): Float64Array {
  const y = new Float64Array(N * F);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < F; i++) {
      const g = gateup[n * 2 * F + i], u = gateup[n * 2 * F + F + i];
      y[n * F + i] = (g / (1 + Math.exp(-g))) * u;
    }
  }
  return y;
}

for (const [N, F] of [[4, 48], [1, 5], [3, 1536]] as const) {
  test(`swiglu(N=${N},F=${F}) forward matches the float64 formula`, () => {
    const gateup = randn(N * 2 * F, 11, 3);
    const out = new Float32Array(N * F);
    swigluForward(out, gateup, N, F);
    const want = swigluNaive64(gateup, N, F);
    assert.ok(relErr(out, want) < 1e-7, `relErr ${relErr(out, want)}`);
  });
}

test('swiglu(N=1,F=6) forward at saturating gates stays finite', () => {
  // silu(g) -> g for g >> 0 and -> -0 for g << 0; exp(-g) overflowing to Inf must not give NaN
  const gateup = new Float32Array([-1000, -100, -20, 0, 20, 1000, 2, 2, 2, 2, 2, 2]);
  const out = new Float32Array(6);
  swigluForward(out, gateup, 1, 6);
  assert.deepEqual(Array.from(out).map((v) => Object.is(v, -0) ? 0 : v),
    [0, Math.fround(-200 / (1 + Math.exp(100))), Math.fround(-40 / (1 + Math.exp(20))), 0,
      Math.fround(40 / (1 + Math.exp(-20))), 2000]);
});

for (const [N, F] of [[4, 48], [2, 7]] as const) {
  test(`swiglu(N=${N},F=${F}) backward matches finite differences`, () => {
    const gateup = randn(N * 2 * F, 12, 2), proj = randn(N * F, 13);
    const dgateup = new Float32Array(N * 2 * F);
    swigluBackward(dgateup, proj, gateup, N, F);
    const fd = finiteDiff(() => dot(swigluNaive64(gateup, N, F), proj), gateup, 2 ** -10);
    assert.ok(relErr(dgateup, fd) < 1e-3, `dgateup relErr ${relErr(dgateup, fd)}`);
  });
}

test('swiglu(N=2,F=8) backward adds into dgateup', () => {
  const N = 2, F = 8;
  const gateup = randn(N * 2 * F, 14), dout = randn(N * F, 15);
  const fresh = new Float32Array(N * 2 * F);
  swigluBackward(fresh, dout, gateup, N, F);
  const acc = randn(N * 2 * F, 16);
  const want = Array.from(acc, (v, i) => v + fresh[i]);
  swigluBackward(acc, dout, gateup, N, F);
  assert.ok(relErr(acc, want) < 1e-6, `relErr ${relErr(acc, want)}`);
});
