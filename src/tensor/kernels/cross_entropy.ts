// Fused softmax cross-entropy over a chunk of logit rows: the plain TypeScript reference for
// native/src/cross_entropy.cpp. Dimension legend: N = rows in the chunk, V = vocabulary size.
// Forward and backward are one pass because the caller streams the lm_head in chunks and never
// keeps the [N,V] logits: the gradient overwrites them in place.
import type { F32, I32 } from './types.ts';

/**
 * losses[N] = logsumexp(logits[n]) - logits[n, targets[n]]; then logits[n] is overwritten with
 * the gradient of losses[n] * dscale with respect to the logits.
 *
 * in the forward pass this is:  loss = lse - x_t,  lse = log sum_j exp(x_j)
 * so the gradient is:           dloss/dx_j = exp(x_j - lse) - [j == t] = softmax_j - onehot_j
 * The row max is subtracted before exponentiating (exp never overflows) and the sum of
 * exponentials is kept in float64. targets[n] < 0 (HF's -100) marks an ignored row: loss 0 and
 * an all-zero gradient row. A target >= V is a caller bug and throws.
 */
export function crossEntropyForwardBackward(losses: F32, logits: F32, targets: I32, N: number, V: number,
  dscale: number): void {
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t >= V) throw new RangeError(`crossEntropyForwardBackward: targets[${n}] = ${t} is out of range for V = ${V}`);
  }
  for (let n = 0; n < N; n++) {
    const x = n * V, t = targets[n];
    if (t < 0) {
      losses[n] = 0;
      logits.fill(0, x, x + V);
      continue;
    }
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[x + j]);
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[x + j] - max);
    const lse = max + Math.log(sum);
    losses[n] = lse - logits[x + t];
    // the onehot is subtracted before rounding to float32, so p_t - 1 keeps its low bits
    for (let j = 0; j < V; j++) logits[x + j] = (Math.exp(logits[x + j] - lse) - (j === t ? 1 : 0)) * dscale;
  }
}
