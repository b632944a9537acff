// The block quantizers of src/export/gguf_quants.ts and the type mixes of gguf_quant_mix.ts, on
// their own (test/parity/gguf_kquants.test.ts runs the files in llama.cpp): sizes, exact
// reconstruction where the grid allows it, error bounds per type, and that the calibration
// weighting lowers the error where it is asked to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quantizeMatrix, dequantize, searchSymmetric, searchWithMin, QUANT_BLOCKS, type QuantTypeName } from '../../src/export/gguf_quants.ts';
import { matrixType, useMoreBits } from '../../src/export/gguf_quant_mix.ts';
import { randn } from '../helpers.ts';

const TYPES = Object.keys(QUANT_BLOCKS) as QuantTypeName[];

/** Relative L2 error of the round trip, optionally weighted per column. */
function roundTrip(type: QuantTypeName, x: Float32Array, K: number, imp: Float32Array | null, weigh: Float32Array | null = imp): number {
  const y = dequantize(type, quantizeMatrix(type, x, K, imp), x.length);
  let e = 0, n = 0;
  for (let i = 0; i < x.length; i++) { const w = weigh ? weigh[i % K] : 1; e += w * (y[i] - x[i]) ** 2; n += w * x[i] ** 2; }
  return Math.sqrt(e / n);
}

test('bytes per block match ggml (Q4_0 18, Q5_0 22, Q5_1 24, Q4_K 144, Q5_K 176, Q6_K 210 per 32/256 values)', () => {
  const x = randn(512 * 2, 1, 0.05);
  for (const t of TYPES) {
    const { blockSize, typeSize } = QUANT_BLOCKS[t];
    assert.equal(quantizeMatrix(t, x, 512, null).length, (x.length / blockSize) * typeSize, t);
  }
  assert.throws(() => quantizeMatrix('Q4_K', randn(384, 1), 384, null), /rows of a multiple of 256 values/);
});

test('values already on a type\'s grid come back exactly (Q4_0 levels -8..7, Q5_1 0..31 with a min, Q6_K -32..31)', () => {
  const on = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));
  // d = 0.25 is exact in f16; -8 is the largest magnitude, so the plain scale maps it to -8
  const q40 = on(64, (i) => 0.25 * ((i * 7) % 16 - 8));
  assert.deepEqual(dequantize('Q4_0', quantizeMatrix('Q4_0', q40, 64, null), 64), q40);
  const q51 = on(32, (i) => 0.5 * ((i * 11) % 32) - 4);
  assert.deepEqual(dequantize('Q5_1', quantizeMatrix('Q5_1', q51, 32, null), 32), q51);
  // every block of 16 holds the extreme -32, so all 16 block scales are equal and their int8 copies exact
  const q6 = on(256, (i) => (i % 16 === 0 ? -4 : 0.125 * ((i * 5) % 64 - 32)));
  assert.deepEqual(dequantize('Q6_K', quantizeMatrix('Q6_K', q6, 256, null), 256), q6);
  const zero = new Float32Array(256);
  for (const t of TYPES) assert.ok(dequantize(t, quantizeMatrix(t, zero, 256, null), 256).every((v) => v === 0), t);
});

test('round-trip error of N(0, 0.05^2) weights per type: 4 bits < 9%, 5 bits < 5%, 6 bits < 2.2%', () => {
  const x = randn(512 * 32, 3, 0.05);
  const bound: Record<QuantTypeName, number> = { Q4_0: 0.09, Q4_K: 0.085, Q5_0: 0.05, Q5_1: 0.045, Q5_K: 0.045, Q6_K: 0.022 };
  for (const t of TYPES) {
    const err = roundTrip(t, x, 512, null);
    assert.ok(err < bound[t] && err > bound[t] / 4, `${t}: relative error ${err.toFixed(4)} (bound ${bound[t]})`);
  }
});

test('importance weights lower the importance-weighted error of every type (and raise the plain one)', () => {
  const K = 256, x = randn(K * 32, 5, 0.05);
  const imp = Float32Array.from(randn(K, 6), (g) => Math.exp(2 * g));
  for (const t of TYPES) {
    const plain = roundTrip(t, x, K, null, imp), weighted = roundTrip(t, x, K, imp);
    assert.ok(weighted < 0.9 * plain, `${t}: weighted error ${weighted.toFixed(4)} vs unweighted ${plain.toFixed(4)}`);
    assert.ok(roundTrip(t, x, K, imp, null) > roundTrip(t, x, K, null, null), `${t}: the plain error rises when weighting`);
  }
});

test('the scale searches: least-squares scale on the chosen levels, min clipped at 0', () => {
  const x = Float32Array.from([0.9, -1.0, 0.1, 0.45, -0.5, 0.3, 0.0, 0.7]);
  const w = new Float64Array(8).fill(1), L = new Uint8Array(8), Laux = new Uint8Array(8);
  const d = searchSymmetric(x, w, 8, 4, L);
  let sxl = 0, sll = 0;
  for (let i = 0; i < 8; i++) { const l = L[i] - 4; assert.ok(l >= -4 && l <= 3); sxl += x[i] * l; sll += l * l; }
  assert.ok(Math.abs(d - sxl / sll) < 1e-12, 'd is the least-squares scale of its levels');
  const pos = Float32Array.from([0.2, 0.5, 0.9, 0.3, 0.7, 0.4, 0.6, 0.8]);
  const [dd, m] = searchWithMin(pos, w, 8, 15, L, Laux);
  assert.ok(dd > 0 && m === 0, `all-positive values keep a zero min (got d ${dd}, m ${m})`);
});

test('mixes: Q4_K_M / Q5_K_M give the head Q6_K and attn_v / ffn_down Q6_K in llama.cpp\'s "more bits" layers', () => {
  // use_more_bits for 8 layers: 0 (first eighth), 7 (last eighth), and (i - 1) % 3 == 2: 3, 6
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].filter((i) => useMoreBits(i, 8)), [0, 3, 6, 7]);
  const s = [512, 512];
  assert.equal(matrixType('q4_k_m', 'attn_q', 3, 8, s).type, 'Q4_K');
  assert.equal(matrixType('q4_k_m', 'attn_v', 3, 8, s).type, 'Q6_K');
  assert.equal(matrixType('q4_k_m', 'ffn_down', 4, 8, s).type, 'Q4_K');
  assert.equal(matrixType('q5_k_m', 'ffn_down', 7, 8, s).type, 'Q6_K');
  assert.equal(matrixType('q5_k_m', 'output', -1, 8, s).type, 'Q6_K');
  assert.equal(matrixType('q4_0', 'output', -1, 8, s).type, 'Q6_K');
  assert.equal(matrixType('q4_0', 'token_embd', -1, 8, s).type, 'Q4_0');
  assert.equal(matrixType('q8_0', 'output', -1, 8, s).type, 'Q8_0');
  assert.equal(matrixType('q6_k', 'attn_q', 0, 8, s).type, 'Q6_K');
});

test('fallbacks for rows the block does not divide: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16', () => {
  assert.deepEqual(matrixType('q4_k_m', 'attn_q', 1, 8, [384, 384]), { wanted: 'Q4_K', type: 'Q5_0' });
  assert.deepEqual(matrixType('q5_k_m', 'ffn_gate', 1, 8, [1024, 384]), { wanted: 'Q5_K', type: 'Q5_1' });
  assert.deepEqual(matrixType('q4_k_m', 'output', -1, 8, [4096, 384]), { wanted: 'Q8_0', type: 'Q8_0' });
  assert.deepEqual(matrixType('q6_k', 'attn_q', 1, 8, [96, 96]), { wanted: 'Q6_K', type: 'Q8_0' });
  assert.deepEqual(matrixType('q4_k_m', 'attn_q', 1, 8, [48, 48]), { wanted: 'Q4_K', type: 'F16' });
  assert.deepEqual(matrixType('q4_0', 'attn_q', 1, 8, [48, 48]), { wanted: 'Q4_0', type: 'F16' });
});
