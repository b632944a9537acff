// Causal grouped-query attention over packed rows, forward / backward / KV-cache decode: the
// plain TypeScript reference for native/src/attention.cpp. HF modeling_llama (eager attention,
// repeat_kv for GQA, softmax in float32) with Mistral's sliding window and packed documents.
// The derivation of the backward pass is in docs/attention.md.
//
// Dimension legend: B = batch, T = sequence length, nH = query heads, nKV = key/value heads,
// hd = head_dim, QKV = (nH + 2*nKV)*hd. Query head h reads kv head h / (nH/nKV) (integer division).
// Token t of row b attends to keys j in [lo, t] with lo = max(docStart[b*T+t], t - window + 1)
// (window 0 = unlimited). Buffers:
//   qkv    (B, T, QKV)   q at column 0, k at nH*hd, v at (nH+nKV)*hd (already rope-rotated)
//   out    (B, T, nH*hd) heads concatenated per token, the input of o_proj
//   lse    (B, nH, T)    log-sum-exp of the scaled scores of each query, saved for backward
// Memory is O(T) per head: each query's scores live in one scratch row, never a T x T matrix.
// Arithmetic is float64 here (the reference); the native kernel accumulates in float32.
import type { F32, I32 } from './types.ts';
import { KompresorError } from '../../errors.ts';

function fail(where: string, rule: string, expected: string, found: string): never {
  throw new KompresorError({ code: 'input_invalid', where, rule, expected, found });
}

function checkHeads(where: string, nH: number, nKV: number): void {
  if (!(nKV > 0 && nH % nKV === 0)) fail(where, 'num_attention_heads must be a multiple of num_key_value_heads', 'nH % nKV == 0', `nH=${nH}, nKV=${nKV}`);
}

/** First key index visible to query t (lo <= t), given its document start and the window. */
function firstKey(where: string, docStart: number, t: number, window: number): number {
  if (!(docStart >= 0 && docStart <= t)) fail(where, 'a token\'s document must start at or before it', `0 <= docStart <= ${t}`, `docStart=${docStart}`);
  return window > 0 ? Math.max(docStart, t - window + 1) : docStart;
}

/** s[j] = scale * q . k_j for j in [lo, t]; returns the maximum (for a stable softmax). */
function scores(s: Float64Array, qkv: F32, qOff: number, kBase: number, QKV: number, lo: number, t: number, hd: number, scale: number): number {
  let m = -Infinity;
  for (let j = lo; j <= t; j++) {
    const kOff = kBase + j * QKV;
    let d = 0;
    for (let i = 0; i < hd; i++) d += qkv[qOff + i] * qkv[kOff + i];
    s[j] = d * scale;
    if (s[j] > m) m = s[j];
  }
  return m;
}

/** out and lse for every (b, h, t); two passes over each query's key range (max, then exp-sum). */
export function attentionForward(out: F32, lse: F32, qkv: F32, docStart: I32,
  B: number, T: number, nH: number, nKV: number, hd: number, window: number): void {
  checkHeads('attentionForward', nH, nKV);
  const QKV = (nH + 2 * nKV) * hd, C = nH * hd, group = nH / nKV, scale = 1 / Math.sqrt(hd);
  const s = new Float64Array(T);   // (T) scores of one query
  const acc = new Float64Array(hd); // (hd) unnormalised output of one query
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / group);
      const kBase = b * T * QKV + (nH + g) * hd, vBase = b * T * QKV + (nH + nKV + g) * hd;
      for (let t = 0; t < T; t++) {
        const lo = firstKey('attentionForward', docStart[b * T + t], t, window);
        const qOff = (b * T + t) * QKV + h * hd;
        const m = scores(s, qkv, qOff, kBase, QKV, lo, t, hd, scale);
        let l = 0;
        acc.fill(0);
        for (let j = lo; j <= t; j++) {
          const p = Math.exp(s[j] - m);
          l += p;
          const vOff = vBase + j * QKV;
          for (let i = 0; i < hd; i++) acc[i] += p * qkv[vOff + i];
        }
        const oOff = (b * T + t) * C + h * hd;
        for (let i = 0; i < hd; i++) out[oOff + i] = acc[i] / l;
        lse[(b * nH + h) * T + t] = m + Math.log(l);
      }
    }
  }
}

/**
 * dqkv += d/dqkv. In the forward pass this was p_j = exp(s_j - lse), out = sum_j p_j v_j, so now,
 * with D = dout . out (the "D trick": sum_j p_j dp_j without a second pass):
 *   dv_j += p_j dout;  dp_j = dout . v_j;  ds_j = p_j (dp_j - D);
 *   dq += scale * sum_j ds_j k_j;  dk_j += scale * ds_j q.
 * Kv heads shared by a group of query heads sum the gradients of every head in the group.
 */
export function attentionBackward(dqkv: F32, dout: F32, out: F32, lse: F32, qkv: F32, docStart: I32,
  B: number, T: number, nH: number, nKV: number, hd: number, window: number): void {
  checkHeads('attentionBackward', nH, nKV);
  const QKV = (nH + 2 * nKV) * hd, C = nH * hd, group = nH / nKV, scale = 1 / Math.sqrt(hd);
  const dq = new Float64Array(hd); // (hd) gradient of one query, added into dqkv at the end
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / group);
      const kBase = b * T * QKV + (nH + g) * hd, vBase = b * T * QKV + (nH + nKV + g) * hd;
      for (let t = 0; t < T; t++) {
        const lo = firstKey('attentionBackward', docStart[b * T + t], t, window);
        const qOff = (b * T + t) * QKV + h * hd, oOff = (b * T + t) * C + h * hd;
        const L = lse[(b * nH + h) * T + t];
        let D = 0;
        for (let i = 0; i < hd; i++) D += dout[oOff + i] * out[oOff + i];
        dq.fill(0);
        for (let j = lo; j <= t; j++) {
          const kOff = kBase + j * QKV, vOff = vBase + j * QKV;
          let sj = 0, dp = 0;
          for (let i = 0; i < hd; i++) { sj += qkv[qOff + i] * qkv[kOff + i]; dp += dout[oOff + i] * qkv[vOff + i]; }
          const p = Math.exp(sj * scale - L);
          const ds = p * (dp - D) * scale; // already carries the 1/sqrt(hd) of s = scale * q.k
          for (let i = 0; i < hd; i++) {
            dq[i] += ds * qkv[kOff + i];
            dqkv[kOff + i] += ds * qkv[qOff + i];
            dqkv[vOff + i] += p * dout[oOff + i];
          }
        }
        for (let i = 0; i < hd; i++) dqkv[qOff + i] += dq[i];
      }
    }
  }
}

/**
 * One new query per row against a KV cache: out[b, h] = softmax(scale * q.k_j) @ v_j over
 * j in [max(kvStart[b], t - window + 1), t], t = len - 1. q (B, nH*hd); kCache, vCache
 * (B, maxT, nKV*hd); out (B, nH*hd). kvStart[b] > 0 skips the left padding of row b.
 */
export function attentionDecode(out: F32, q: F32, kCache: F32, vCache: F32, kvStart: I32,
  B: number, len: number, maxT: number, nH: number, nKV: number, hd: number, window: number): void {
  checkHeads('attentionDecode', nH, nKV);
  if (!(len >= 1 && len <= maxT)) fail('attentionDecode', 'the cache must hold the new token', `1 <= len <= maxT=${maxT}`, `len=${len}`);
  const C = nH * hd, KVC = nKV * hd, group = nH / nKV, scale = 1 / Math.sqrt(hd), t = len - 1;
  const s = new Float64Array(len);
  const acc = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    const lo = firstKey('attentionDecode', kvStart[b], t, window);
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / group), qOff = b * C + h * hd;
      const kvBase = b * maxT * KVC + g * hd;
      let m = -Infinity;
      for (let j = lo; j <= t; j++) {
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[qOff + i] * kCache[kvBase + j * KVC + i];
        s[j] = d * scale;
        if (s[j] > m) m = s[j];
      }
      let l = 0;
      acc.fill(0);
      for (let j = lo; j <= t; j++) {
        const p = Math.exp(s[j] - m);
        l += p;
        for (let i = 0; i < hd; i++) acc[i] += p * vCache[kvBase + j * KVC + i];
      }
      for (let i = 0; i < hd; i++) out[qOff + i] = acc[i] / l;
    }
  }
}
