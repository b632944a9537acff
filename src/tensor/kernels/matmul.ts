// Linear layer forward/backward: the plain TypeScript reference for native/src/matmul.cpp.
// Dimension legend: N = rows, C = input channels, OC = output channels. HF nn.Linear layout:
// weight is [OC, C], so out = inp @ weight^T + bias.
import type { F32 } from './types.ts';
import { bf16ToF32, f16ToF32 } from './dtype.ts';

/** out[N,OC] = inp[N,C] @ weight[OC,C]^T (+ bias[OC]); overwrites out, or adds into it with accumulate. */
export function matmulForward(out: F32, inp: F32, weight: F32, bias: F32 | null, N: number, C: number, OC: number,
  accumulate = false): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    for (let o = 0; o < OC; o++) {
      const w = o * C;
      let s = bias ? bias[o] : 0;
      for (let c = 0; c < C; c++) s += inp[x + c] * weight[w + c];
      out[n * OC + o] = accumulate ? out[n * OC + o] + s : s;
    }
  }
}

/** Adds into: dinp[N,C] += dout @ weight; dweight[OC,C] += dout^T @ inp; dbias[OC] += colsum(dout). */
export function matmulBackward(dinp: F32 | null, dweight: F32 | null, dbias: F32 | null,
  dout: F32, inp: F32, weight: F32, N: number, C: number, OC: number): void {
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OC; o++) {
      const g = dout[n * OC + o];
      if (g === 0) continue;
      if (dinp) for (let c = 0; c < C; c++) dinp[n * C + c] += g * weight[o * C + c];
      if (dweight) for (let c = 0; c < C; c++) dweight[o * C + c] += g * inp[n * C + c];
      if (dbias) dbias[o] += g;
    }
  }
}

/**
 * matmulForward with a 16-bit weight (bf16 bit patterns, or f16 when `f16`): the weight is
 * widened to float32 and the float32 matmul runs on it, so the result is that of matmulForward on
 * the widened weight. The reference widens the whole tensor; the native twin widens tile by tile
 * (or per row, for a few rows) and never holds a float32 copy.
 */
export function matmulForwardHalf(out: F32, inp: F32, weight: Uint16Array, bias: F32 | null, N: number, C: number,
  OC: number, accumulate = false, f16 = false): void {
  const w = new Float32Array(OC * C);
  (f16 ? f16ToF32 : bf16ToF32)(w, weight, OC * C);
  matmulForward(out, inp, w, bias, N, C, OC, accumulate);
}
