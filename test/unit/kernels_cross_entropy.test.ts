// Fused cross-entropy reference kernel: losses against log(sum(exp(x))) - x_t in float64, the
// in-place gradient against central finite differences of L = dscale * sum(losses), plus the
// ignored-target and large-logit cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crossEntropyForwardBackward } from '../../src/tensor/kernels/cross_entropy.ts';
import { randn, relErr, finiteDiff, assertClose } from '../helpers.ts';

/** Per-row loss without the max shift (fine for moderate logits); 0 for ignored rows. */
function ceNaive64(logits: Float32Array, targets: Int32Array, N: number, V: number): Float64Array {
  const loss = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[n * V + j]);
    loss[n] = Math.log(sum) - logits[n * V + targets[n]];
  }
  return loss;
}

function run(logits: Float32Array, targets: Int32Array, N: number, V: number, dscale: number) {
  const losses = new Float32Array(N), grad = logits.slice();
  crossEntropyForwardBackward(losses, grad, targets, N, V, dscale);
  return { losses, grad };
}

for (const [N, V] of [[4, 37], [2, 1000], [1, 2]] as const) {
  test(`crossEntropy(N=${N},V=${V}) losses match the float64 formula`, () => {
    const logits = randn(N * V, 21, 3);
    const targets = Int32Array.from({ length: N }, (_, n) => (n * 7919 + 3) % V);
    const { losses } = run(logits, targets, N, V, 1);
    const want = ceNaive64(logits, targets, N, V);
    assert.ok(relErr(losses, want) < 1e-6, `relErr ${relErr(losses, want)}`);
  });
}

for (const [N, V, dscale] of [[3, 17, 1], [4, 50, 0.25]] as const) {
  test(`crossEntropy(N=${N},V=${V},dscale=${dscale}) gradient matches finite differences`, () => {
    const logits = randn(N * V, 22, 2);
    const targets = Int32Array.from({ length: N }, (_, n) => (n * 31 + 5) % V);
    const { grad } = run(logits, targets, N, V, dscale);
    const L = () => dscale * ceNaive64(logits, targets, N, V).reduce((a, b) => a + b, 0);
    const fd = finiteDiff(L, logits, 2 ** -10);
    assert.ok(relErr(grad, fd) < 1e-3, `grad relErr ${relErr(grad, fd)}`);
  });
}

test('crossEntropy(N=3,V=10) ignored targets (-100) give loss 0 and a zero gradient row', () => {
  const N = 3, V = 10;
  const logits = randn(N * V, 23);
  const targets = new Int32Array([4, -100, -1]);
  const { losses, grad } = run(logits, targets, N, V, 1);
  assert.equal(losses[1], 0);
  assert.equal(losses[2], 0);
  assert.deepEqual(Array.from(grad.subarray(V)), new Array(2 * V).fill(0));
  // the kept row is unaffected by its ignored neighbours, and its gradient sums to zero
  assertClose(losses[0], ceNaive64(logits, targets, N, V)[0], 1e-6, 'row 0 loss');
  assertClose(grad.subarray(0, V).reduce((a, b) => a + b, 0), 0, 1e-6, 'row 0 gradient sum');
});

test('crossEntropy(N=2,V=64) is shift invariant and finite for logits near 1e4', () => {
  // exp(1e4) overflows even float64: only the max-subtracted form survives
  const V = 64, base = randn(V, 24);
  const logits = new Float32Array(2 * V);
  for (let j = 0; j < V; j++) { logits[j] = base[j]; logits[V + j] = base[j] + 1e4; }
  const { losses, grad } = run(logits, new Int32Array([9, 9]), 2, V, 1);
  assert.ok(Number.isFinite(losses[1]) && grad.every(Number.isFinite), 'loss and gradient must be finite');
  // the +1e4 shift costs float32 resolution in the logits themselves (ulp(1e4) ~ 1e-3)
  assertClose(losses[1], losses[0], 2e-3, 'shifted loss');
  assert.ok(relErr(grad.subarray(V), grad.subarray(0, V)) < 1e-2, 'shifted gradient');
});

test('crossEntropy(N=1,V=4) on a hand-computed row', () => {
  // uniform logits: softmax = 1/4 everywhere, loss = log 4, gradient = (1/4 - onehot) * dscale
  const { losses, grad } = run(new Float32Array([2, 2, 2, 2]), new Int32Array([1]), 1, 4, 0.5);
  assert.equal(losses[0], Math.fround(Math.log(4)));
  assert.deepEqual(Array.from(grad), [0.125, -0.375, 0.125, 0.125]);
});

test('crossEntropy(N=2,V=5) rejects a target >= V', () => {
  assert.throws(() => run(new Float32Array(10), new Int32Array([1, 5]), 2, 5, 1), /targets\[1\] = 5/);
});
