// Native kernels against their TypeScript references, part b: matmul (OpenBLAS sgemm), RoPE and
// attention (forward, backward, KV-cache decode) at sizes that cross every internal blocking and
// parallel threshold of native/src/{matmul,rope,attention}.cpp, on subarray views with a nonzero
// byteOffset, plus argument validation. The addon must be built: scripts/test.sh builds it first,
// so a missing addon is a failure here, not a skip.
//
// Every buffer lives inside a larger one padded with NaN: a native read past the view would turn
// an output into NaN, and a write past it would overwrite the padding (checked after each call).
//
// Bounds (relErr = ||a - b|| / ||b||, the reference being the TypeScript kernel):
// - matmul: sgemm accumulates in float32 (blocked, FMA) while the reference sums each dot in a JS
//   double: 1e-6 on the forward (measured <= 3e-7). The backward references accumulate in float32
//   one term at a time (dinp sums OC products), sgemm in blocks: 1e-5 (measured <= 1.1e-6).
// - rope: one rotation per pair, float vs double-then-round: 1e-6 (measured ~2e-8).
// - attention: float32 dots, softmax (a Cephes expf, ~1 ulp), p @ v and the backward's
//   ds = p (dp - D) vs float64 throughout the reference: 1e-5 on out, lse, dq, dk and dv
//   (measured <= 4e-7 forward, <= 7e-7 backward).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Kernels } from '../../src/tensor/kernels/types.ts';
import { matmulForward, matmulBackward } from '../../src/tensor/kernels/matmul.ts';
import { ropeForward, ropeBackward } from '../../src/tensor/kernels/rope.ts';
import { attentionForward, attentionBackward, attentionDecode } from '../../src/tensor/kernels/attention.ts';
import { randn, relErr, maxAbsDiff } from '../helpers.ts';
import { nat, offsetF32, offsetI32, assertPadding, assertRel, checkShortBuffers } from '../native_helpers.ts';

/** a - b (a + b with sign = 1) in float64; a plain loop (Float64Array.from with a map is slow). */
function combine(a: ArrayLike<number>, b: ArrayLike<number>, sign: 1 | -1): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + sign * b[i];
  return out;
}

/** Columns [c0, c1) of every row of a (rows, width) matrix, as a flat list. */
function cols(x: Float32Array, rows: number, width: number, c0: number, c1: number): Float32Array {
  const out = new Float32Array(rows * (c1 - c0));
  for (let r = 0; r < rows; r++) out.set(x.subarray(r * width + c0, r * width + c1), r * (c1 - c0));
  return out;
}

// ------------------------------------------------------------------------------------------------
// matmul

// (64, 576, 1536): a SmolLM-like gate|up projection, several OpenBLAS blocks in every dimension;
// (7, 13, 5): smaller than one register block; (1, 576, 4099): a decode step, OC not a multiple of 8
for (const [N, C, OC] of [[64, 576, 1536], [7, 13, 5], [1, 576, 4099]] as const) {
  for (const withBias of [true, false]) {
    test(`matmul(N=${N},C=${C},OC=${OC},bias=${withBias}) native forward, overwrite and accumulate, matches the reference`, () => {
      const inp = offsetF32(randn(N * C, 101, 2)), weight = offsetF32(randn(OC * C, 102, 0.05));
      const bias = withBias ? offsetF32(randn(OC, 103)) : null;
      // overwrite: whatever was in out (NaN here) is gone
      const a = offsetF32(new Float32Array(N * OC).fill(NaN)), b = new Float32Array(N * OC).fill(NaN);
      nat('matmulForward')(a, inp, weight, bias, N, C, OC);
      matmulForward(b, inp, weight, bias, N, C, OC);
      assert.ok(a.every(Number.isFinite), 'overwrite must not read the NaNs already in out');
      assertRel(a, b, 1e-6, 'out (overwrite)');
      // explicit accumulate=false is the same as leaving it out
      const a2 = offsetF32(randn(N * OC, 104));
      nat('matmulForward')(a2, inp, weight, bias, N, C, OC, false);
      assert.deepEqual(a2, a, 'accumulate=false must overwrite');
      // accumulate: out += inp @ weight^T (+ bias), the residual connection folded into the GEMM
      const resid = randn(N * OC, 105);
      const c = offsetF32(resid), d = resid.slice();
      nat('matmulForward')(c, inp, weight, bias, N, C, OC, true);
      matmulForward(d, inp, weight, bias, N, C, OC, true);
      assertRel(c, d, 1e-6, 'out (accumulate)');
      assertRel(combine(c, resid, -1), b, 1e-5, 'accumulated increment');
      for (const [x, what] of [[a, 'out'], [a2, 'out'], [c, 'out (accumulate)'], [inp, 'inp'], [weight, 'weight']] as const) {
        assertPadding(x, what);
      }
    });
  }

  test(`matmul(N=${N},C=${C},OC=${OC}) native backward adds into dinp, dweight and dbias, each skippable`, () => {
    const inp = offsetF32(randn(N * C, 111)), weight = offsetF32(randn(OC * C, 112, 0.05));
    const dout = offsetF32(randn(N * OC, 113));
    // fresh gradients from the reference, in float64 once the prefill is subtracted
    const ref = { dinp: new Float32Array(N * C), dweight: new Float32Array(OC * C), dbias: new Float32Array(OC) };
    matmulBackward(ref.dinp, ref.dweight, ref.dbias, dout, inp, weight, N, C, OC);
    // prefilled at the scale of the gradients: the kernel must add, not overwrite
    const pre = { dinp: randn(N * C, 114, 2), dweight: randn(OC * C, 115, 2), dbias: randn(OC, 116, 2) };
    for (const skip of ['none', 'dinp', 'dweight', 'dbias'] as const) {
      const bufs = {
        dinp: skip === 'dinp' ? null : offsetF32(pre.dinp),
        dweight: skip === 'dweight' ? null : offsetF32(pre.dweight),
        dbias: skip === 'dbias' ? null : offsetF32(pre.dbias),
      };
      nat('matmulBackward')(bufs.dinp, bufs.dweight, bufs.dbias, dout, inp, weight, N, C, OC);
      for (const k of ['dinp', 'dweight', 'dbias'] as const) {
        const got = bufs[k];
        if (!got) continue;
        const inc = combine(got, pre[k], -1);
        assertRel(inc, ref[k], 1e-5, `${k} increment (skipping ${skip})`);
        assertPadding(got, k);
      }
    }
  });
}

test('matmul native rejects short buffers, naming the argument', () => {
  const N = 3, C = 4, OC = 5, f = (n: number) => new Float32Array(n);
  checkShortBuffers('matmulForward', () => [f(N * OC), f(N * C), f(OC * C), f(OC), N, C, OC],
    [[0, 'out'], [1, 'inp'], [2, 'weight'], [3, 'bias']]);
  checkShortBuffers('matmulBackward', () => [f(N * C), f(OC * C), f(OC), f(N * OC), f(N * C), f(OC * C), N, C, OC],
    [[0, 'dinp'], [1, 'dweight'], [2, 'dbias'], [3, 'dout'], [4, 'inp'], [5, 'weight']]);
  assert.throws(() => nat('matmulForward')(f(N * OC), f(N * C), new Float64Array(OC * C) as unknown as Float32Array,
    null, N, C, OC), /matmulForward: argument weight must be a Float32Array/);
  assert.throws(() => nat('matmulBackward')(null, null, null, f(N * OC), f(N * C), f(OC * C), N, -2, OC),
    /matmulBackward: argument C must be a non-negative integer/);
});

// ------------------------------------------------------------------------------------------------
// rope

/** HF default RoPE tables (maxPos, hd/2): angle = pos * base^(-2i/hd). */
function ropeTables(maxPos: number, hd: number, base = 10000): { cos: Float32Array; sin: Float32Array } {
  const half = hd / 2, cos = new Float32Array(maxPos * half), sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(base, -(2 * i) / hd);
      cos[p * half + i] = Math.cos(a); sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

// As the decoder calls it on the fused q|k|v rows: nHeads = nH + nKV rotated, stride = (nH + 2 nKV) hd,
// so the v columns must come through untouched. The first size runs serially, the second crosses
// the kernel's parallel threshold (N * nHeads * hd > 2^15); hd = 6 has an odd half (3 pairs).
for (const [N, nH, nKV, hd, maxPos] of [[10, 3, 1, 6, 64], [300, 9, 3, 64, 4096]] as const) {
  const nHeads = nH + nKV, stride = (nH + 2 * nKV) * hd;
  test(`rope(N=${N},nHeads=${nHeads},hd=${hd},stride=${stride}) native forward and backward match the reference on offset views`, () => {
    const { cos, sin } = ropeTables(maxPos, hd);
    // packed documents: positions restart every 97 tokens; the last row sits at the table's end
    const pos = offsetI32(Int32Array.from({ length: N }, (_, n) => (n === N - 1 ? maxPos - 1 : n % 97)));
    const x = randn(N * stride, 121, 3);
    for (const [dir, nfn, rfn] of [['forward', nat('ropeForward'), ropeForward], ['backward', nat('ropeBackward'), ropeBackward]] as const) {
      const a = offsetF32(x), b = x.slice();
      nfn(a, pos, offsetF32(cos), offsetF32(sin), N, nHeads, hd, stride);
      rfn(b, pos, cos, sin, N, nHeads, hd, stride);
      assertRel(a, b, 1e-6, dir);
      assert.ok(relErr(a, x) > 0.1, `${dir}: positions > 0 must rotate`);
      assertPadding(a, dir);
      for (let n = 0; n < N; n++) {
        for (let c = nHeads * hd; c < stride; c++) {
          assert.equal(a[n * stride + c], x[n * stride + c], `${dir}: row ${n} column ${c} (v) must not change`);
        }
      }
    }
    // backward is the transpose: it undoes forward
    const y = offsetF32(x);
    nat('ropeForward')(y, pos, cos, sin, N, nHeads, hd, stride);
    nat('ropeBackward')(y, pos, cos, sin, N, nHeads, hd, stride);
    assertRel(y, x, 1e-6, 'R^T R x');
  });
}

test('rope native rejects short buffers (naming the argument), an odd hd, a short stride and positions past the tables', () => {
  const N = 4, nHeads = 2, hd = 4, stride = 11, maxPos = 6;
  const { cos, sin } = ropeTables(maxPos, hd);
  // x may end right after the last rotated head: (N - 1) * stride + nHeads * hd elements
  const xLen = (N - 1) * stride + nHeads * hd;
  for (const name of ['ropeForward', 'ropeBackward'] as const) {
    const args = (): unknown[] => [new Float32Array(xLen), Int32Array.from([0, 1, 2, 3]), cos, sin, N, nHeads, hd, stride];
    nat(name)(...(args() as Parameters<Kernels['ropeForward']>)); // the exact minimum is accepted
    checkShortBuffers(name, args, [[0, 'x'], [1, 'pos'], [3, 'sin']]);
    const call = (over: Record<number, unknown>) => () => {
      const a = args();
      for (const [i, v] of Object.entries(over)) a[Number(i)] = v;
      (nat(name) as (...a: unknown[]) => void)(...a);
    };
    assert.throws(call({ 6: 5, 7: 10 }), new RegExp(`${name}: rotate_half needs an even head_dim, got hd=5`));
    assert.throws(call({ 7: 7 }), new RegExp(`${name}: stride must be >= nHeads\\*hd, got stride=7, nHeads\\*hd=8`));
    assert.throws(call({ 1: Int32Array.from([0, 1, maxPos, 2]) }), new RegExp(`${name}: pos\\[2\\]=${maxPos} is outside the cos/sin tables`));
    assert.throws(call({ 1: Int32Array.from([0, -1, 1, 2]) }), new RegExp(`${name}: pos\\[1\\]=-1 is outside`));
  }
});

// ------------------------------------------------------------------------------------------------
// attention

interface Cfg { B: number; T: number; nH: number; nKV: number; hd: number; window: number; docs?: number[][] }

/** docStart with the documents of row b (lengths summing to T; one document when not given). */
function docStartOf(c: Cfg): Int32Array {
  const ds = new Int32Array(c.B * c.T);
  for (let b = 0; b < c.B; b++) {
    let start = 0;
    for (const len of c.docs?.[b] ?? [c.T]) {
      for (let t = start; t < start + len; t++) ds[b * c.T + t] = start;
      start += len;
    }
    assert.equal(start, c.T, `documents of row ${b} must fill T`);
  }
  return ds;
}

const attnName = (c: Cfg) => `attention(B=${c.B},T=${c.T},nH=${c.nH},nKV=${c.nKV},hd=${c.hd},window=${c.window}` +
  (c.docs ? `,docs=${c.docs.map((r) => r.join('+')).join('|')})` : ')');

// attention.cpp works on tiles of QT = 16 queries against keys padded to NB = 16 columns, with hd
// padded to a multiple of 16; it goes parallel when B*nH*T*T*hd > 2^16. The configurations cover:
// partial last tiles (T % 16 != 0), tiles whose key range starts far from 0 (window, documents),
// windows not a multiple of 16 and of 1 (a token sees only itself), hd = 40, 20, 12, 7 (none a
// multiple of 16, the last three not of 8) and 64, MHA, GQA and MQA, the serial and parallel paths.
const attnConfigs: Cfg[] = [
  { B: 2, T: 300, nH: 6, nKV: 2, hd: 40, window: 64 },
  { B: 1, T: 300, nH: 4, nKV: 4, hd: 20, window: 0 },
  { B: 2, T: 333, nH: 4, nKV: 1, hd: 12, window: 37, docs: [[100, 17, 150, 66], [1, 31, 301]] },
  { B: 2, T: 200, nH: 4, nKV: 2, hd: 64, window: 0, docs: [[16, 16, 168], [77, 123]] },
  { B: 1, T: 1100, nH: 2, nKV: 1, hd: 24, window: 100 },
  { B: 1, T: 13, nH: 2, nKV: 1, hd: 7, window: 0, docs: [[5, 8]] },
  { B: 1, T: 40, nH: 2, nKV: 2, hd: 16, window: 1 },
];

for (const c of attnConfigs) {
  test(`${attnName(c)} native forward and backward match the reference`, () => {
    const { B, T, nH, nKV, hd, window } = c, QKV = (nH + 2 * nKV) * hd, C = nH * hd;
    const docStart = offsetI32(docStartOf(c));
    const qkv = offsetF32(randn(B * T * QKV, 131, 1.5)), dout = offsetF32(randn(B * T * C, 132));

    const out = [offsetF32(new Float32Array(B * T * C).fill(NaN)), new Float32Array(B * T * C)];
    const lse = [offsetF32(new Float32Array(B * nH * T).fill(NaN)), new Float32Array(B * nH * T)];
    nat('attentionForward')(out[0], lse[0], qkv, docStart, B, T, nH, nKV, hd, window);
    attentionForward(out[1], lse[1], qkv, docStart, B, T, nH, nKV, hd, window);
    assertRel(out[0], out[1], 1e-5, 'out');
    assertRel(lse[0], lse[1], 1e-5, 'lse');
    assert.ok(maxAbsDiff(lse[0], lse[1]) < 1e-5, `lse maxAbsDiff ${maxAbsDiff(lse[0], lse[1])}`);
    assertPadding(out[0], 'out');
    assertPadding(lse[0], 'lse');

    // backward from the same (reference) out and lse on both sides, into zeroed gradients
    const outRef = offsetF32(out[1]), lseRef = offsetF32(lse[1]);
    const dqkv = [offsetF32(new Float32Array(B * T * QKV)), new Float32Array(B * T * QKV)];
    nat('attentionBackward')(dqkv[0], dout, outRef, lseRef, qkv, docStart, B, T, nH, nKV, hd, window);
    attentionBackward(dqkv[1], dout, outRef, lseRef, qkv, docStart, B, T, nH, nKV, hd, window);
    for (const [part, c0, c1] of [['dq', 0, nH * hd], ['dk', nH * hd, (nH + nKV) * hd], ['dv', (nH + nKV) * hd, QKV]] as const) {
      const got = cols(dqkv[0], B * T, QKV, c0, c1), want = cols(dqkv[1], B * T, QKV, c0, c1);
      if (window === 1 && part !== 'dv') {
        // one visible key: p = 1 whatever the score, so dq = dk = 0 exactly; what is left on
        // either side is the rounding of dp - D (dout . v - dout . out with out = v)
        assert.ok(maxAbsDiff(got, new Float32Array(got.length)) < 1e-5, `${part} must vanish with window=1`);
        assert.ok(maxAbsDiff(want, new Float32Array(want.length)) < 1e-5, `reference ${part} must vanish with window=1`);
      } else {
        assertRel(got, want, 1e-5, part);
      }
    }
    assertPadding(dqkv[0], 'dqkv');

    // backward adds into dqkv: prefilled, it ends at prefill + the fresh gradient
    const pre = randn(B * T * QKV, 133), acc = offsetF32(pre);
    nat('attentionBackward')(acc, dout, outRef, lseRef, qkv, docStart, B, T, nH, nKV, hd, window);
    assertRel(acc, combine(pre, dqkv[0], 1), 1e-6, 'prefilled dqkv');
  });
}

// len = 300 with B*nH*len*hd > 2^16 runs the parallel path, len = 9 the serial one. Row 0 is
// left-padded (kvStart > 0) and the cache slots past len hold garbage that must be ignored.
for (const [B, len, maxT, nH, nKV, hd, window] of [[3, 300, 320, 8, 2, 40, 0], [3, 300, 300, 8, 2, 40, 50], [2, 9, 16, 4, 4, 7, 0]] as const) {
  test(`attentionDecode(B=${B},len=${len},maxT=${maxT},nH=${nH},nKV=${nKV},hd=${hd},window=${window}) native matches the reference`, () => {
    const C = nH * hd, KVC = nKV * hd;
    const q = offsetF32(randn(B * C, 141, 1.5));
    const kCache = offsetF32(randn(B * maxT * KVC, 142)), vCache = offsetF32(randn(B * maxT * KVC, 143));
    const kvStart = offsetI32(Int32Array.from({ length: B }, (_, b) => (b === 0 ? 5 : b === 1 ? len - 1 : 0)));
    const out = [offsetF32(new Float32Array(B * C).fill(NaN)), new Float32Array(B * C)];
    nat('attentionDecode')(out[0], q, kCache, vCache, kvStart, B, len, maxT, nH, nKV, hd, window);
    attentionDecode(out[1], q, kCache, vCache, kvStart, B, len, maxT, nH, nKV, hd, window);
    assertRel(out[0], out[1], 1e-5, 'out');
    assertPadding(out[0], 'out');
    // row 1 starts at its last token: every head returns that token's v
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / (nH / nKV)), v = (maxT + len - 1) * KVC + g * hd;
      assertRel(out[0].subarray(C + h * hd, C + (h + 1) * hd), vCache.subarray(v, v + hd), 1e-6, `row 1 head ${h}`);
    }
  });
}

test('attention native rejects short buffers (naming the argument), bad heads, bad document starts and len > maxT', () => {
  const B = 2, T = 5, nH = 4, nKV = 2, hd = 3, QKV = (nH + 2 * nKV) * hd, C = nH * hd, f = (n: number) => new Float32Array(n);
  checkShortBuffers('attentionForward', () => [f(B * T * C), f(B * nH * T), f(B * T * QKV), new Int32Array(B * T), B, T, nH, nKV, hd, 0],
    [[0, 'out'], [1, 'lse'], [2, 'qkv'], [3, 'docStart']]);
  checkShortBuffers('attentionBackward',
    () => [f(B * T * QKV), f(B * T * C), f(B * T * C), f(B * nH * T), f(B * T * QKV), new Int32Array(B * T), B, T, nH, nKV, hd, 0],
    [[0, 'dqkv'], [1, 'dout'], [2, 'out'], [3, 'lse'], [4, 'qkv'], [5, 'docStart']]);
  const maxT = 6, KVC = nKV * hd;
  checkShortBuffers('attentionDecode',
    () => [f(B * C), f(B * C), f(B * maxT * KVC), f(B * maxT * KVC), new Int32Array(B), B, T, maxT, nH, nKV, hd, 0],
    [[0, 'out'], [1, 'q'], [2, 'kCache'], [3, 'vCache'], [4, 'kvStart']]);

  const fwd = (ds: Int32Array, heads = nKV) => () =>
    nat('attentionForward')(f(B * T * C), f(B * nH * T), f(B * T * (nH + 2 * heads) * hd), ds, B, T, nH, heads, hd, 0);
  assert.throws(fwd(new Int32Array(B * T), 3), /attentionForward: num_attention_heads must be a multiple of num_key_value_heads, got nH=4, nKV=3/);
  const late = new Int32Array(B * T); late[7] = 3; // row 1, token 2 cannot belong to a document starting at 3
  assert.throws(fwd(late), /attentionForward: docStart\[7\]=3 must be in \[0, 2\]/);
  const neg = new Int32Array(B * T); neg[1] = -1;
  assert.throws(() => nat('attentionBackward')(f(B * T * QKV), f(B * T * C), f(B * T * C), f(B * nH * T), f(B * T * QKV), neg,
    B, T, nH, nKV, hd, 0), /attentionBackward: docStart\[1\]=-1 must be in \[0, 1\]/);
  assert.throws(() => nat('attentionDecode')(f(B * C), f(B * C), f(B * maxT * KVC), f(B * maxT * KVC), new Int32Array(B),
    B, maxT + 1, maxT, nH, nKV, hd, 0), /attentionDecode: the cache must hold the new token, got len=7, maxT=6/);
  assert.throws(() => nat('attentionDecode')(f(B * C), f(B * C), f(B * maxT * KVC), f(B * maxT * KVC), Int32Array.from([0, T]),
    B, T, maxT, nH, nKV, hd, 0), /attentionDecode: kvStart\[1\]=5 must be in \[0, 4\]/);
});
