// Attention reference kernel: forward against a naive float64 formula that materialises the
// T x T mask the way HF builds it (causal AND same document AND kv_idx > q_idx - window), GQA
// against explicit repeat_kv, packed documents for leakage, backward against central finite
// differences of the naive formula, and KV-cache decode against the last row of the forward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attentionForward, attentionBackward, attentionDecode } from '../../src/tensor/kernels/attention.ts';
import { randn, relErr, maxAbsDiff, finiteDiff, dot } from '../helpers.ts';

interface Cfg { B: number; T: number; nH: number; nKV: number; hd: number; window: number; docs: number[] }

const cfgName = (c: Cfg) => `attention(B=${c.B},T=${c.T},nH=${c.nH},nKV=${c.nKV},hd=${c.hd},window=${c.window}` +
  (c.docs.length > 1 ? `,docs=${c.docs.join('+')})` : ')');
const qkvWidth = (c: Cfg) => (c.nH + 2 * c.nKV) * c.hd;

/** docStart for documents of the given lengths packed in every row (lengths sum to T). */
function packedDocStart(B: number, docs: number[]): Int32Array {
  const T = docs.reduce((a, b) => a + b, 0), ds = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let start = 0;
    for (const len of docs) { for (let t = start; t < start + len; t++) ds[b * T + t] = start; start += len; }
  }
  return ds;
}

/** The (T, T) boolean mask of row b, built as HF does: causal, same document, sliding window. */
function buildMask(docStart: Int32Array, b: number, T: number, window: number): boolean[][] {
  const m: boolean[][] = [];
  for (let t = 0; t < T; t++) {
    m.push([]);
    for (let j = 0; j < T; j++) {
      const causal = j <= t;
      const sameDoc = docStart[b * T + j] === docStart[b * T + t];
      const inWindow = window === 0 || j > t - window;
      m[t].push(causal && sameDoc && inWindow);
    }
  }
  return m;
}

/** Full-matrix float64 attention: S = Q K^T / sqrt(hd), masked softmax, P V; repeat_kv for GQA. */
function naiveAttention(qkv: Float32Array, docStart: Int32Array, c: Cfg): { out: Float64Array; lse: Float64Array } {
  const { B, T, nH, nKV, hd, window } = c, QKV = qkvWidth(c);
  const out = new Float64Array(B * T * nH * hd), lse = new Float64Array(B * nH * T);
  for (let b = 0; b < B; b++) {
    const mask = buildMask(docStart, b, T, window);
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / (nH / nKV));
      const q = (t: number, i: number) => qkv[(b * T + t) * QKV + h * hd + i];
      const k = (t: number, i: number) => qkv[(b * T + t) * QKV + (nH + g) * hd + i];
      const v = (t: number, i: number) => qkv[(b * T + t) * QKV + (nH + nKV + g) * hd + i];
      for (let t = 0; t < T; t++) {
        const S = new Float64Array(T).fill(-Infinity);
        for (let j = 0; j < T; j++) {
          if (!mask[t][j]) continue;
          let s = 0;
          for (let i = 0; i < hd; i++) s += q(t, i) * k(j, i);
          S[j] = s / Math.sqrt(hd);
        }
        const m = Math.max(...S);
        let l = 0;
        for (let j = 0; j < T; j++) l += Math.exp(S[j] - m);
        lse[(b * nH + h) * T + t] = m + Math.log(l);
        for (let i = 0; i < hd; i++) {
          let o = 0;
          for (let j = 0; j < T; j++) o += (Math.exp(S[j] - m) / l) * v(j, i);
          out[(b * T + t) * nH * hd + h * hd + i] = o;
        }
      }
    }
  }
  return { out, lse };
}

function runForward(qkv: Float32Array, docStart: Int32Array, c: Cfg): { out: Float32Array; lse: Float32Array } {
  const out = new Float32Array(c.B * c.T * c.nH * c.hd), lse = new Float32Array(c.B * c.nH * c.T);
  attentionForward(out, lse, qkv, docStart, c.B, c.T, c.nH, c.nKV, c.hd, c.window);
  return { out, lse };
}

const configs: Cfg[] = [
  { B: 2, T: 7, nH: 4, nKV: 2, hd: 6, window: 0, docs: [7] },
  { B: 2, T: 7, nH: 4, nKV: 2, hd: 6, window: 3, docs: [7] },
  { B: 1, T: 9, nH: 3, nKV: 3, hd: 4, window: 0, docs: [3, 4, 2] },
  { B: 2, T: 10, nH: 4, nKV: 1, hd: 5, window: 4, docs: [6, 4] },
];

for (const c of configs) {
  const docStart = packedDocStart(c.B, c.docs);

  test(`${cfgName(c)} forward matches the naive masked float64 formula`, () => {
    const qkv = randn(c.B * c.T * qkvWidth(c), 11);
    const want = naiveAttention(qkv, docStart, c);
    const { out, lse } = runForward(qkv, docStart, c);
    assert.ok(relErr(out, want.out) < 1e-6, `out relErr ${relErr(out, want.out)}`);
    assert.ok(maxAbsDiff(lse, want.lse) < 1e-5, `lse maxAbsDiff ${maxAbsDiff(lse, want.lse)}`);
  });

  test(`${cfgName(c)} backward matches finite differences`, () => {
    const { B, T, nH, nKV, hd } = c, QKV = qkvWidth(c);
    const qkv = randn(B * T * QKV, 12), w = randn(B * T * nH * hd, 13);
    const { out, lse } = runForward(qkv, docStart, c);
    const dqkv = new Float32Array(B * T * QKV);
    attentionBackward(dqkv, w, out, lse, qkv, docStart, B, T, nH, nKV, hd, c.window);
    const fd = finiteDiff(() => dot(naiveAttention(qkv, docStart, c).out, w), qkv, 1e-2);
    // check q, k and v columns separately, so one cannot hide behind the others
    for (const [part, c0, c1] of [['dq', 0, nH * hd], ['dk', nH * hd, (nH + nKV) * hd], ['dv', (nH + nKV) * hd, QKV]] as const) {
      const got: number[] = [], want: number[] = [];
      for (let r = 0; r < B * T; r++) for (let col = c0; col < c1; col++) { got.push(dqkv[r * QKV + col]); want.push(fd[r * QKV + col]); }
      assert.ok(relErr(got, want) < 2e-3, `${part} relErr ${relErr(got, want)}`);
    }
  });
}

test('attention(B=1,T=5,nH=2,nKV=1,hd=4,window=0) backward adds into dqkv', () => {
  const c: Cfg = { B: 1, T: 5, nH: 2, nKV: 1, hd: 4, window: 0, docs: [5] }, QKV = qkvWidth(c);
  const docStart = packedDocStart(1, c.docs), qkv = randn(c.T * QKV, 21), dout = randn(c.T * c.nH * c.hd, 22);
  const { out, lse } = runForward(qkv, docStart, c);
  const fresh = new Float32Array(c.T * QKV), base = randn(c.T * QKV, 23), added = base.slice();
  attentionBackward(fresh, dout, out, lse, qkv, docStart, 1, c.T, c.nH, c.nKV, c.hd, 0);
  attentionBackward(added, dout, out, lse, qkv, docStart, 1, c.T, c.nH, c.nKV, c.hd, 0);
  const want = base.map((x, i) => x + fresh[i]);
  assert.ok(maxAbsDiff(added, want) < 1e-6, `maxAbsDiff ${maxAbsDiff(added, want)}`);
  assert.ok(maxAbsDiff(fresh, new Float32Array(fresh.length)) > 1e-3, 'the gradient must not be zero');
});

test('attention(B=2,T=9,nH=4,nKV=2,hd=6,window=0,docs=3+4+2) packed documents do not leak', () => {
  const c: Cfg = { B: 2, T: 9, nH: 4, nKV: 2, hd: 6, window: 0, docs: [3, 4, 2] }, QKV = qkvWidth(c), C = c.nH * c.hd;
  const docStart = packedDocStart(c.B, c.docs);
  const qkv = randn(c.B * c.T * QKV, 31);
  const before = runForward(qkv, docStart, c);
  // rewrite q, k and v of document 1 (tokens 3..6) in row 0
  const changed = qkv.slice(), noise = randn(4 * QKV, 32);
  changed.set(noise, 3 * QKV);
  const after = runForward(changed, docStart, c);
  const rowTokens = (o: Float32Array, b: number, t0: number, t1: number) => o.slice((b * c.T + t0) * C, (b * c.T + t1) * C);
  assert.deepEqual(rowTokens(after.out, 0, 0, 3), rowTokens(before.out, 0, 0, 3), 'document 0 saw document 1');
  assert.deepEqual(rowTokens(after.out, 0, 7, 9), rowTokens(before.out, 0, 7, 9), 'document 2 saw document 1');
  assert.deepEqual(rowTokens(after.out, 1, 0, 9), rowTokens(before.out, 1, 0, 9), 'row 1 saw row 0');
  assert.ok(relErr(rowTokens(after.out, 0, 3, 7), rowTokens(before.out, 0, 3, 7)) > 0.1, 'document 1 must change');
  // the first token of a document attends only to itself: its output is its own v
  for (const t of [0, 3, 7]) {
    for (let h = 0; h < c.nH; h++) {
      const g = Math.floor(h / 2), v = (t * QKV) + (c.nH + c.nKV + g) * c.hd;
      assert.deepEqual(before.out.slice(t * C + h * c.hd, t * C + (h + 1) * c.hd), qkv.slice(v, v + c.hd));
      let s = 0; // lse of a single key is its own scaled score
      for (let i = 0; i < c.hd; i++) s += qkv[t * QKV + h * c.hd + i] * qkv[t * QKV + (c.nH + g) * c.hd + i];
      assert.ok(Math.abs(before.lse[h * c.T + t] - s / Math.sqrt(c.hd)) < 1e-6, `lse of token ${t} head ${h}`);
    }
  }
});

test('attention(B=1,T=8,nH=4,nKV=2,hd=4,window=3) equals MHA on repeat_kv heads, forward and backward', () => {
  const gqa: Cfg = { B: 1, T: 8, nH: 4, nKV: 2, hd: 4, window: 3, docs: [8] };
  const mha: Cfg = { ...gqa, nKV: 4 };
  const docStart = packedDocStart(1, gqa.docs), hd = 4, W1 = qkvWidth(gqa), W2 = qkvWidth(mha);
  const qkv = randn(gqa.T * W1, 41), dout = randn(gqa.T * 4 * hd, 42);
  // repeat_kv: kv head g serves query heads 2g and 2g+1
  const rep = new Float32Array(gqa.T * W2);
  for (let t = 0; t < gqa.T; t++) {
    rep.set(qkv.subarray(t * W1, t * W1 + 4 * hd), t * W2);
    for (let h = 0; h < 4; h++) {
      const g = h >> 1;
      rep.set(qkv.subarray(t * W1 + (4 + g) * hd, t * W1 + (5 + g) * hd), t * W2 + (4 + h) * hd);
      rep.set(qkv.subarray(t * W1 + (6 + g) * hd, t * W1 + (7 + g) * hd), t * W2 + (8 + h) * hd);
    }
  }
  const a = runForward(qkv, docStart, gqa), b = runForward(rep, docStart, mha);
  assert.ok(maxAbsDiff(a.out, b.out) < 1e-6, `out maxAbsDiff ${maxAbsDiff(a.out, b.out)}`);
  assert.ok(maxAbsDiff(a.lse, b.lse) < 1e-6, `lse maxAbsDiff ${maxAbsDiff(a.lse, b.lse)}`);
  const da = new Float32Array(qkv.length), db = new Float32Array(rep.length);
  attentionBackward(da, dout, a.out, a.lse, qkv, docStart, 1, gqa.T, 4, 2, hd, 3);
  attentionBackward(db, dout, b.out, b.lse, rep, docStart, 1, gqa.T, 4, 4, hd, 3);
  // a shared kv head's gradient is the sum over the query heads of its group
  for (let t = 0; t < gqa.T; t++) {
    for (let col = 0; col < W1; col++) {
      let want = 0;
      if (col < 4 * hd) want = db[t * W2 + col];
      else {
        const kvCol = col - 4 * hd, isV = kvCol >= 2 * hd, g = Math.floor((kvCol % (2 * hd)) / hd), i = kvCol % hd;
        const off = isV ? 8 * hd : 4 * hd;
        want = db[t * W2 + off + 2 * g * hd + i] + db[t * W2 + off + (2 * g + 1) * hd + i];
      }
      assert.ok(Math.abs(da[t * W1 + col] - want) < 1e-5, `t=${t} col=${col}: ${da[t * W1 + col]} vs ${want}`);
    }
  }
});

for (const [B, T, nH, nKV, hd, window] of [[2, 9, 4, 2, 6, 0], [2, 9, 4, 2, 6, 4], [1, 6, 2, 1, 5, 2]] as const) {
  test(`attentionDecode(B=${B},len=${T},maxT=${T + 3},nH=${nH},nKV=${nKV},hd=${hd},window=${window}) equals the last row of the forward`, () => {
    const QKV = (nH + 2 * nKV) * hd, C = nH * hd, KVC = nKV * hd, maxT = T + 3;
    const kvStart = Int32Array.from({ length: B }, (_, b) => (b === 0 ? 2 : 0)); // row 0 is left-padded by 2
    const docStart = new Int32Array(B * T);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) docStart[b * T + t] = t < kvStart[b] ? t : kvStart[b];
    const qkv = randn(B * T * QKV, 51);
    const full = runForward(qkv, docStart, { B, T, nH, nKV, hd, window, docs: [T] });
    const q = new Float32Array(B * C), kCache = randn(B * maxT * KVC, 52), vCache = randn(B * maxT * KVC, 53);
    for (let b = 0; b < B; b++) {
      q.set(qkv.subarray((b * T + T - 1) * QKV, (b * T + T - 1) * QKV + C), b * C);
      for (let t = 0; t < T; t++) { // cache slots >= len keep their random garbage: it must be ignored
        const row = (b * T + t) * QKV;
        kCache.set(qkv.subarray(row + C, row + C + KVC), (b * maxT + t) * KVC);
        vCache.set(qkv.subarray(row + C + KVC, row + QKV), (b * maxT + t) * KVC);
      }
      if (kvStart[b] > 0) kCache.fill(50, b * maxT * KVC, (b * maxT + kvStart[b]) * KVC); // loud padding
    }
    const out = new Float32Array(B * C);
    attentionDecode(out, q, kCache, vCache, kvStart, B, T, maxT, nH, nKV, hd, window);
    const last = new Float32Array(B * C);
    for (let b = 0; b < B; b++) last.set(full.out.subarray((b * T + T - 1) * C, (b * T + T) * C), b * C);
    assert.ok(maxAbsDiff(out, last) < 1e-6, `maxAbsDiff ${maxAbsDiff(out, last)}`);
  });
}

test('attention rejects a document start after its token and heads not divisible by kv heads', () => {
  const qkv = new Float32Array(4 * 3 * 2), out = new Float32Array(4 * 2), lse = new Float32Array(4);
  assert.throws(() => attentionForward(out, lse, qkv, Int32Array.from([0, 0, 3, 2]), 1, 4, 1, 1, 2, 0), /docStart=3/);
  assert.throws(() => attentionForward(out, lse, new Float32Array(4 * 4 * 2), new Int32Array(4), 1, 4, 3, 2, 2, 0), /nH=3, nKV=2/);
  assert.throws(() => attentionDecode(out, qkv, qkv, qkv, new Int32Array(1), 1, 5, 4, 1, 1, 2, 0), /len=5/);
});
