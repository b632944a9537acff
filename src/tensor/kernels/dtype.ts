// Conversions between float32 and the 16-bit float formats of safetensors checkpoints, with the
// 16-bit values as raw bit patterns in a Uint16Array: the plain TypeScript reference for
// native/src/dtype.cpp. n = number of elements.
//   bf16: 1 sign, 8 exponent, 7 mantissa bits (the top half of a float32)
//   f16:  1 sign, 5 exponent (bias 15), 10 mantissa bits; subnormals below 2^-14, max 65504
// Narrowing rounds to nearest, ties to even; NaN stays a quiet NaN with its sign, Inf stays Inf,
// and a float32 too large for f16 (|x| >= 65520, halfway past 65504) becomes Inf.
import type { F32 } from './types.ts';

/** The bits of a float32 array (same memory, no copy). */
function bitsOf(x: F32): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** bf16 is the top half of a float32, so widening is a shift. */
export function bf16ToF32(out: F32, inp: Uint16Array, n: number): void {
  const o = bitsOf(out);
  for (let i = 0; i < n; i++) o[i] = inp[i] << 16;
}

/** One f16 bit pattern to float32 bits. Every f16 value (subnormals included) is exact in float32. */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  // Inf; a NaN keeps its payload and gets the quiet bit, as IEEE conversion (and F16C) does
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13) | (mant !== 0 ? 0x400000 : 0)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // rebias 15 -> 127
  if (mant === 0) return sign >>> 0; // signed zero
  // subnormal: mant * 2^-24; normalise so the leading 1 becomes the implicit bit
  let e = 113, m = mant;
  while ((m & 0x400) === 0) { m <<= 1; e--; }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

export function f16ToF32(out: F32, inp: Uint16Array, n: number): void {
  const o = bitsOf(out);
  for (let i = 0; i < n; i++) o[i] = f16BitsToF32Bits(inp[i]);
}

/** Drops `shift` low bits of `mant` rounding to nearest, ties to even (1 <= shift <= 24). */
function roundShift(mant: number, shift: number): number {
  const q = mant >>> shift, rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
  return rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
}

function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40; // NaN: set the quiet bit so it cannot become Inf
  // a carry out of the mantissa bumps the exponent, which is exactly right (and gives Inf past the max)
  return roundShift(x, 16) & 0xffff;
}

export function f32ToBf16(out: Uint16Array, inp: F32, n: number): void {
  const x = bitsOf(inp);
  for (let i = 0; i < n; i++) out[i] = f32BitsToBf16Bits(x[i]);
}

function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000, abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00 | ((abs >>> 13) & 0x3ff); // NaN: quiet, top payload bits
  if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds to Inf (and Inf stays Inf)
  if (abs >= 0x38800000) {
    // normal f16 (|x| >= 2^-14): rebias 127 -> 15 and round 23 mantissa bits to 10; a carry
    // into the exponent is the correct next binade
    return sign | roundShift(abs - (112 << 23), 13);
  }
  // subnormal f16: the value in units of 2^-24 is mant * 2^(e - 126) with the implicit bit restored
  const e = abs >>> 23;
  if (e < 102) return sign; // below 2^-25: rounds to (signed) zero
  const mant = (abs & 0x7fffff) | 0x800000;
  return sign | roundShift(mant, 126 - e); // 14..24 bits dropped; rounding up to 0x400 is 2^-14, correct
}

export function f32ToF16(out: Uint16Array, inp: F32, n: number): void {
  const x = bitsOf(inp);
  for (let i = 0; i < n; i++) out[i] = f32BitsToF16Bits(x[i]);
}
