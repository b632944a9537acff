// Fused KD reference kernel: per-row KL against a naive float64 formula (temperature, reverse,
// top-k), the in-place gradient against central finite differences of L = dscale * sum(losses),
// ignored rows, an identical teacher, NaN and -Infinity logits, top-k ties, large logits and
// argument checks. (The T^2 factor and CE + KD live in the head: test/unit/kd_head.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kdForwardBackward, topKIds } from '../../src/tensor/kernels/kd_loss.ts';
import { randn, relErr, finiteDiff, assertClose } from '../helpers.ts';

/** The teacher's top-k ids by sorting (value desc, id asc); all ids when k = 0 or >= V. */
function keptIds(u: ArrayLike<number>, k: number): number[] {
  const ids = Array.from({ length: u.length }, (_, j) => j);
  if (k === 0 || k >= u.length) return ids;
  return ids.sort((a, b) => (u[b] - u[a]) || (a - b)).slice(0, k).sort((a, b) => a - b);
}

/** Per-row KL straight from the definition (no max shift), float64; 0 for ignored rows. */
function klNaive64(z: Float32Array, u: Float32Array, targets: Int32Array, N: number, V: number,
  T: number, k: number, reverse: boolean): Float64Array {
  const out = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    const ids = keptIds(u.subarray(n * V, (n + 1) * V), k);
    const softmax = (x: Float32Array) => {
      const e = ids.map((j) => Math.exp(x[n * V + j] / T));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    };
    const p = softmax(z), q = softmax(u);
    const [a, b] = reverse ? [p, q] : [q, p];   // KL(a || b)
    out[n] = a.reduce((acc, ai, i) => acc + (ai > 0 ? ai * Math.log(ai / b[i]) : 0), 0);
  }
  return out;
}

function run(z: Float32Array, u: Float32Array, targets: Int32Array, N: number, V: number, T: number, k: number,
  reverse: boolean, dscale: number) {
  const losses = new Float32Array(N), grad = z.slice();
  kdForwardBackward(losses, grad, u, targets, N, V, T, k, reverse, dscale);
  return { losses, grad };
}

const valid = (N: number) => new Int32Array(N).fill(0);

// [N, V, T, topK, reverse]
const CASES = [
  [4, 37, 1, 0, false], [4, 37, 2, 0, false], [3, 50, 0.5, 0, false],
  [4, 37, 1, 0, true], [3, 50, 3, 0, true],
  [4, 37, 1, 6, false], [3, 50, 1.5, 10, true], [2, 20, 2, 1, false],
] as const;

for (const [N, V, T, k, reverse] of CASES) {
  const tag = `kd(N=${N},V=${V},T=${T},topK=${k},reverse=${reverse})`;

  test(`${tag} losses match the float64 formula`, () => {
    const z = randn(N * V, 31, 2), u = randn(N * V, 32, 3);
    const { losses } = run(z, u, valid(N), N, V, T, k, reverse, 1);
    const want = klNaive64(z, u, valid(N), N, V, T, k, reverse);
    assert.ok(relErr(losses, want) < 1e-6, `relErr ${relErr(losses, want)}`);
    assert.ok(losses.every((l) => l >= 0), 'a KL divergence is >= 0');
  });

  test(`${tag} gradient matches finite differences`, () => {
    const z = randn(N * V, 33, 2), u = randn(N * V, 34, 3), dscale = 0.3;
    const { grad } = run(z, u, valid(N), N, V, T, k, reverse, dscale);
    const L = () => dscale * klNaive64(z, u, valid(N), N, V, T, k, reverse).reduce((a, b) => a + b, 0);
    const fd = finiteDiff(L, z, 2 ** -10);
    assert.ok(relErr(grad, fd) < 1e-4, `grad relErr ${relErr(grad, fd)}`);
    // shifting a row of logits changes nothing, so each gradient row sums to zero
    for (let n = 0; n < N; n++) assertClose(grad.subarray(n * V, (n + 1) * V).reduce((a, b) => a + b, 0), 0, 1e-7, `row ${n} sum`);
  });

  test(`${tag} an identical teacher gives exactly 0 loss and 0 gradient`, () => {
    const z = randn(N * V, 35, 3);
    const { losses, grad } = run(z, z.slice(), valid(N), N, V, T, k, reverse, 1);
    assert.ok(losses.every((l) => l === 0), `losses ${Array.from(losses)}`);
    assert.ok(grad.every((g) => g === 0), 'gradient must be all zero');
  });
}

test('kd(N=4,V=30,topK=0 and 5) ignored rows (-100 or any negative) contribute nothing', () => {
  const N = 4, V = 30;
  for (const k of [0, 5]) {
    const z = randn(N * V, 36, 2), u = randn(N * V, 37, 2);
    const targets = new Int32Array([3, -100, 7, -1]);
    const { losses, grad } = run(z, u, targets, N, V, 1, k, false, 1);
    assert.equal(losses[1], 0);
    assert.equal(losses[3], 0);
    assert.ok(grad.subarray(V, 2 * V).every((g) => g === 0) && grad.subarray(3 * V).every((g) => g === 0), 'ignored gradient rows are zero');
    // the kept rows equal a run over those rows alone
    const keep = new Float32Array(2 * V), keepU = new Float32Array(2 * V);
    keep.set(z.subarray(0, V)); keep.set(z.subarray(2 * V, 3 * V), V);
    keepU.set(u.subarray(0, V)); keepU.set(u.subarray(2 * V, 3 * V), V);
    const alone = run(keep, keepU, valid(2), 2, V, 1, k, false, 1);
    assert.deepEqual([losses[0], losses[2]], Array.from(alone.losses));
    assert.deepEqual(Array.from(grad.subarray(0, V)), Array.from(alone.grad.subarray(0, V)));
  }
});

test('kd(N=3,V=12) a NaN in a row gives that row a NaN loss and gradient, other rows unaffected', () => {
  const N = 3, V = 12;
  const z = randn(N * V, 38), u = randn(N * V, 39);
  z[4] = NaN;            // student, row 0
  u[2 * V + 7] = NaN;    // teacher, row 2
  for (const [k, reverse] of [[0, false], [4, true]] as const) {
    const { losses, grad } = run(z, u, valid(N), N, V, 1, k, reverse, 1);
    assert.ok(Number.isNaN(losses[0]) && Number.isNaN(losses[2]), 'rows 0 and 2 are NaN');
    assert.ok(grad.subarray(0, V).every(Number.isNaN) && grad.subarray(2 * V).every(Number.isNaN), 'their gradients are NaN');
    assert.ok(Number.isFinite(losses[1]) && grad.subarray(V, 2 * V).every(Number.isFinite), 'row 1 stays finite');
  }
});

test('kd(N=2,V=10) teacher -Infinity logits (masked ids) contribute 0 and the loss stays finite', () => {
  const N = 2, V = 10;
  const z = randn(N * V, 40), u = randn(N * V, 41);
  u[3] = -Infinity; u[V + 0] = -Infinity; u[V + 9] = -Infinity;
  const { losses, grad } = run(z, u, valid(N), N, V, 1, 0, false, 1);
  assert.ok(losses.every(Number.isFinite) && grad.every(Number.isFinite), 'finite loss and gradient');
  const want = klNaive64(z, u, valid(N), N, V, 1, 0, false);
  assert.ok(relErr(losses, want) < 1e-6, `relErr ${relErr(losses, want)}`);
  // forward KL still pushes the student's mass off a masked id: the gradient there is p_j / T > 0
  assert.ok(grad[3] > 0, 'gradient at a masked id');
});

test('kd topK keeps the k largest teacher logits, ties to the lower id, and has zero gradient elsewhere', () => {
  const u = new Float32Array([1, 3, 0, 3, 3, -2, 3]);
  const ids = new Int32Array(3);
  topKIds(ids, u, 3);
  assert.deepEqual(Array.from(ids), [1, 3, 4]);
  topKIds(ids.subarray(0, 1), u, 1);
  assert.equal(ids[0], 1);
  const z = randn(7, 42);
  const { grad } = run(z, u, valid(1), 1, 7, 1, 3, false, 1);
  [0, 2, 5, 6].forEach((j) => assert.equal(grad[j], 0, `gradient at dropped id ${j}`));
  assert.ok([1, 3, 4].every((j) => grad[j] !== 0), 'gradient at kept ids');
});

test('kd(N=1,V=2) on a hand-computed row', () => {
  // p = (1/2, 1/2), q = (3/4, 1/4): KL(q||p) = 3/4 log(3/2) + 1/4 log(1/2); grad = (p - q) * dscale
  const z = new Float32Array([0, 0]), u = new Float32Array([Math.log(3), 0]);
  const { losses, grad } = run(z, u, valid(1), 1, 2, 1, 0, false, 2);
  assertClose(losses[0], 0.75 * Math.log(1.5) + 0.25 * Math.log(0.5), 1e-7, 'loss');
  assertClose(grad[0], -0.5, 1e-7, 'grad 0');
  assertClose(grad[1], 0.5, 1e-7, 'grad 1');
  // reverse: KL(p||q) = 1/2 log(2/3) + 1/2 log(2); d/dz_0 = p_0 (r_0 - KL) with r_0 = log(2/3)
  const r = run(z, u, valid(1), 1, 2, 1, 0, true, 1);
  const kl = 0.5 * Math.log(2 / 3) + 0.5 * Math.log(2);
  assertClose(r.losses[0], kl, 1e-7, 'reverse loss');
  assertClose(r.grad[0], 0.5 * (Math.log(2 / 3) - kl), 1e-7, 'reverse grad 0');
});

test('kd(N=2,V=64) is shift invariant and finite for logits near 1e4', () => {
  const V = 64, base = randn(V, 43), t = randn(V, 44, 2);
  const z = new Float32Array(2 * V), u = new Float32Array(2 * V);
  for (let j = 0; j < V; j++) { z[j] = base[j]; z[V + j] = base[j] + 1e4; u[j] = t[j]; u[V + j] = t[j] - 1e4; }
  for (const reverse of [false, true]) {
    const { losses, grad } = run(z, u, valid(2), 2, V, 1, 0, reverse, 1);
    assert.ok(losses.every(Number.isFinite) && grad.every(Number.isFinite), 'finite');
    // ulp(1e4) ~ 1e-3 in the float32 logits themselves
    assertClose(losses[1], losses[0], 5e-3, 'shifted loss');
    assert.ok(relErr(grad.subarray(V), grad.subarray(0, V)) < 1e-2, 'shifted gradient');
  }
});

test('kd rejects a non-positive temperature and a bad topK', () => {
  const f = () => new Float32Array(4), t = valid(1);
  assert.throws(() => kdForwardBackward(f(), f(), f(), t, 1, 4, 0, 0, false, 1), /temperature must be a finite number > 0, got 0/);
  assert.throws(() => kdForwardBackward(f(), f(), f(), t, 1, 4, NaN, 0, false, 1), /temperature must be a finite number > 0/);
  assert.throws(() => kdForwardBackward(f(), f(), f(), t, 1, 4, 1, -1, false, 1), /topK must be an integer >= 0/);
  assert.throws(() => kdForwardBackward(f(), f(), f(), t, 1, 4, 1, 1.5, false, 1), /topK must be an integer >= 0/);
});
