// Native kdForwardBackward against its TypeScript reference: full vocabulary and top-k, forward
// and reverse, several temperatures, at sizes on both sides of the parallel threshold (2^16
// elements) and on subarray views with a nonzero byteOffset; ignored rows, NaN rows, -Infinity
// teacher logits, an identical teacher, top-k ties, and argument validation. The addon must be
// built (scripts/test.sh builds it), so a missing addon is a failure here, not a skip.
//
// Bounds: the native side takes exponentials with a vectorised float expf (relative error < 2e-7)
// and rounds (z - max) / T in float before it; the reference is float64 throughout. Losses and
// gradients agree to relErr < 1e-5 (measured: 1e-8 to 2e-7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kdForwardBackward } from '../../src/tensor/kernels/kd_loss.ts';
import { randn, relErr } from '../helpers.ts';
import { nat, offsetF32, offsetI32, assertRel } from '../native_helpers.ts';

/** Runs both kernels on the same inputs; returns [native, reference] losses and gradients. */
function both(z: Float32Array, u: Float32Array, targets: Int32Array, N: number, V: number,
  [T, k, reverse, dscale]: [T: number, topK: number, reverse: boolean, dscale: number]) {
  const out = [0, 1].map(() => ({ losses: offsetF32(new Float32Array(N)), grad: offsetF32(z) }));
  nat('kdForwardBackward')(out[0].losses, out[0].grad, u, targets, N, V, T, k, reverse, dscale);
  kdForwardBackward(out[1].losses, out[1].grad, u, targets, N, V, T, k, reverse, dscale);
  return out;
}

// [N, V, T, topK, reverse]: the first sizes run serially, the last ones cross the threshold
const CASES = [
  [8, 1000, 1, 0, false], [8, 1000, 2, 0, true], [8, 1000, 0.7, 50, false], [8, 1000, 1.5, 50, true],
  [96, 4096, 1, 0, false], [96, 4096, 1, 0, true], [96, 4096, 2, 256, false], [96, 4096, 1, 1024, true],
] as const;

for (const [N, V, T, k, reverse] of CASES) {
  test(`kd(N=${N},V=${V},T=${T},topK=${k},reverse=${reverse}) native matches the reference on offset views`, () => {
    const z = randn(N * V, 81, 3), u = offsetF32(randn(N * V, 82, 3));
    const targets = offsetI32(Int32Array.from({ length: N }, (_, n) => (n % 5 === 3 ? -100 : n)));
    const [a, b] = both(z, u, targets, N, V, [T, k, reverse, 0.25]);
    assertRel(a.losses, b.losses, 1e-5, 'losses');
    assertRel(a.grad, b.grad, 1e-5, 'gradient');
    // the structure is exact: ignored rows are zero, and with top-k the same ids are kept
    for (let n = 0; n < N; n++) {
      const ga = a.grad.subarray(n * V, (n + 1) * V), gb = b.grad.subarray(n * V, (n + 1) * V);
      if (targets[n] < 0) assert.ok(a.losses[n] === 0 && ga.every((g) => g === 0), `row ${n} is ignored`);
      if (k > 0) assert.ok(ga.every((g, j) => (g === 0) === (gb[j] === 0)), `row ${n}: the same ids are kept`);
    }
  });
}

test('kd(N=4,V=5000) native gives exactly 0 loss and 0 gradient for an identical teacher', () => {
  const N = 4, V = 5000, z = randn(N * V, 83, 3);
  for (const [T, k, reverse] of [[1, 0, false], [2, 0, true], [1, 100, false], [0.5, 100, true]] as const) {
    const [a] = both(z, z.slice(), new Int32Array(N), N, V, [T, k, reverse, 1]);
    assert.ok(a.losses.every((l) => l === 0), `T=${T} topK=${k} reverse=${reverse}: losses ${Array.from(a.losses)}`);
    assert.ok(a.grad.every((g) => g === 0), `T=${T} topK=${k} reverse=${reverse}: gradient must be all zero`);
  }
});

test('kd(N=3,V=300) native: NaN rows are NaN, -Infinity teacher logits match the reference (+Infinity for full reverse KL)', () => {
  const N = 3, V = 300;
  const z = randn(N * V, 84, 2), u = randn(N * V, 85, 2);
  z[10] = NaN; u[2 * V + 20] = NaN;
  u[V + 5] = -Infinity; u[V + 299] = -Infinity;
  for (const [k, reverse] of [[0, false], [40, false], [40, true], [0, true]] as const) {
    const [a, b] = both(z, u, new Int32Array(N), N, V, [1, k, reverse, 1]);
    for (const n of [0, 2]) {
      assert.ok(Number.isNaN(a.losses[n]) && a.grad.subarray(n * V, (n + 1) * V).every(Number.isNaN), `row ${n} is NaN`);
    }
    if (k === 0 && reverse) {
      // KL(p || q) is infinite when the teacher gives 0 where the student does not
      assert.equal(a.losses[1], Infinity);
      assert.equal(b.losses[1], Infinity);
      continue;
    }
    assert.ok(Number.isFinite(a.losses[1]), `topK=${k} reverse=${reverse}: the row with -Infinity teacher logits stays finite`);
    assertRel(a.grad.subarray(V, 2 * V), b.grad.subarray(V, 2 * V), 1e-5, 'row 1 gradient');
    assert.ok(Math.abs(a.losses[1] - b.losses[1]) < 1e-5 * Math.max(1, b.losses[1]), 'row 1 loss');
  }
});

test('kd native top-k breaks ties toward the lower id, as the reference does', () => {
  const V = 9, u = new Float32Array([1, 3, 0, 3, 3, -2, 3, 3, 0.5]), z = randn(V, 86);
  const [a, b] = both(z, u, new Int32Array(1), 1, V, [1, 3, false, 1]);
  const kept = (g: Float32Array) => Array.from(g).flatMap((x, j) => (x !== 0 ? [j] : []));
  assert.deepEqual(kept(a.grad), [1, 3, 4]);
  assert.deepEqual(kept(a.grad), kept(b.grad));
});

test('kd native rejects short buffers and bad options, naming them', () => {
  const N = 2, V = 6, f = (n: number) => new Float32Array(n), t = new Int32Array(N);
  const fn = nat('kdForwardBackward') as (...a: unknown[]) => unknown;
  const args = (): unknown[] => [f(N), f(N * V), f(N * V), new Int32Array(N), N, V, 1, 0, false, 1];
  for (const [i, name] of [[0, 'losses'], [1, 'logits'], [2, 'teacherLogits'], [3, 'targets']] as const) {
    const a = args();
    const buf = a[i] as Float32Array | Int32Array;
    a[i] = buf.subarray(0, buf.length - 1);
    assert.throws(() => fn(...a), new RegExp(`kdForwardBackward: ${name} has ${buf.length - 1} elements, needs ${buf.length}`));
  }
  assert.throws(() => fn(f(N), f(N * V), f(N * V), t, N, V, 0, 0, false, 1), /kdForwardBackward: temperature must be a finite number > 0, got 0/);
  assert.throws(() => fn(f(N), f(N * V), f(N * V), t, N, V, 1, -1, false, 1), /kdForwardBackward: topK must be an integer >= 0/);
  assert.throws(() => fn(f(N), f(N * V), f(N * V), t, N, V, 1, 2.5, false, 1), /kdForwardBackward: topK must be an integer >= 0/);
  assert.throws(() => fn(f(N), f(N * V), f(N * V), t, N, V, 1, 0, 1, 1), /kdForwardBackward: argument reverse must be a boolean/);
  assert.throws(() => fn(f(N), f(N * V), new Float64Array(N * V), t, N, V, 1, 0, false, 1), /kdForwardBackward: argument teacherLogits must be a Float32Array/);
});
