// Block quantization for GGUF: ggml's Q4_0, Q5_0, Q5_1 (32-value blocks) and the k-quants Q4_K,
// Q5_K, Q6_K (256-value super-blocks), packed bit for bit in ggml's layouts (ggml-common.h) and
// decoded back (the reader, and tests that run our engine on what llama.cpp will see).
// Written from the layouts and the idea of ggml-quants.c's search, not from its code.
//
// Legend: a row of a weight matrix has K values (ne[0], the input channels); a block holds 32
// consecutive values of a row, a super-block 256 (8 blocks of 32 for Q4_K/Q5_K, 16 of 16 for Q6_K).
//
// The search. Every block chooses its scale (and min) to minimize the weighted squared rounding
// error  Σ_i w_i (x_i − x̂_i)², trying a grid of scales around the plain max/nmax one and fitting
// each candidate's exact least-squares scale (and min) for the levels it rounds to. The weights:
//     w_i = imp[c_i] · sqrt(σ² + x_i²)
// with σ² the mean of x² over the super-block (k-quants) or the row (32-value types): large
// weights matter more, as in ggml. imp[c] is the importance of input channel c: the mean square
// of that channel's activation over the calibration tokens (what llama.cpp calls an importance
// matrix), or 1 when no calibration is given. Since y = W·a, an error δ in W[r, c] costs
// δ²·E[a_c²] of output error on average: weighting by E[a_c²] minimizes the expected output error.
//
// Super-block scales: the 8 block scales (and the 8 mins) of Q4_K/Q5_K are stored as 6-bit
// integers times an f16 super-scale, chosen by the same weighted search (each block weighted by
// the sum of its weights); Q6_K stores 16 int8 block scales times an f16 super-scale.
import { f16ToF32, f32ToF16 } from '../tensor/kernels/dtype.ts';
import { KompresorError } from '../errors.ts';

export const QK_K = 256;
export const QK32 = 32;

/** The quantized ggml types written here: values per block and bytes per block. */
export const QUANT_BLOCKS = {
  Q4_0: { blockSize: 32, typeSize: 18 },
  Q5_0: { blockSize: 32, typeSize: 22 },
  Q5_1: { blockSize: 32, typeSize: 24 },
  Q4_K: { blockSize: 256, typeSize: 144 },
  Q5_K: { blockSize: 256, typeSize: 176 },
  Q6_K: { blockSize: 256, typeSize: 210 },
} as const;
export type QuantTypeName = keyof typeof QUANT_BLOCKS;

// ---------------------------------------------------------------------------------------------
// f16 scalars

const h1 = new Uint16Array(1), f1 = new Float32Array(1);
function toF16(x: number): number { f1[0] = x; f32ToF16(h1, f1, 1); return h1[0]; }
function fromF16(bits: number): number { h1[0] = bits; f16ToF32(f1, h1, 1); return f1[0]; }
/** x as stored: rounded through f16. */
function viaF16(x: number): number { return fromF16(toF16(x)); }
function putU16(out: Uint8Array, at: number, v: number): void { out[at] = v & 0xff; out[at + 1] = v >>> 8; }
function getU16(b: Uint8Array, at: number): number { return b[at] | (b[at + 1] << 8); }

const EPS = 1e-15;
const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

// ---------------------------------------------------------------------------------------------
// scale searches (x, w: one block; L: its levels out)

/**
 * Symmetric levels l in [−nmax, nmax−1], x̂ = d·l; L[i] = l + nmax. The grid: the value of largest
 * magnitude maps to −(nmax + 0.1·k), k = −9..9 (the negative end has one level more), and each
 * candidate's d is the weighted least-squares fit Σwxl / Σwl², whose error is Σwx² − (Σwxl)²/Σwl²:
 * the best candidate maximizes (Σwxl)²/Σwl². Returns d.
 */
export function searchSymmetric(x: Float32Array, w: Float64Array, n: number, nmax: number, L: Uint8Array): number {
  let amax = 0, max = 0;
  for (let i = 0; i < n; i++) { const a = Math.abs(x[i]); if (a > amax) { amax = a; max = x[i]; } }
  L.fill(nmax, 0, n);
  if (amax < EPS) return 0;
  let best = -1, d = 0;
  for (let is = -9; is <= 9; is++) {
    const iscale = -(nmax + 0.1 * is) / max;
    let sxl = 0, sll = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(Math.round(iscale * x[i]), -nmax, nmax - 1);
      sxl += w[i] * x[i] * l;
      sll += w[i] * l * l;
    }
    if (sll > 0 && sxl * sxl / sll > best) {
      best = sxl * sxl / sll;
      d = sxl / sll;
      for (let i = 0; i < n; i++) L[i] = clamp(Math.round(iscale * x[i]), -nmax, nmax - 1) + nmax;
    }
  }
  return d;
}

/**
 * Levels l in [0, nmax] with a min: x̂ = d·l − m, m ≥ 0. The grid maps [min(x, 0), max(x)] onto
 * nmax − 0.9 .. nmax + 0.9 levels in 37 steps; each candidate's (d, m) is the weighted
 * least-squares line through its levels (m clipped at 0, then d refitted). Returns [d, m].
 */
export function searchWithMin(x: Float32Array, w: Float64Array, n: number, nmax: number, L: Uint8Array, Laux: Uint8Array): [number, number] {
  let lo = x[0], hi = x[0], sw = 0, swx = 0;
  for (let i = 0; i < n; i++) { lo = Math.min(lo, x[i]); hi = Math.max(hi, x[i]); sw += w[i]; swx += w[i] * x[i]; }
  lo = Math.min(lo, 0);
  if (hi === lo) { L.fill(0, 0, n); return [0, -lo]; }
  const err = (d: number, mn: number, LL: Uint8Array) => {
    let e = 0;
    for (let i = 0; i < n; i++) { const r = d * LL[i] + mn - x[i]; e += w[i] * r * r; }
    return e;
  };
  let d = (hi - lo) / nmax, mn = lo;
  for (let i = 0; i < n; i++) L[i] = clamp(Math.round((x[i] - lo) / d), 0, nmax);
  let best = err(d, mn, L);
  for (let k = 0; k <= 36; k++) {
    const iscale = (nmax - 0.9 + 0.05 * k) / (hi - lo);
    let sl = 0, sll = 0, sxl = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(Math.round(iscale * (x[i] - lo)), 0, nmax);
      Laux[i] = l;
      sl += w[i] * l; sll += w[i] * l * l; sxl += w[i] * l * x[i];
    }
    const D = sw * sll - sl * sl;
    if (D <= 0) continue;
    let cd = (sw * sxl - swx * sl) / D, cm = (sll * swx - sl * sxl) / D;
    if (cm > 0) { cm = 0; cd = sxl / sll; }
    const e = err(cd, cm, Laux);
    if (e < best) { best = e; d = cd; mn = cm; L.set(Laux.subarray(0, n)); }
  }
  return [d, -mn];
}

/**
 * Non-negative values v (block scales or mins) as d·q, q in [0, nmax]: the weighted search over
 * d = max / (nmax + 0.1·k), k = −4..4, then d refitted by least squares for the chosen q.
 */
function quantizeNonNegative(v: Float64Array, w: Float64Array, nmax: number, q: Uint8Array): number {
  let max = 0;
  for (let i = 0; i < v.length; i++) max = Math.max(max, v[i]);
  q.fill(0);
  if (max < EPS) return 0;
  let bestK = 0, bestErr = Infinity;
  for (let k = -4; k <= 4; k++) {
    const iscale = (nmax + 0.1 * k) / max;
    let e = 0;
    for (let i = 0; i < v.length; i++) { const l = Math.min(nmax, Math.round(iscale * v[i])); const r = v[i] - l / iscale; e += w[i] * r * r; }
    if (e < bestErr) { bestErr = e; bestK = k; }
  }
  const iscale = (nmax + 0.1 * bestK) / max;
  let sxl = 0, sll = 0;
  for (let i = 0; i < v.length; i++) {
    q[i] = Math.min(nmax, Math.round(iscale * v[i]));
    sxl += w[i] * v[i] * q[i]; sll += w[i] * q[i] * q[i];
  }
  return sll > 0 ? sxl / sll : 1 / iscale;
}

/** w_i = imp[c_i] · sqrt(σ² + x_i²) for x = row[at .. at+n), σ² given; imp null means 1. */
function blockWeights(w: Float64Array, row: Float32Array, at: number, n: number, sigma2: number, imp: Float32Array | null, col: number): void {
  for (let i = 0; i < n; i++) {
    const x = row[at + i];
    w[i] = (imp ? imp[col + i] : 1) * Math.sqrt(sigma2 + x * x);
  }
}

function meanSquare(x: Float32Array, at: number, n: number): number {
  let s = 0;
  for (let i = at; i < at + n; i++) s += x[i] * x[i];
  return s / n;
}

// ---------------------------------------------------------------------------------------------
// matrices

/**
 * A row-major [rows, K] matrix as blocks of `type`, row after row (K must be a multiple of the
 * block size). imp: K importances (one per input channel) or null.
 */
export function quantizeMatrix(type: QuantTypeName, x: Float32Array, K: number, imp: Float32Array | null): Uint8Array {
  const { blockSize, typeSize } = QUANT_BLOCKS[type];
  const rows = x.length / K;
  if (!Number.isInteger(rows) || K % blockSize !== 0 || (imp !== null && imp.length !== K)) {
    throw new KompresorError({ code: 'impl_error', where: `quantizeMatrix(${type})`,
      rule: `rows of a multiple of ${blockSize} values, and one importance per column`, found: `${x.length} values, K ${K}, ${imp?.length ?? 'no'} importances` });
  }
  const out = new Uint8Array(rows * (K / blockSize) * typeSize);
  const s = new Scratch();
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * K, (r + 1) * K);
    const rowOut = (r * K / blockSize) * typeSize;
    const rowSigma2 = meanSquare(row, 0, K);
    for (let b = 0; b < K / blockSize; b++) {
      const at = b * blockSize, o = rowOut + b * typeSize;
      switch (type) {
        case 'Q4_0': blockQ4_0(out, o, row, at, rowSigma2, imp, s); break;
        case 'Q5_0': blockQ5_0(out, o, row, at, rowSigma2, imp, s); break;
        case 'Q5_1': blockQ5_1(out, o, row, at, rowSigma2, imp, s); break;
        case 'Q4_K': blockQxK(out, o, row, at, imp, s, 15); break;
        case 'Q5_K': blockQxK(out, o, row, at, imp, s, 31); break;
        case 'Q6_K': blockQ6_K(out, o, row, at, imp, s); break;
      }
    }
  }
  return out;
}

/** Decodes `n` values of `type` (ggml's dequantize_row_*). */
export function dequantize(type: QuantTypeName, b: Uint8Array, n: number): Float32Array {
  const { blockSize, typeSize } = QUANT_BLOCKS[type];
  const y = new Float32Array(n);
  for (let blk = 0; blk < n / blockSize; blk++) {
    const o = blk * typeSize, at = blk * blockSize;
    switch (type) {
      case 'Q4_0': dequantQ4_0(y, at, b, o); break;
      case 'Q5_0': dequantQ5(y, at, b, o, false); break;
      case 'Q5_1': dequantQ5(y, at, b, o, true); break;
      case 'Q4_K': dequantQxK(y, at, b, o, false); break;
      case 'Q5_K': dequantQxK(y, at, b, o, true); break;
      case 'Q6_K': dequantQ6_K(y, at, b, o); break;
    }
  }
  return y;
}

class Scratch {
  x = new Float32Array(QK_K);
  w = new Float64Array(QK_K);
  L = new Uint8Array(QK_K);
  Laux = new Uint8Array(QK_K);
  scales = new Float64Array(16);
  mins = new Float64Array(16);
  sw = new Float64Array(16);
  qs = new Uint8Array(16);
  qm = new Uint8Array(16);
}

// ---------------------------------------------------------------------------------------------
// 32-value blocks
//   Q4_0: d (f16) | qs[16]: byte j = L[j] | L[j+16] << 4;          x = d·(L − 8)
//   Q5_0: d (f16) | qh (u32): bit j = L[j] >> 4 | qs[16] as Q4_0;  x = d·(L − 16)
//   Q5_1: d (f16) | m (f16) | qh | qs;                               x = d·L + m

function blockQ4_0(out: Uint8Array, o: number, row: Float32Array, at: number, sigma2: number, imp: Float32Array | null, s: Scratch): void {
  const x = row.subarray(at, at + QK32);
  blockWeights(s.w, row, at, QK32, sigma2, imp, at);
  const d = searchSymmetric(x, s.w, QK32, 8, s.L);
  putU16(out, o, toF16(d));
  requantize(x, QK32, viaF16(d), 0, -8, 7, s.L);
  for (let j = 0; j < 16; j++) out[o + 2 + j] = s.L[j] | (s.L[j + 16] << 4);
}

function blockQ5_0(out: Uint8Array, o: number, row: Float32Array, at: number, sigma2: number, imp: Float32Array | null, s: Scratch): void {
  const x = row.subarray(at, at + QK32);
  blockWeights(s.w, row, at, QK32, sigma2, imp, at);
  const d = searchSymmetric(x, s.w, QK32, 16, s.L);
  putU16(out, o, toF16(d));
  requantize(x, QK32, viaF16(d), 0, -16, 15, s.L);
  packQ5(out, o + 2, s.L);
}

function blockQ5_1(out: Uint8Array, o: number, row: Float32Array, at: number, sigma2: number, imp: Float32Array | null, s: Scratch): void {
  const x = row.subarray(at, at + QK32);
  blockWeights(s.w, row, at, QK32, sigma2, imp, at);
  const [d, m] = searchWithMin(x, s.w, QK32, 31, s.L, s.Laux);
  putU16(out, o, toF16(d));
  putU16(out, o + 2, toF16(-m));
  requantize(x, QK32, viaF16(d), viaF16(m), 0, 31, s.L);
  packQ5(out, o + 4, s.L);
}

/**
 * Levels for the scale (and min) actually stored, which f16 rounding moved: l = round((x + m)/d)
 * clamped to [lo, hi], stored as l − lo. A zero d keeps the search's levels.
 */
function requantize(x: Float32Array, n: number, d: number, m: number, lo: number, hi: number, L: Uint8Array): void {
  if (d === 0) return;
  for (let i = 0; i < n; i++) L[i] = clamp(Math.round((x[i] + m) / d), lo, hi) - lo;
}

function packQ5(out: Uint8Array, o: number, L: Uint8Array): void {
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    out[o + 4 + j] = (L[j] & 15) | ((L[j + 16] & 15) << 4);
    qh |= (L[j] >> 4) << j;
    qh |= (L[j + 16] >> 4) << (j + 16);
  }
  out[o] = qh & 0xff; out[o + 1] = (qh >>> 8) & 0xff; out[o + 2] = (qh >>> 16) & 0xff; out[o + 3] = qh >>> 24;
}

function dequantQ4_0(y: Float32Array, at: number, b: Uint8Array, o: number): void {
  const d = fromF16(getU16(b, o));
  for (let j = 0; j < 16; j++) {
    y[at + j] = d * ((b[o + 2 + j] & 15) - 8);
    y[at + j + 16] = d * ((b[o + 2 + j] >> 4) - 8);
  }
}

function dequantQ5(y: Float32Array, at: number, b: Uint8Array, o: number, withMin: boolean): void {
  const d = fromF16(getU16(b, o)), m = withMin ? fromF16(getU16(b, o + 2)) : 0;
  const p = o + (withMin ? 4 : 2);
  const qh = (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
  for (let j = 0; j < 16; j++) {
    const l0 = (b[p + 4 + j] & 15) | (((qh >>> j) & 1) << 4), l1 = (b[p + 4 + j] >> 4) | (((qh >>> (j + 16)) & 1) << 4);
    y[at + j] = withMin ? d * l0 + m : d * (l0 - 16);
    y[at + j + 16] = withMin ? d * l1 + m : d * (l1 - 16);
  }
}

// ---------------------------------------------------------------------------------------------
// Q4_K and Q5_K: d (f16) | dmin (f16) | scales[12] | (Q5_K: qh[32]) | qs[128]
//   8 blocks j of 32: x = d·sc[j]·L − dmin·mn[j], sc and mn 6-bit, packed in scales[12] as
//   j < 4:  scales[j] low 6 bits = sc[j], scales[j+4] low 6 bits = mn[j]
//   j >= 4: scales[j+4] = (sc[j] & 15) | (mn[j] & 15) << 4, and the top 2 bits of sc[j] / mn[j]
//           in the top 2 bits of scales[j−4] / scales[j]
//   qs: 4 chunks of 64 values; byte c·32 + l = L[64c + l] | L[64c + 32 + l] << 4
//   qh (Q5_K): bit 2c of byte l = the 5th bit of L[64c + l], bit 2c+1 that of L[64c + 32 + l]

function blockQxK(out: Uint8Array, o: number, row: Float32Array, at: number, imp: Float32Array | null, s: Scratch, nmax: 15 | 31): void {
  const sigma2 = meanSquare(row, at, QK_K);
  for (let j = 0; j < 8; j++) {
    const x = row.subarray(at + 32 * j, at + 32 * j + 32);
    blockWeights(s.w, row, at + 32 * j, 32, sigma2, imp, at + 32 * j);
    let sw = 0;
    for (let i = 0; i < 32; i++) sw += s.w[i];
    s.sw[j] = sw;
    [s.scales[j], s.mins[j]] = searchWithMin(x, s.w, 32, nmax, s.L, s.Laux);
  }
  const sc = s.qs.subarray(0, 8), mn = s.qm.subarray(0, 8);
  const d = quantizeNonNegative(s.scales.subarray(0, 8), s.sw.subarray(0, 8), 63, sc);
  const dmin = quantizeNonNegative(s.mins.subarray(0, 8), s.sw.subarray(0, 8), 63, mn);
  const dBits = toF16(d), mBits = toF16(dmin);
  putU16(out, o, dBits);
  putU16(out, o + 2, mBits);
  for (let j = 0; j < 4; j++) {
    out[o + 4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
    out[o + 8 + j] = mn[j] | ((mn[j + 4] >> 4) << 6);
    out[o + 12 + j] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
  }
  const dd = fromF16(dBits), dm = fromF16(mBits);
  for (let j = 0; j < 8; j++) {
    const x = row.subarray(at + 32 * j, at + 32 * j + 32);
    const L = s.L.subarray(32 * j, 32 * j + 32);
    const dj = dd * sc[j];
    if (dj === 0) { L.fill(0); continue; }
    requantize(x, 32, dj, dm * mn[j], 0, nmax, L);
  }
  const qs = o + 16 + (nmax === 31 ? 32 : 0);
  if (nmax === 31) out.fill(0, o + 16, o + 48);
  for (let c = 0; c < 4; c++) {
    for (let l = 0; l < 32; l++) {
      const a = s.L[64 * c + l], b = s.L[64 * c + 32 + l];
      out[qs + 32 * c + l] = (a & 15) | ((b & 15) << 4);
      if (nmax === 31) out[o + 16 + l] |= ((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1));
    }
  }
}

function dequantQxK(y: Float32Array, at: number, b: Uint8Array, o: number, five: boolean): void {
  const d = fromF16(getU16(b, o)), dmin = fromF16(getU16(b, o + 2));
  const qs = o + 16 + (five ? 32 : 0);
  for (let j = 0; j < 8; j++) {
    const [sc, mn] = scaleMinK4(b, o + 4, j);
    const c = j >> 1, hi = j & 1;
    for (let l = 0; l < 32; l++) {
      const byte = b[qs + 32 * c + l];
      let q = hi ? byte >> 4 : byte & 15;
      if (five) q |= ((b[o + 16 + l] >> (2 * c + hi)) & 1) << 4;
      y[at + 32 * j + l] = d * sc * q - dmin * mn;
    }
  }
}

/** Block j's 6-bit scale and min from the 12 packed bytes at p. */
function scaleMinK4(b: Uint8Array, p: number, j: number): [number, number] {
  if (j < 4) return [b[p + j] & 63, b[p + j + 4] & 63];
  return [(b[p + j + 4] & 15) | ((b[p + j - 4] >> 6) << 4), (b[p + j + 4] >> 4) | ((b[p + j] >> 6) << 4)];
}

// ---------------------------------------------------------------------------------------------
// Q6_K: ql[128] | qh[64] | scales[16] (int8) | d (f16)
//   16 blocks of 16: x = d·sc[j]·(L − 32), L 6-bit. Two halves of 128 values h:
//   ql[64h + l]      = L[128h + l] & 15      | (L[128h + 64 + l] & 15) << 4     (l < 32)
//   ql[64h + 32 + l] = L[128h + 32 + l] & 15 | (L[128h + 96 + l] & 15) << 4
//   qh[32h + l]      = the top 2 bits of L[128h + l], +32, +64, +96 at bits 0, 2, 4, 6

function blockQ6_K(out: Uint8Array, o: number, row: Float32Array, at: number, imp: Float32Array | null, s: Scratch): void {
  const sigma2 = meanSquare(row, at, QK_K);
  let maxAbs = 0, maxScale = 0;
  for (let j = 0; j < 16; j++) {
    blockWeights(s.w, row, at + 16 * j, 16, sigma2, imp, at + 16 * j);
    s.scales[j] = searchSymmetric(row.subarray(at + 16 * j, at + 16 * j + 16), s.w, 16, 32, s.L);
    if (Math.abs(s.scales[j]) > maxAbs) { maxAbs = Math.abs(s.scales[j]); maxScale = s.scales[j]; }
  }
  out.fill(0, o, o + 210);
  if (maxAbs < EPS) return;
  const iscale = -128 / maxScale;
  const dBits = toF16(1 / iscale), d = fromF16(dBits);
  putU16(out, o + 208, dBits);
  const sc = new Int8Array(out.buffer, out.byteOffset + o + 192, 16);
  for (let j = 0; j < 16; j++) sc[j] = Math.min(127, Math.round(iscale * s.scales[j]));
  for (let j = 0; j < 16; j++) {
    const L = s.L.subarray(16 * j, 16 * j + 16);
    const dj = d * sc[j];
    if (dj === 0) { L.fill(32); continue; }
    requantize(row.subarray(at + 16 * j, at + 16 * j + 16), 16, dj, 0, -32, 31, L);
  }
  for (let h = 0; h < 2; h++) {
    const L = s.L.subarray(128 * h);
    for (let l = 0; l < 32; l++) {
      out[o + 64 * h + l] = (L[l] & 15) | ((L[l + 64] & 15) << 4);
      out[o + 64 * h + 32 + l] = (L[l + 32] & 15) | ((L[l + 96] & 15) << 4);
      out[o + 128 + 32 * h + l] = (L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) | ((L[l + 96] >> 4) << 6);
    }
  }
}

function dequantQ6_K(y: Float32Array, at: number, b: Uint8Array, o: number): void {
  const d = fromF16(getU16(b, o + 208));
  const sc = new Int8Array(b.buffer, b.byteOffset + o + 192, 16);
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      const qh = b[o + 128 + 32 * h + l];
      const lo0 = b[o + 64 * h + l], lo1 = b[o + 64 * h + 32 + l];
      const q = [(lo0 & 15) | ((qh & 3) << 4), (lo1 & 15) | (((qh >> 2) & 3) << 4), (lo0 >> 4) | (((qh >> 4) & 3) << 4), (lo1 >> 4) | (((qh >> 6) & 3) << 4)];
      for (let k = 0; k < 4; k++) {
        const i = 128 * h + 32 * k + l;
        y[at + i] = d * sc[i >> 4] * (q[k] - 32);
      }
    }
  }
}
