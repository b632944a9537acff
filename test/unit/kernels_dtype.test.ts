// dtype conversion reference kernels: known bit patterns (ties to even, NaN, Inf, f16
// subnormals and overflow), exhaustive round trips of every 16-bit pattern, and f32 -> 16-bit
// rounding of random floats against a nearest-value search over the decoded 16-bit values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/tensor/kernels/dtype.ts';
import { rng } from '../helpers.ts';

const hex = (b: number, w = 4) => '0x' + b.toString(16).toUpperCase().padStart(w, '0');

/** Float32 values given by their bit patterns (so NaN payloads survive). */
function f32FromBits(bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}
function toBf16(bits: number[]): number[] {
  const out = new Uint16Array(bits.length);
  f32ToBf16(out, f32FromBits(bits), bits.length);
  return Array.from(out);
}
function toF16(bits: number[]): number[] {
  const out = new Uint16Array(bits.length);
  f32ToF16(out, f32FromBits(bits), bits.length);
  return Array.from(out);
}
function checkTable(convert: (bits: number[]) => number[], table: [number, number, string][]): void {
  const got = convert(table.map(([b]) => b));
  table.forEach(([inBits, want, what], i) =>
    assert.equal(hex(got[i]), hex(want), `${what}: ${hex(inBits, 8)} -> ${hex(got[i])}, want ${hex(want)}`));
}

test('f32ToBf16 on known bit patterns (ties to even, NaN, Inf, overflow)', () => {
  checkTable(toBf16, [
    [0x3f800000, 0x3f80, '1.0'], [0xc0000000, 0xc000, '-2.0'], [0x00000000, 0x0000, '+0'],
    [0x80000000, 0x8000, '-0'], [0x7f800000, 0x7f80, '+Inf'], [0xff800000, 0xff80, '-Inf'],
    [0x7fc00000, 0x7fc0, 'quiet NaN'], [0xffc00000, 0xffc0, 'negative NaN'],
    [0x7f800001, 0x7fc0, 'signalling NaN with a low payload must not become Inf'],
    [0x3f808000, 0x3f80, 'tie 1+2^-8 rounds down to even'], [0x3f818000, 0x3f82, 'tie rounds up to even'],
    [0x3f808001, 0x3f81, 'just above the tie rounds up'], [0x3f807fff, 0x3f80, 'just below the tie rounds down'],
    [0x7f7fffff, 0x7f80, 'float32 max rounds to Inf'], [0x3effffff, 0x3f00, 'carry into the exponent'],
    [0x00000001, 0x0000, 'smallest float32 subnormal rounds to 0'], [0x00008000, 0x0000, 'subnormal tie to even'],
  ]);
});

test('f32ToF16 on known bit patterns (ties to even, subnormals, overflow, NaN, Inf)', () => {
  checkTable(toF16, [
    [0x3f800000, 0x3c00, '1.0'], [0xc0000000, 0xc000, '-2.0'], [0x3dcccccd, 0x2e66, '0.1'],
    [0x00000000, 0x0000, '+0'], [0x80000000, 0x8000, '-0'],
    [0x477fe000, 0x7bff, '65504 (f16 max)'], [0x477fefff, 0x7bff, 'just below 65520'],
    [0x477ff000, 0x7c00, '65520 overflows to Inf'], [0x49742400, 0x7c00, '1e6 overflows to Inf'],
    [0xc77ff000, 0xfc00, '-65520 overflows to -Inf'], [0x7f800000, 0x7c00, '+Inf'], [0xff800000, 0xfc00, '-Inf'],
    [0x7fc00000, 0x7e00, 'quiet NaN'], [0x7f800001, 0x7e00, 'signalling NaN stays NaN'], [0xffc00000, 0xfe00, '-NaN'],
    [0x3f801000, 0x3c00, 'tie 1+2^-11 rounds down to even'], [0x3f803000, 0x3c02, 'tie 1+3*2^-11 rounds up to even'],
    [0x38800000, 0x0400, '2^-14 (smallest normal)'], [0x33800000, 0x0001, '2^-24 (smallest subnormal)'],
    [0xb3800000, 0x8001, '-2^-24'], [0x33000000, 0x0000, '2^-25 ties to even zero'],
    [0x33000001, 0x0001, 'just above 2^-25 rounds up'], [0x33c00000, 0x0002, '1.5*2^-24 ties up to even 2*2^-24'],
    [0x34200000, 0x0002, '2.5*2^-24 ties down to even 2*2^-24'],
    [0x387fc000, 0x03ff, 'largest subnormal 1023*2^-24'], [0x387fe000, 0x0400, '1023.5*2^-24 ties up into the normals'],
    [0x38000000, 0x0200, '2^-15'], [0x32000000, 0x0000, '2^-27 underflows'], [0x00000001, 0x0000, 'float32 subnormal'],
  ]);
});

test('bf16ToF32 and f16ToF32 on known bit patterns', () => {
  const bf = new Uint16Array([0x3f80, 0xc000, 0x7f80, 0xff80, 0x0001, 0x8000, 0x7fc0]);
  const bfOut = new Float32Array(bf.length);
  bf16ToF32(bfOut, bf, bf.length);
  assert.deepEqual(Array.from(new Uint32Array(bfOut.buffer)),
    [0x3f800000, 0xc0000000, 0x7f800000, 0xff800000, 0x00010000, 0x80000000, 0x7fc00000]);

  const h = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x7c00, 0xfc00, 0x8000, 0x3555]);
  const hOut = new Float32Array(h.length);
  f16ToF32(hOut, h, h.length);
  assert.deepEqual(Array.from(hOut), [1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, Infinity, -Infinity, -0,
    (1 + 0x155 / 1024) * 2 ** -2]);
  // NaNs keep sign and payload and come out quiet (a signalling f16 NaN must not become Inf)
  const nan = new Float32Array(3);
  f16ToF32(nan, new Uint16Array([0x7e00, 0xfc01, 0x7d55]), 3);
  assert.deepEqual(Array.from(new Uint32Array(nan.buffer), (b) => hex(b, 8)),
    [0x7fc00000, 0xffc02000, 0x7feaa000].map((b) => hex(b, 8)));
});

test('f16 (all 65536 patterns) round-trips through float32 bit-exactly', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const f = new Float32Array(65536), back = new Uint16Array(65536);
  f16ToF32(f, all, 65536);
  f32ToF16(back, f, 65536);
  for (let i = 0; i < 65536; i++) {
    const isNaN16 = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
    if (isNaN16) assert.ok((back[i] & 0x7c00) === 0x7c00 && (back[i] & 0x3ff) !== 0, `${hex(i)} NaN stays NaN`);
    else assert.equal(back[i], i, `${hex(i)} -> ${f[i]} -> ${hex(back[i])}`);
  }
});

test('bf16 (all 65536 patterns) round-trips through float32 bit-exactly', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const f = new Float32Array(65536), back = new Uint16Array(65536);
  bf16ToF32(f, all, 65536);
  f32ToBf16(back, f, 65536);
  for (let i = 0; i < 65536; i++) {
    const isNaN16 = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
    if (isNaN16) assert.ok(Number.isNaN(f[i]) && (back[i] | 0x40) === back[i], `${hex(i)} NaN stays a quiet NaN`);
    else assert.equal(back[i], i, `${hex(i)} -> ${f[i]} -> ${hex(back[i])}`);
  }
});

/**
 * Independent check of the rounding: decode every finite non-negative 16-bit pattern, then for a
 * float32 x pick the nearest decoded value (ties to the even pattern) by binary search.
 */
function nearestSearch(decode: (out: Float32Array, inp: Uint16Array, n: number) => void, maxPattern: number,
  overflowAt: number, infPattern: number): (x: number) => number {
  const pats = Uint16Array.from({ length: maxPattern + 1 }, (_, i) => i);
  const vals = new Float32Array(maxPattern + 1);
  decode(vals, pats, pats.length); // increasing in the pattern for non-negative finite values
  return (x: number) => {
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    if (a >= overflowAt) return sign | infPattern;
    let lo = 0, hi = maxPattern; // largest pattern with vals[lo] <= a
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (vals[mid] <= a) lo = mid; else hi = mid - 1; }
    if (lo === maxPattern) return sign | lo;
    const dLo = a - vals[lo], dHi = vals[lo + 1] - a;
    return sign | (dLo < dHi || (dLo === dHi && (lo & 1) === 0) ? lo : lo + 1);
  };
}

test('f32ToF16 and f32ToBf16 (n=200000 random floats) pick the nearest value, ties to even', () => {
  const r = rng(51), n = 200000;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    // exponents spread over the f16 subnormal..overflow range (and beyond, for bf16)
    const e = 90 + Math.floor(r() * 70);
    bits[i] = ((r() < 0.5 ? 0x80000000 : 0) | (e << 23) | Math.floor(r() * 0x800000)) >>> 0;
  }
  const x = new Float32Array(bits.buffer);
  const h = new Uint16Array(n), b = new Uint16Array(n);
  f32ToF16(h, x, n);
  f32ToBf16(b, x, n);
  const nearestF16 = nearestSearch(f16ToF32, 0x7bff, 65520, 0x7c00);
  const nearestBf16 = nearestSearch(bf16ToF32, 0x7f7f, Infinity, 0x7f80);
  for (let i = 0; i < n; i++) {
    assert.equal(hex(h[i]), hex(nearestF16(x[i])), `f16 of ${x[i]} (${hex(bits[i], 8)})`);
    assert.equal(hex(b[i]), hex(nearestBf16(x[i])), `bf16 of ${x[i]} (${hex(bits[i], 8)})`);
  }
});
