// Native kernels against their TypeScript references (rmsnorm, swiglu, fused cross-entropy,
// AdamW/sumSquares, dtype conversion) at realistic sizes, on subarray views with a nonzero
// byteOffset, plus argument validation. The addon must be built: scripts/test.sh builds it first,
// so a missing addon is a failure here, not a skip.
//
// Bounds: the two sides round differently (float vs float64 intermediates, a vectorised expf in
// cross-entropy, summation order), so float outputs agree to relErr < 1e-6 (a few float32 ulps
// in the norm); AdamW computes in double on both sides (< 1e-7); sumSquares sums in double
// (relative 1e-12); the dtype conversions are exact and compared bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmsnormForward, rmsnormBackward } from '../../src/tensor/kernels/rmsnorm.ts';
import { swigluForward, swigluBackward } from '../../src/tensor/kernels/swiglu.ts';
import { crossEntropyForwardBackward } from '../../src/tensor/kernels/cross_entropy.ts';
import { adamwUpdate, sumSquares } from '../../src/tensor/kernels/adamw.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/tensor/kernels/dtype.ts';
import { randn, relErr, rng } from '../helpers.ts';
import { nat, offsetF32, offsetU16, offsetI32, assertRel, checkShortBuffers } from '../native_helpers.ts';

// the second size crosses the kernels' parallel threshold (2^16 elements), the first runs serially
for (const [N, C] of [[64, 576], [256, 576]] as const) {
  test(`rmsnorm(N=${N},C=${C}) native forward and backward match the reference on offset views`, () => {
    const eps = 1e-5;
    const inp = offsetF32(randn(N * C, 61, 2)), weight = offsetF32(randn(C, 62)), dout = offsetF32(randn(N * C, 63));
    const out = [offsetF32(new Float32Array(N * C)), new Float32Array(N * C)];
    const rstd = [offsetF32(new Float32Array(N)), new Float32Array(N)];
    nat('rmsnormForward')(out[0], rstd[0], inp, weight, N, C, eps);
    rmsnormForward(out[1], rstd[1], inp, weight, N, C, eps);
    assertRel(out[0], out[1], 1e-6, 'out');
    assertRel(rstd[0], rstd[1], 1e-6, 'rstd');

    // backward adds into pre-filled gradients on both sides
    const dinp = [offsetF32(randn(N * C, 64)), randn(N * C, 64)];
    const dweight = [offsetF32(randn(C, 65)), randn(C, 65)];
    nat('rmsnormBackward')(dinp[0], dweight[0], dout, inp, weight, rstd[1], N, C);
    rmsnormBackward(dinp[1], dweight[1], dout, inp, weight, rstd[1], N, C);
    assertRel(dinp[0], dinp[1], 1e-6, 'dinp');
    assertRel(dweight[0], dweight[1], 1e-6, 'dweight');
  });
}

test('rmsnorm native rejects short buffers, naming the argument', () => {
  const N = 4, C = 8;
  const f = (n: number) => new Float32Array(n);
  checkShortBuffers('rmsnormForward', () => [f(N * C), f(N), f(N * C), f(C), N, C, 1e-5],
    [[0, 'out'], [1, 'rstd'], [2, 'inp'], [3, 'weight']]);
  checkShortBuffers('rmsnormBackward', () => [f(N * C), f(C), f(N * C), f(N * C), f(C), f(N), N, C],
    [[0, 'dinp'], [1, 'dweight'], [2, 'dout'], [3, 'inp'], [4, 'weight'], [5, 'rstd']]);
  assert.throws(() => nat('rmsnormForward')(f(N * C), f(N), new Float64Array(N * C) as unknown as Float32Array,
    f(C), N, C, 1e-5), /rmsnormForward: argument inp must be a Float32Array/);
  assert.throws(() => nat('rmsnormForward')(f(N * C), f(N), f(N * C), f(C), -1, C, 1e-5),
    /rmsnormForward: argument N must be a non-negative integer/);
});

for (const [N, F] of [[4, 64], [64, 1536]] as const) {
  test(`swiglu(N=${N},F=${F}) native forward and backward match the reference on offset views`, () => {
    const gateup = offsetF32(randn(N * 2 * F, 71, 3)), dout = offsetF32(randn(N * F, 72));
    const out = [offsetF32(new Float32Array(N * F)), new Float32Array(N * F)];
    nat('swigluForward')(out[0], gateup, N, F);
    swigluForward(out[1], gateup, N, F);
    assertRel(out[0], out[1], 1e-6, 'out');
    const dgu = [offsetF32(randn(N * 2 * F, 73)), randn(N * 2 * F, 73)];
    nat('swigluBackward')(dgu[0], dout, gateup, N, F);
    swigluBackward(dgu[1], dout, gateup, N, F);
    assertRel(dgu[0], dgu[1], 1e-6, 'dgateup');
  });
}

test('swiglu native rejects short buffers, naming the argument', () => {
  const N = 3, F = 5, f = (n: number) => new Float32Array(n);
  checkShortBuffers('swigluForward', () => [f(N * F), f(N * 2 * F), N, F], [[0, 'out'], [1, 'gateup']]);
  checkShortBuffers('swigluBackward', () => [f(N * 2 * F), f(N * F), f(N * 2 * F), N, F],
    [[0, 'dgateup'], [1, 'dout'], [2, 'gateup']]);
});

test('crossEntropy(N=8,V=49152,dscale=1/8) native matches the reference, with ignored rows', () => {
  const N = 8, V = 49152, dscale = 1 / 8;
  const logits = randn(N * V, 81, 4);
  for (let j = 0; j < V; j++) logits[5 * V + j] += 30; // a row far from zero: the max shift matters
  const targets = offsetI32(new Int32Array([17, -100, 49151, 0, 12345, 777, -1, 40000]));
  const grad = [offsetF32(logits), logits.slice()];
  const losses = [offsetF32(new Float32Array(N).fill(7)), new Float32Array(N).fill(7)];
  nat('crossEntropyForwardBackward')(losses[0], grad[0], targets, N, V, dscale);
  crossEntropyForwardBackward(losses[1], grad[1], targets, N, V, dscale);
  assertRel(losses[0], losses[1], 1e-6, 'losses');
  assertRel(grad[0], grad[1], 1e-6, 'gradient');
  for (const n of [1, 6]) {
    assert.equal(losses[0][n], 0, `ignored row ${n} loss`);
    assert.ok(grad[0].subarray(n * V, (n + 1) * V).every((g) => g === 0), `ignored row ${n} gradient must be zero`);
  }
});

test('crossEntropy(N=3,V=5) native: extreme logits, NaN propagation and bad targets', () => {
  // a logit 200 below the max underflows to probability 0; NaN in a row makes its loss NaN
  const logits = new Float32Array([0, -200, 1, 2, 3, 5, 5, 5, 5, 5, 1, NaN, 0, 0, 0]);
  const grad = [logits.slice(), logits.slice()], losses = [new Float32Array(3), new Float32Array(3)];
  const t = new Int32Array([4, 4, 0]);
  nat('crossEntropyForwardBackward')(losses[0], grad[0], t, 3, 5, 1);
  crossEntropyForwardBackward(losses[1], grad[1], t, 3, 5, 1);
  assertRel(losses[0].subarray(0, 2), losses[1].subarray(0, 2), 1e-6, 'finite losses');
  assertRel(grad[0].subarray(0, 10), grad[1].subarray(0, 10), 1e-6, 'finite gradient rows');
  assert.equal(grad[0][1], 0, 'e^-200 rounds to probability 0');
  assert.ok(Number.isNaN(losses[0][2]), `a NaN logit gives a NaN loss, got ${losses[0][2]}`);
  assert.throws(() => nat('crossEntropyForwardBackward')(new Float32Array(3), logits.slice(), new Int32Array([1, 5, 0]), 3, 5, 1),
    /crossEntropyForwardBackward: targets\[1\] = 5 is out of range for V = 5/);
  const f = (n: number) => new Float32Array(n);
  checkShortBuffers('crossEntropyForwardBackward', () => [f(3), f(15), new Int32Array(3), 3, 5, 1],
    [[0, 'losses'], [1, 'logits'], [2, 'targets']]);
});

for (const n of [1000, 100003]) {
  test(`adamwUpdate(n=${n},steps=4) native matches the reference on offset views`, () => {
    const lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    const p = [offsetF32(randn(n, 91)), randn(n, 91)];
    const m = [offsetF32(new Float32Array(n)), new Float32Array(n)];
    const v = [offsetF32(new Float32Array(n)), new Float32Array(n)];
    for (let step = 1; step <= 4; step++) {
      const g = offsetF32(randn(n, 92 + step, 0.1));
      nat('adamwUpdate')(p[0], g, m[0], v[0], n, lr, b1, b2, eps, wd, step);
      adamwUpdate(p[1], g, m[1], v[1], n, lr, b1, b2, eps, wd, step);
    }
    assertRel(p[0], p[1], 1e-7, 'params');
    assertRel(m[0], m[1], 1e-7, 'm');
    assertRel(v[0], v[1], 1e-7, 'v');
    const f = (k: number) => new Float32Array(k);
    checkShortBuffers('adamwUpdate', () => [f(10), f(10), f(10), f(10), 10, lr, b1, b2, eps, wd, 1],
      [[0, 'params'], [1, 'grads'], [2, 'm'], [3, 'v']]);
    assert.throws(() => nat('adamwUpdate')(f(10), f(10), f(10), f(10), 10, lr, b1, b2, eps, wd, 0), /step must be >= 1/);
  });
}

test('sumSquares(n=1000003) native matches the reference on an offset view', () => {
  const x = offsetF32(randn(1000003, 95));
  const a = nat('sumSquares')(x, x.length), b = sumSquares(x, x.length);
  assert.ok(Math.abs(a - b) <= 1e-12 * b, `native ${a} vs reference ${b}`);
  assert.equal(nat('sumSquares')(x, 0), 0);
  checkShortBuffers('sumSquares', () => [new Float32Array(10), 10], [[0, 'x']]);
});

/** Random float32 bit patterns over all exponents, plus the special values. */
function mixedFloats(n: number, seed: number): Float32Array {
  const r = rng(seed), bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = (Math.floor(r() * 2 ** 32) >>> 0);
  const special = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffa00001, 0x477ff000,
    0x477fefff, 0x33000000, 0x33000001, 0x387fe000, 0x3f808000, 0x3f818000, 0x7f7fffff, 0x00000001];
  special.forEach((b, i) => { bits[i * 997] = b; });
  return new Float32Array(bits.buffer);
}

test('dtype f32ToF16/f32ToBf16 (n=1000001 random bit patterns) native matches the reference bit for bit', () => {
  // 1000001 is not a multiple of 8: covers the vector blocks and the scalar tail
  const n = 1000001, x = offsetF32(mixedFloats(n, 96));
  for (const name of ['f32ToF16', 'f32ToBf16'] as const) {
    const ref = name === 'f32ToF16' ? f32ToF16 : f32ToBf16;
    const a = offsetU16(new Uint16Array(n)), b = new Uint16Array(n);
    nat(name)(a, x, n);
    ref(b, x, n);
    const bad = a.findIndex((h, i) => h !== b[i]);
    assert.equal(bad, -1, bad < 0 ? '' : `${name} at ${bad}: input bits 0x${new Uint32Array(x.slice(bad, bad + 1).buffer)[0]
      .toString(16)}, native 0x${a[bad].toString(16)}, reference 0x${b[bad].toString(16)}`);
  }
});

test('dtype f16ToF32/bf16ToF32 (all 65536 patterns, n=65539) native matches the reference bit for bit', () => {
  const n = 65539, h = offsetU16(Uint16Array.from({ length: n }, (_, i) => i & 0xffff));
  for (const name of ['f16ToF32', 'bf16ToF32'] as const) {
    const ref = name === 'f16ToF32' ? f16ToF32 : bf16ToF32;
    const a = offsetF32(new Float32Array(n)), b = new Float32Array(n);
    nat(name)(a, h, n);
    ref(b, h, n);
    const ab = new Uint32Array(a.buffer, a.byteOffset, n), bb = new Uint32Array(b.buffer);
    const bad = ab.findIndex((u, i) => u !== bb[i]);
    assert.equal(bad, -1, bad < 0 ? '' : `${name} of 0x${h[bad].toString(16)}: native 0x${ab[bad].toString(16)}, reference 0x${bb[bad].toString(16)}`);
  }
});

test('dtype native conversions reject short buffers and wrong array types, naming the argument', () => {
  for (const name of ['f16ToF32', 'bf16ToF32'] as const) {
    checkShortBuffers(name, () => [new Float32Array(9), new Uint16Array(9), 9], [[0, 'out'], [1, 'inp']]);
    assert.throws(() => nat(name)(new Float32Array(9), new Int16Array(9) as unknown as Uint16Array, 9),
      new RegExp(`${name}: argument inp must be a Uint16Array`));
  }
  for (const name of ['f32ToF16', 'f32ToBf16'] as const) {
    checkShortBuffers(name, () => [new Uint16Array(9), new Float32Array(9), 9], [[0, 'out'], [1, 'inp']]);
  }
});

test('dtype native scalar tail (calls of n=7 < one F16C block) matches the reference bit for bit', () => {
  // the 8-wide F16C path never sees these: every element goes through the scalar bit arithmetic
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i), x = mixedFloats(70000, 97);
  for (const [name, ref] of [['f16ToF32', f16ToF32], ['bf16ToF32', bf16ToF32]] as const) {
    for (let i = 0; i + 7 <= all.length; i += 7) {
      const a = new Float32Array(7), b = new Float32Array(7);
      nat(name)(a, all.subarray(i, i + 7), 7);
      ref(b, all.subarray(i, i + 7), 7);
      assert.deepEqual(new Uint32Array(a.buffer), new Uint32Array(b.buffer), `${name} of patterns ${i}..${i + 6}`);
    }
  }
  for (const [name, ref] of [['f32ToF16', f32ToF16], ['f32ToBf16', f32ToBf16]] as const) {
    for (let i = 0; i + 7 <= x.length; i += 7) {
      const a = new Uint16Array(7), b = new Uint16Array(7);
      nat(name)(a, x.subarray(i, i + 7), 7);
      ref(b, x.subarray(i, i + 7), 7);
      assert.deepEqual(a, b, `${name} of elements ${i}..${i + 6}`);
    }
  }
});
