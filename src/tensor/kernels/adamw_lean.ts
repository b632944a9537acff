// AdamW with its moments stored in fewer bits: the plain TypeScript reference for
// native/src/adamw_lean.cpp. The update is torch.optim.AdamW's (src/tensor/kernels/adamw.ts),
// computed in float64 from the stored moments; only the storage rounds:
//
//   bf16:  m and v as bf16 bit patterns (2 + 2 bytes/parameter), rounded to nearest even
//          (through float32, as a float32 state would be, then to bf16).
//   int8:  m and v as 8-bit codes in blocks of QUANT_BLOCK values with one float32 scale per
//          block and moment (2 + 8/256 bytes/parameter):
//            m: sign bit + 7-bit magnitude code, magnitude = scale * M_CODE[k], scale = block absmax;
//            v: stored as sqrt(v) (its dynamic range halves in the log domain), 8-bit code,
//               sqrt(v) = scale * V_CODE[k], scale = block max of sqrt(v).
//          The codes are a small float format relative to the block's scale ("dynamic exponent",
//          the idea of bitsandbytes' 8-bit Adam; our own table): 4 exponent bits and 3 (m) or 4 (v)
//          mantissa bits, 1 exactly at the top, 0 at code 0, smallest non-zero ~1.7e-5. So a value
//          keeps ~3-6% relative precision over 15 octaves below its block's largest, instead of a
//          linear code's 1/127 of the largest (which rounds most of a block to 0).
//          Rounding is stochastic (unbiased: an EMA moving by less than half a code step still
//          moves on average) with a counter-based hash of (salt, element, moment), so it is
//          deterministic and the same in TypeScript and C++. A positive v never rounds to 0 (the
//          update would divide by eps alone).
//
// Per block: decode m and v, update each element in float64 (params from the new, unrounded
// moments, as a float32-state AdamW would), then take the new scales and encode. Blocks start at
// element 0 of the views given (the optimizer calls this once per tensor), so a block never
// mixes two tensors. n = number of parameters in the views.
import type { F32 } from './types.ts';

/** Values per quantization block (one scale per block and moment). */
export const QUANT_BLOCK = 256;

/**
 * Magnitudes of an 8-bit code, ascending, code[0] = 0, code[count] = 1: the `count` largest of
 * 2^-e * (P + f) / (2P - 1), e in [0, 16), f in [0, P), P = 2^mantissaBits. Every entry is one
 * correctly rounded division times a power of two, so C++ builds the same table bit for bit.
 */
export function buildCode(mantissaBits: number, count: number): Float64Array {
  const P = 1 << mantissaBits, top = 2 * P - 1;
  const out = new Float64Array(count + 1);
  for (let i = 0; i < count; i++) {
    const e = Math.floor(i / P), f = P - 1 - (i % P);
    out[count - i] = ((P + f) / top) / 2 ** e;
  }
  return out;
}

/** m's magnitudes: 7 bits (the 8th is the sign). */
export const M_CODE = buildCode(3, 127);
/** sqrt(v)'s magnitudes: 8 bits. */
export const V_CODE = buildCode(4, 255);

/** lowbias32 (a 32-bit integer mixer): the stochastic-rounding hash, same in C++. */
export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** A uniform number in [0, 1) for element i of moment `which` (0 = m, 1 = v) under `salt`. */
export function roundingNoise(salt: number, i: number, which: number): number {
  const h = mix32((((salt ^ (which ? 0x9e3779b9 : 0)) >>> 0) + mix32(i >>> 0)) >>> 0);
  return (h >>> 8) / 16777216;
}

/**
 * The code of x >= 0 (x in units of the block scale) in `code`, rounded up with probability
 * equal to x's position between the two codes around it (u uniform in [0, 1)).
 */
export function encodeMagnitude(code: Float64Array, x: number, u: number, keepPositive: boolean): number {
  const top = code.length - 1;
  if (!(x > 0)) return 0;
  if (x >= 1) return top;
  let lo = 0, hi = top;                  // code[lo] <= x < code[hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (code[mid] <= x) lo = mid; else hi = mid;
  }
  const k = u < (x - code[lo]) / (code[hi] - code[lo]) ? hi : lo;
  return keepPositive && k === 0 ? 1 : k;
}

/** b1^step and b2^step by repeated squaring: the same float64 operations in C++ (no pow). */
export function powInt(b: number, n: number): number {
  let r = 1, x = b;
  while (n > 0) {
    if (n & 1) r *= x;
    x *= x;
    n = Math.floor(n / 2);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// bf16 moments

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);

function bf16Of(x: number): number {
  f32[0] = x;
  const b = u32[0];
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

function bf16Value(h: number): number {
  u32[0] = (h << 16) >>> 0;
  return f32[0];
}

/** torch AdamW with m and v held as bf16 (Uint16Array bit patterns); see the file header. */
export function adamwUpdateBf16(params: F32, grads: F32, m: Uint16Array, v: Uint16Array, n: number,
  lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
  if (!(step >= 1)) throw new RangeError(`adamwUpdateBf16: step must be >= 1 (the count after this update), got ${step}`);
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / (1 - powInt(beta1, step));
  const bc2Sqrt = Math.sqrt(1 - powInt(beta2, step));
  for (let i = 0; i < n; i++) {
    const g = grads[i];
    const mi = beta1 * bf16Value(m[i]) + (1 - beta1) * g;
    const vi = beta2 * bf16Value(v[i]) + (1 - beta2) * g * g;
    m[i] = bf16Of(mi);
    v[i] = bf16Of(vi);
    params[i] = params[i] * decay - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}

// ---------------------------------------------------------------------------------------------
// 8-bit moments

/**
 * torch AdamW with m and v as block-wise 8-bit codes (see the file header). mq, vq: n codes;
 * mScale, vScale: ceil(n / QUANT_BLOCK) float32 scales. salt picks the stochastic rounding
 * (the optimizer derives it from the run's seed, the step and the tensor).
 */
export function adamwUpdateInt8(params: F32, grads: F32, mq: Uint8Array, mScale: F32, vq: Uint8Array, vScale: F32, n: number,
  lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, salt: number): void {
  if (!(step >= 1)) throw new RangeError(`adamwUpdateInt8: step must be >= 1 (the count after this update), got ${step}`);
  const decay = 1 - lr * weightDecay;
  const stepSize = lr / (1 - powInt(beta1, step));
  const bc2Sqrt = Math.sqrt(1 - powInt(beta2, step));
  const mNew = new Float64Array(QUANT_BLOCK), sNew = new Float64Array(QUANT_BLOCK);
  for (let j = 0, i0 = 0; i0 < n; j++, i0 += QUANT_BLOCK) {
    const count = Math.min(QUANT_BLOCK, n - i0);
    let mMax = 0, sMax = 0;
    for (let k = 0; k < count; k++) {
      const i = i0 + k, g = grads[i];
      const mOld = mScale[j] * M_CODE[mq[i] & 0x7f] * (mq[i] & 0x80 ? -1 : 1);
      const sOld = vScale[j] * V_CODE[vq[i]];
      const mi = beta1 * mOld + (1 - beta1) * g;
      const vi = beta2 * (sOld * sOld) + (1 - beta2) * g * g;
      params[i] = params[i] * decay - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
      mNew[k] = mi;
      sNew[k] = Math.sqrt(vi);
      if (Math.abs(mi) > mMax) mMax = Math.abs(mi);
      if (sNew[k] > sMax) sMax = sNew[k];
    }
    mScale[j] = mMax;        // stored in float32: the codes below are relative to what is stored
    vScale[j] = sMax;
    const ms = mScale[j], vs = vScale[j];
    for (let k = 0; k < count; k++) {
      const i = i0 + k;
      const mk = ms > 0 ? encodeMagnitude(M_CODE, Math.abs(mNew[k]) / ms, roundingNoise(salt, i, 0), false) : 0;
      mq[i] = mk === 0 ? 0 : mk | (mNew[k] < 0 ? 0x80 : 0);
      vq[i] = vs > 0 ? encodeMagnitude(V_CODE, sNew[k] / vs, roundingNoise(salt, i, 1), true) : 0;
    }
  }
}
