// RMSNorm forward/backward: the plain TypeScript reference for native/src/rmsnorm.cpp.
// Dimension legend: N = token rows, C = channels. HF LlamaRMSNorm computed in float32:
// out = inp * rstd * weight with rstd = 1/sqrt(mean(inp^2) + eps); no mean subtraction, no bias.
import type { F32 } from './types.ts';

/**
 * out[N,C] = inp[N,C] * rstd[n] * weight[C]. Overwrites out, and saves rstd[N] (rounded to
 * float32, as HF keeps it) for the backward pass. The mean of squares is summed in float64 so a
 * long row (C = 8192) does not lose the small entries.
 */
export function rmsnormForward(out: F32, rstd: F32, inp: F32, weight: F32, N: number, C: number, eps: number): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += inp[x + c] * inp[x + c];
    const r = Math.fround(1 / Math.sqrt(ss / C + eps));
    rstd[n] = r;
    for (let c = 0; c < C; c++) out[x + c] = inp[x + c] * r * weight[c];
  }
}

/**
 * Adds into dinp[N,C] and dweight[C].
 *
 * in the forward pass this was:  y_i = x_i * r * w_i,  r = (mean_j x_j^2 + eps)^(-1/2)
 * so dr/dx_j = -r^3 x_j / C, and with g_i = dy_i * w_i:
 *   dx_j = g_j * r + sum_i g_i x_i * dr/dx_j = r * (g_j - x_j * r^2 * (sum_i g_i x_i) / C)
 *   dw_i = sum_n dy_i * x_i * r
 * Both row sums are kept in float64; dweight is summed over all rows first and added once, so
 * the result does not depend on how the rows are split between threads.
 */
export function rmsnormBackward(dinp: F32, dweight: F32, dout: F32, inp: F32, weight: F32, rstd: F32,
  N: number, C: number): void {
  const dw = new Float64Array(C); // [C] float64 column sums
  for (let n = 0; n < N; n++) {
    const x = n * C, r = rstd[n];
    let gx = 0; // sum_i dy_i * w_i * x_i
    for (let c = 0; c < C; c++) gx += dout[x + c] * weight[c] * inp[x + c];
    const k = r * r * gx / C;
    for (let c = 0; c < C; c++) {
      dinp[x + c] += r * (dout[x + c] * weight[c] - inp[x + c] * k);
      dw[c] += dout[x + c] * inp[x + c] * r;
    }
  }
  for (let c = 0; c < C; c++) dweight[c] += dw[c];
}
