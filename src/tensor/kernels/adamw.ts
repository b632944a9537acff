// AdamW update and the sum of squares used for gradient-norm clipping: the plain TypeScript
// reference for native/src/adamw.cpp. n = number of parameters in the flat buffer.
import type { F32 } from './types.ts';

/**
 * One step of torch.optim.AdamW (decoupled weight decay, amsgrad off) in place on params, m, v.
 * step is the 1-based step count after this update (PyTorch increments state['step'] first).
 * Follows PyTorch's order of operations:
 *   p *= 1 - lr*wd                                  (decay first, on the old parameter)
 *   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g^2
 *   p -= (lr / (1-beta1^step)) * m / (sqrt(v) / sqrt(1-beta2^step) + eps)
 * which is p -= lr * mhat / (sqrt(vhat) + eps) with eps outside the bias correction.
 * Each element is computed in float64 and rounded once when stored into the float32 state.
 */
export function adamwUpdate(params: F32, grads: F32, m: F32, v: F32, n: number,
  lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
  if (!(step >= 1)) throw new RangeError(`adamwUpdate: step must be >= 1 (the count after this update), got ${step}`);
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / (1 - Math.pow(beta1, step));
  const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
  for (let i = 0; i < n; i++) {
    const g = grads[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] * decay - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}

/** sum_i x[i]^2 over x[0..n), accumulated in float64 (used for the global gradient norm). */
export function sumSquares(x: F32, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i] * x[i];
  return s;
}
