// Fused logit distillation (KL divergence between teacher and student softmaxes) over a chunk of
// rows: the plain TypeScript reference for native/src/kd_loss.cpp. Like the fused cross-entropy,
// forward and backward are one pass and the gradient overwrites the student's logits in place, so
// the caller never holds more than a [N, V] chunk. Arithmetic is float64 here.
//
// Dimension legend: N = rows in the chunk, V = vocabulary size, k = topK (kept teacher ids).
// Notation: z = student logits, u = teacher logits, T = temperature,
//   p = softmax(z / T) (student), q = softmax(u / T) (teacher).
// The derivation is in docs/kd-loss.md.
import type { F32, I32 } from './types.ts';

/**
 * losses[n] = KL(q || p) = sum_v q_v (log q_v - log p_v) for row n (reverse: KL(p || q)), and
 * logits[n] is overwritten with dscale * d losses[n] / d logits[n]. teacherLogits is read only.
 *
 * topK in [1, V) restricts both distributions to the k ids with the largest teacher logits (ties go
 * to the lower id) and renormalises them there, as ModelOpt's TopKLogitsKLLoss does; the gradient
 * outside those ids is 0. topK = 0 (or >= V) uses the whole vocabulary.
 * targets[n] < 0 (HF's -100) ignores row n: loss 0 and an all-zero gradient row (only the sign of
 * targets is read). A NaN in an active row's student or teacher logits makes its loss and its
 * whole gradient row NaN. Entries the teacher gives probability 0 (e.g. a -Infinity logit)
 * contribute 0 (the limit of q log q). No T^2 factor: a caller that wants it scales the losses
 * and dscale.
 */
export function kdForwardBackward(losses: F32, logits: F32, teacherLogits: F32, targets: I32, N: number, V: number,
  temperature: number, topK: number, reverse: boolean, dscale: number): void {
  checkKdArgs('kdForwardBackward', temperature, topK);
  const k = topK === 0 || topK >= V ? V : topK;
  const zs = new Float64Array(k), us = new Float64Array(k), grad = new Float64Array(k);
  const ids = new Int32Array(k);
  for (let n = 0; n < N; n++) {
    const x = n * V;
    const z = logits.subarray(x, x + V), u = teacherLogits.subarray(x, x + V);
    if (targets[n] < 0) {
      losses[n] = 0;
      z.fill(0);
      continue;
    }
    if (hasNaN(z) || hasNaN(u)) {
      losses[n] = NaN;
      z.fill(NaN);
      continue;
    }
    if (k === V) for (let j = 0; j < V; j++) ids[j] = j;
    else topKIds(ids, u, k);
    for (let i = 0; i < k; i++) { zs[i] = z[ids[i]]; us[i] = u[ids[i]]; }
    losses[n] = klRow(grad, zs, us, k, temperature, reverse);
    z.fill(0);
    for (let i = 0; i < k; i++) z[ids[i]] = grad[i] * dscale;
  }
}

/** The argument rules both kernels enforce (native: the same messages). */
export function checkKdArgs(kernel: string, temperature: number, topK: number): void {
  if (!(temperature > 0 && Number.isFinite(temperature))) {
    throw new RangeError(`${kernel}: temperature must be a finite number > 0, got ${temperature}`);
  }
  if (!Number.isInteger(topK) || topK < 0) {
    throw new RangeError(`${kernel}: topK must be an integer >= 0 (0 = full vocabulary), got ${topK}`);
  }
}

function hasNaN(a: F32): boolean {
  for (let j = 0; j < a.length; j++) if (a[j] !== a[j]) return true;
  return false;
}

/**
 * ids[0..k) = the ids of the k largest u, ascending. The threshold is the k-th largest value;
 * every id above it is kept, and ids equal to it are kept lowest first until there are k.
 */
export function topKIds(ids: Int32Array, u: F32, k: number): void {
  const V = u.length;
  const sorted = Float32Array.from(u).sort();
  const thr = sorted[V - k];
  let need = k;
  for (let j = 0; j < V; j++) if (u[j] > thr) need--;
  let i = 0;
  for (let j = 0; j < V; j++) {
    if (u[j] > thr || (u[j] === thr && need-- > 0)) ids[i++] = j;
  }
}

/** log sum_i exp(a_i / T), with the max subtracted first. */
function logSumExp(a: Float64Array, k: number, T: number): number {
  let m = -Infinity;
  for (let i = 0; i < k; i++) m = Math.max(m, a[i]);
  if (m === -Infinity || m === Infinity) return m;
  let s = 0;
  for (let i = 0; i < k; i++) s += Math.exp((a[i] - m) / T);
  return m / T + Math.log(s);
}

/**
 * KL between softmax(z/T) and softmax(u/T) over k entries; grad = d KL / d z.
 *
 * forward, KL(q || p) = sum_i q_i (log q_i - log p_i), with log p_i = z_i/T - lse(z/T):
 *   d KL / d z_j = (1/T) (p_j - q_j)                     (sum_i q_i = 1)
 * reverse, KL(p || q) = sum_i p_i (log p_i - log q_i) = sum_i p_i r_i:
 *   d KL / d z_j = (1/T) p_j (r_j - KL)                  (d log p_i / d z_j = ([i = j] - p_j) / T)
 */
function klRow(grad: Float64Array, z: Float64Array, u: Float64Array, k: number, T: number, reverse: boolean): number {
  const lseS = logSumExp(z, k, T), lseT = logSumExp(u, k, T);
  let kl = 0;
  if (!reverse) {
    for (let i = 0; i < k; i++) {
      const q = Math.exp(u[i] / T - lseT);
      if (q > 0) kl += q * ((u[i] - z[i]) / T - (lseT - lseS));
    }
    for (let i = 0; i < k; i++) grad[i] = (Math.exp(z[i] / T - lseS) - Math.exp(u[i] / T - lseT)) / T;
  } else {
    for (let i = 0; i < k; i++) {
      const p = Math.exp(z[i] / T - lseS);
      if (p > 0) kl += p * ((z[i] - u[i]) / T - (lseS - lseT));
    }
    for (let i = 0; i < k; i++) {
      const p = Math.exp(z[i] / T - lseS);
      grad[i] = p > 0 ? p * (((z[i] - u[i]) / T - (lseS - lseT)) - kl) / T : 0;
    }
  }
  return kl;
}
