// Causal grouped-query attention over packed rows: forward (saving lse), backward that
// recomputes the probabilities from q, k and lse (flash-attention style), and KV-cache decode.
// Same semantics and argument order as src/tensor/kernels/attention.ts (the reference); the
// derivation is in docs/attention.md.
//
// Dimension legend: B = batch, T = sequence length, nH = query heads, nKV = key/value heads,
// hd = head_dim, QKV = (nH + 2*nKV)*hd, C = nH*hd, QT = queries per tile.
//   qkv (B, T, QKV)  out (B, T, C)  lse (B, nH, T)  docStart (B, T)
// Token t of row b sees keys j in [max(docStart[b*T+t], t - window + 1), t] (window 0 = none).
//
// Layout of the work: a tile of QT consecutive queries of one head is scored against every key
// any of them can see, so each loaded key row serves QT queries. Per thread the scratch is
// QT x T scores (O(T) per head, never T x T). Dots run 4 queries against one key with 4
// independent accumulators; axpys are plain loops over hd. All of it vectorises for any hd.
// No BLAS inside the OpenMP regions (OpenBLAS would spawn its own threads per call).
#include "common.h"
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace {

constexpr int64_t QT = 16;  // queries per tile

struct Dims {
  int64_t B, T, nH, nKV, hd, window, QKV, C, group;
  float scale;
};

Dims make_dims(int64_t B, int64_t T, int64_t nH, int64_t nKV, int64_t hd, int64_t window) {
  return {B, T, nH, nKV, hd, window, (nH + 2 * nKV) * hd, nH * hd, nKV ? nH / nKV : 1,
          1.0f / std::sqrt((float)hd)};
}

inline int64_t first_key(int64_t docStart, int64_t t, int64_t window) {
  return window > 0 ? std::max(docStart, t - window + 1) : docStart;
}

// exp(x) for the softmax, x in [-87, 88]: Cephes expf (~1 ulp), written so the compiler
// vectorises it (libm's expf and std::floor do not vectorise without -ffast-math). Callers clamp
// x >= -87 in a separate loop (exp(-87) ~ 1.6e-38 stands in for anything smaller): a clamp in
// here lets GCC jump-thread the constant case into a branch and give up on vectorising.
inline float exp_vec(float x) {
  const int32_t n = (int32_t)(x * 1.44269504088896341f + 128.5f) - 128;  // floor(x*log2e + 0.5)
  const float fx = (float)n;
  float r = x - fx * 0.693359375f;  // x - n*ln2 in two parts, exact first part
  r = r - fx * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  return y * __builtin_bit_cast(float, (n + 127) << 23);  // y * 2^n
}

// x[j] = exp(max(x[j] * scale - shift, -87)) for j in [a, e).
inline void exp_shifted(float* x, int64_t a, int64_t e, float scale, float shift) {
#pragma omp simd
  for (int64_t j = a; j < e; j++) {
    const float z = x[j] * scale - shift;
    x[j] = z < -87.0f ? -87.0f : z;  // NaN stays NaN
  }
#pragma omp simd
  for (int64_t j = a; j < e; j++) x[j] = exp_vec(x[j]);
}

inline void axpy(float* y, float a, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t d = 0; d < n; d++) y[d] += a * x[d];
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The one micro-kernel: C[m, n] (+)= sum_k A[m*ars + k*acs] * Bm[k*ldb + n] for m < M, n < N.
// N is a multiple of NB (callers pad), so the NB-wide inner loop has a fixed trip count: it
// becomes one or two vector registers per row and 4 rows share every load of Bm. A's strides
// let the same code read P (ars = W, acs = 1) or P^T (ars = 1, acs = W).
constexpr int64_t NB = 16;
void gemm_tile(float* C, int64_t ldc, const float* A, int64_t ars, int64_t acs, const float* Bm,
               int64_t ldb, int64_t M, int64_t K, int64_t N, bool accumulate) {
  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const int64_t mr = std::min<int64_t>(4, M - m0);
      const float* a[4];
      for (int64_t r = 0; r < 4; r++) a[r] = A + (m0 + std::min(r, mr - 1)) * ars;  // pad rows: computed, not stored
      float c[4][NB];
      for (int64_t r = 0; r < 4; r++)
        for (int64_t n = 0; n < NB; n++) c[r][n] = (accumulate && r < mr) ? C[(m0 + r) * ldc + n0 + n] : 0.0f;
      for (int64_t k = 0; k < K; k++) {
        const float* b = Bm + k * ldb + n0;
        const float a0 = a[0][k * acs], a1 = a[1][k * acs], a2 = a[2][k * acs], a3 = a[3][k * acs];
#pragma omp simd
        for (int64_t n = 0; n < NB; n++) {
          c[0][n] += a0 * b[n]; c[1][n] += a1 * b[n]; c[2][n] += a2 * b[n]; c[3][n] += a3 * b[n];
        }
      }
      for (int64_t r = 0; r < mr; r++)
        for (int64_t n = 0; n < NB; n++) C[(m0 + r) * ldc + n0 + n] = c[r][n];
    }
  }
}

// Per (row, kv head) copies of k and v in the layouts the micro-kernel wants, zero padded:
//   kT, vT (hd, Tp)  keys/values as columns, for scores q.k_j and dp = dout.v_j
//   kP, vP (Tp, hdp) rows padded to hdp, for p @ v, ds @ k
// Tp = T rounded up to NB, hdp = hd rounded up to NB. O(T) per head.
struct KV {
  int64_t Tp, hdp;
  float *kT, *vT, *kP, *vP;
};

// Fills whichever of kv's buffers are non-null (the forward needs only kT and vP).
void pack_kv(const Dims& d, const float* qkv, int64_t b, int64_t g, const KV& kv) {
  for (float* p : {kv.kT, kv.vT}) if (p) std::fill(p, p + d.hd * kv.Tp, 0.0f);
  for (float* p : {kv.kP, kv.vP}) if (p) std::fill(p, p + kv.Tp * kv.hdp, 0.0f);
  for (int64_t j = 0; j < d.T; j++) {
    const float* k = qkv + (b * d.T + j) * d.QKV + (d.nH + g) * d.hd;
    const float* v = k + d.nKV * d.hd;
    for (int64_t i = 0; i < d.hd; i++) {
      if (kv.kT) kv.kT[i * kv.Tp + j] = k[i];
      if (kv.vT) kv.vT[i * kv.Tp + j] = v[i];
      if (kv.kP) kv.kP[j * kv.hdp + i] = k[i];
      if (kv.vP) kv.vP[j * kv.hdp + i] = v[i];
    }
  }
}

// One tile: queries t0..t0+nq-1 of head h in row b; keys j0..j0+W-1 cover all their ranges
// (j0 aligned down to NB and W a multiple of NB, so kT/kP reads stay inside the padding).
struct Tile {
  int64_t b, h, g, t0, nq, j0, W;
  int64_t lo[QT];
};

Tile make_tile(const Dims& d, const int32_t* docStart, int64_t b, int64_t h, int64_t t0) {
  Tile tl{b, h, h / d.group, t0, std::min(QT, d.T - t0), t0, 0, {}};
  for (int64_t i = 0; i < tl.nq; i++) {
    tl.lo[i] = first_key(docStart[b * d.T + t0 + i], t0 + i, d.window);
    tl.j0 = std::min(tl.j0, tl.lo[i]);
  }
  tl.j0 = tl.j0 / NB * NB;
  tl.W = round_up(t0 + tl.nq - tl.j0, NB);
  return tl;
}

// Copy nq rows of hd floats (row stride ld) into a zero-padded (QT, hdp) block.
void pack_rows(float* dst, const float* src, int64_t ld, int64_t nq, int64_t hd, int64_t hdp) {
  std::fill(dst, dst + QT * hdp, 0.0f);
  for (int64_t i = 0; i < nq; i++) std::copy(src + i * ld, src + i * ld + hd, dst + i * hdp);
}

// ----------------------------------------------------------------------------
// forward

// Row i of S (raw dots of query i) becomes exp(scale*s - max) on its keys [a, e) and exactly 0
// elsewhere. Returns the sum l and the max m (lse = m + log l). (Loops run to `< e`: GCC does
// not vectorise `j <= e`, which could be an infinite loop.)
float softmax_row(float* Si, int64_t W, int64_t a, int64_t e, float scale, float* m_out) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t j = a; j < e; j++) m = m > Si[j] ? m : Si[j];
  m *= scale;  // scale > 0, so max(scale*s) = scale*max(s)
  exp_shifted(Si, a, e, scale, m);
  float l = 0;
#pragma omp simd reduction(+ : l)
  for (int64_t j = a; j < e; j++) l += Si[j];
  std::fill(Si, Si + a, 0.0f);
  std::fill(Si + e, Si + W, 0.0f);
  *m_out = m;
  return l;
}

void forward_tile(const Dims& d, float* out, float* lse, const float* qkv, const Tile& tl, const KV& kv,
                  float* S /* (QT, Tp) */, float* acc /* (QT, hdp) */) {
  const int64_t W = tl.W, hd = d.hd;
  const float* q = qkv + (tl.b * d.T + tl.t0) * d.QKV + tl.h * hd;
  gemm_tile(S, W, q, d.QKV, 1, kv.kT + tl.j0, kv.Tp, tl.nq, hd, W, false);  // S = q @ k^T
  float l[QT];
  for (int64_t i = 0; i < tl.nq; i++) {
    float m;
    l[i] = softmax_row(S + i * W, W, tl.lo[i] - tl.j0, tl.t0 + i + 1 - tl.j0, d.scale, &m);
    lse[(tl.b * d.nH + tl.h) * d.T + tl.t0 + i] = m + std::log(l[i]);
  }
  gemm_tile(acc, kv.hdp, S, W, 1, kv.vP + tl.j0 * kv.hdp, kv.hdp, tl.nq, W, kv.hdp, false);  // acc = p @ v
  for (int64_t i = 0; i < tl.nq; i++) {
    float* o = out + (tl.b * d.T + tl.t0 + i) * d.C + tl.h * hd;
    const float inv = 1.0f / l[i];
    for (int64_t k = 0; k < hd; k++) o[k] = acc[i * kv.hdp + k] * inv;
  }
}

// ----------------------------------------------------------------------------
// backward

// In the forward pass this was p_ij = exp(scale*q_i.k_j - lse_i), out_i = sum_j p_ij v_j, so now
//   dv_j += sum_i p_ij dout_i;   dp_ij = dout_i . v_j;   ds_ij = p_ij (dp_ij - D_i), D_i = dout_i . out_i
//   dq_i += scale sum_j ds_ij k_j;   dk_j += scale sum_i ds_ij q_i
// dK, dV (Tp, hdp) belong to the calling task (one per row and kv head), so nothing races.
struct BwdScratch {
  float *P, *dS, *qp, *gp, *dq, *dK, *dV;
};

void backward_tile(const Dims& d, float* dqkv, const float* dout, const float* out, const float* lse,
                   const float* qkv, const Tile& tl, const KV& kv, const BwdScratch& w) {
  const int64_t W = tl.W, hd = d.hd, hdp = kv.hdp;
  const float* q = qkv + (tl.b * d.T + tl.t0) * d.QKV + tl.h * hd;
  const float* g = dout + (tl.b * d.T + tl.t0) * d.C + tl.h * hd;
  gemm_tile(w.P, W, q, d.QKV, 1, kv.kT + tl.j0, kv.Tp, tl.nq, hd, W, false);  // q_i . k_j
  gemm_tile(w.dS, W, g, d.C, 1, kv.vT + tl.j0, kv.Tp, tl.nq, hd, W, false);   // dout_i . v_j
  for (int64_t i = 0; i < tl.nq; i++) {
    const int64_t t = tl.t0 + i, a = tl.lo[i] - tl.j0, e = t + 1 - tl.j0;  // keys [a, e)
    const float L = lse[(tl.b * d.nH + tl.h) * d.T + t];
    const float* o = out + (tl.b * d.T + t) * d.C + tl.h * hd;
    float D = 0;
#pragma omp simd reduction(+ : D)
    for (int64_t k = 0; k < hd; k++) D += g[i * d.C + k] * o[k];
    float *Pi = w.P + i * W, *dSi = w.dS + i * W;
    std::fill(Pi, Pi + a, 0.0f);  // masked keys: p = 0 and ds = 0
    std::fill(dSi, dSi + a, 0.0f);
    exp_shifted(Pi, a, e, d.scale, L);  // p_ij = exp(scale*s_ij - lse_i)
#pragma omp simd
    for (int64_t j = a; j < e; j++) dSi[j] = Pi[j] * (dSi[j] - D) * d.scale;  // carries the scale of s
    std::fill(Pi + e, Pi + W, 0.0f);
    std::fill(dSi + e, dSi + W, 0.0f);
  }
  pack_rows(w.qp, q, d.QKV, tl.nq, hd, hdp);
  pack_rows(w.gp, g, d.C, tl.nq, hd, hdp);
  gemm_tile(w.dq, hdp, w.dS, W, 1, kv.kP + tl.j0 * hdp, hdp, tl.nq, W, hdp, false);  // ds @ k
  gemm_tile(w.dK + tl.j0 * hdp, hdp, w.dS, 1, W, w.qp, hdp, W, tl.nq, hdp, true);     // ds^T @ q
  gemm_tile(w.dV + tl.j0 * hdp, hdp, w.P, 1, W, w.gp, hdp, W, tl.nq, hdp, true);      // p^T @ dout
  for (int64_t i = 0; i < tl.nq; i++) axpy(dqkv + (tl.b * d.T + tl.t0 + i) * d.QKV + tl.h * hd, 1.0f, w.dq + i * hdp, hd);
}

}  // namespace

// ----------------------------------------------------------------------------
// bindings

// Shared checks: heads divide, and every token's document starts at or before it.
#define ATTN_CHECK_DIMS(fn)                                                                         \
  ENSURE_ARG(env, hd >= 1, fn ": hd must be >= 1");                                                 \
  ENSURE_ARG(env, nKV >= 1 && nH % nKV == 0,                                                        \
             fn ": num_attention_heads must be a multiple of num_key_value_heads, got nH=" +       \
                 std::to_string(nH) + ", nKV=" + std::to_string(nKV))
#define ATTN_CHECK_DOCSTART(fn, ds, B, T)                                                           \
  for (int64_t r = 0; r < (B) * (T); r++) {                                                         \
    const int64_t t = r % (T), s = (ds)[r];                                                          \
    ENSURE_ARG(env, s >= 0 && s <= t, fn ": docStart[" + std::to_string(r) + "]=" +                \
               std::to_string(s) + " must be in [0, " + std::to_string(t) + "]");                  \
  }

static Napi::Value attentionForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(B, 4); ARG_INT(T, 5); ARG_INT(nH, 6); ARG_INT(nKV, 7); ARG_INT(hd, 8); ARG_INT(window, 9);
  ATTN_CHECK_DIMS("attentionForward");
  const Dims d = make_dims(B, T, nH, nKV, hd, window);
  ARG_F32(out, 0, B * T * d.C, false);
  ARG_F32(lse, 1, B * nH * T, false);
  ARG_F32(qkv, 2, B * T * d.QKV, false);
  ARG_I32(docStart, 3, B * T);
  ATTN_CHECK_DOCSTART("attentionForward", docStart.data, B, T);
  if (B * T == 0) return env.Undefined();
  // pass 1: pack k and v of every (row, kv head); pass 2: the query tiles
  const int64_t Tp = round_up(T, NB), hdp = round_up(hd, NB), per = hd * Tp + Tp * hdp;
  std::vector<float> packed(B * nKV * per);  // kT and vP of every (row, kv head)
  auto kvOf = [&](int64_t bg) {
    float* p = packed.data() + bg * per;
    return KV{Tp, hdp, p, nullptr, nullptr, p + hd * Tp};
  };
  const bool par = B * nH * T * T * hd > (1 << 16);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t bg = 0; bg < B * nKV; bg++) pack_kv(d, qkv.data, bg / nKV, bg % nKV, kvOf(bg));
  const int64_t tiles = (T + QT - 1) / QT, tasks = B * nH * tiles;
#pragma omp parallel if (par)
  {
    std::vector<float> S(QT * Tp), acc(QT * hdp);
    // tiles late in the sequence see more keys: hand them out first, one at a time
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) {
      const int64_t tile = tiles - 1 - task / (B * nH), bh = task % (B * nH);
      const Tile tl = make_tile(d, docStart.data, bh / nH, bh % nH, tile * QT);
      forward_tile(d, out.data, lse.data, qkv.data, tl, kvOf(tl.b * nKV + tl.g), S.data(), acc.data());
    }
  }
  return env.Undefined();
}

static Napi::Value attentionBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(B, 6); ARG_INT(T, 7); ARG_INT(nH, 8); ARG_INT(nKV, 9); ARG_INT(hd, 10); ARG_INT(window, 11);
  ATTN_CHECK_DIMS("attentionBackward");
  const Dims d = make_dims(B, T, nH, nKV, hd, window);
  ARG_F32(dqkv, 0, B * T * d.QKV, false);
  ARG_F32(dout, 1, B * T * d.C, false);
  ARG_F32(out, 2, B * T * d.C, false);
  ARG_F32(lse, 3, B * nH * T, false);
  ARG_F32(qkv, 4, B * T * d.QKV, false);
  ARG_I32(docStart, 5, B * T);
  ATTN_CHECK_DOCSTART("attentionBackward", docStart.data, B, T);
  if (B * T == 0) return env.Undefined();
  const int64_t tiles = (T + QT - 1) / QT, tasks = B * nKV;
  const int64_t Tp = round_up(T, NB), hdp = round_up(hd, NB);
  // one task per (row, kv head): it owns dk/dv of that kv head and dq of the heads of its group
#pragma omp parallel if (tasks > 1 && B * nH * T * T * hd > (1 << 16))
  {
    std::vector<float> kvBuf(2 * hd * Tp + 2 * Tp * hdp), scratch(2 * QT * Tp + 3 * QT * hdp + 2 * Tp * hdp);
    float* p = kvBuf.data();
    const KV kv{Tp, hdp, p, p + hd * Tp, p + 2 * hd * Tp, p + 2 * hd * Tp + Tp * hdp};
    float* s = scratch.data();
    const BwdScratch w{s, s + QT * Tp, s + 2 * QT * Tp, s + 2 * QT * Tp + QT * hdp, s + 2 * QT * Tp + 2 * QT * hdp,
                       s + 2 * QT * Tp + 3 * QT * hdp, s + 2 * QT * Tp + 3 * QT * hdp + Tp * hdp};
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) {
      const int64_t b = task / nKV, g = task % nKV;
      pack_kv(d, qkv.data, b, g, kv);
      std::fill(w.dK, w.dK + 2 * Tp * hdp, 0.0f);  // dK and dV are contiguous
      for (int64_t h = g * d.group; h < (g + 1) * d.group; h++) {
        for (int64_t tile = 0; tile < tiles; tile++) {
          const Tile tl = make_tile(d, docStart.data, b, h, tile * QT);
          backward_tile(d, dqkv.data, dout.data, out.data, lse.data, qkv.data, tl, kv, w);
        }
      }
      for (int64_t j = 0; j < T; j++) {
        float* row = dqkv.data + (b * T + j) * d.QKV;
        axpy(row + (nH + g) * hd, 1.0f, w.dK + j * hdp, hd);
        axpy(row + (nH + nKV + g) * hd, 1.0f, w.dV + j * hdp, hd);
      }
    }
  }
  return env.Undefined();
}

static Napi::Value attentionDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(B, 5); ARG_INT(len, 6); ARG_INT(maxT, 7); ARG_INT(nH, 8); ARG_INT(nKV, 9); ARG_INT(hd, 10);
  ARG_INT(window, 11);
  ATTN_CHECK_DIMS("attentionDecode");
  ENSURE_ARG(env, len >= 1 && len <= maxT, "attentionDecode: the cache must hold the new token, got len=" +
             std::to_string(len) + ", maxT=" + std::to_string(maxT));
  const int64_t C = nH * hd, KVC = nKV * hd, group = nH / nKV, t = len - 1;
  ARG_F32(out, 0, B * C, false);
  ARG_F32(q, 1, B * C, false);
  ARG_F32(kCache, 2, B * maxT * KVC, false);
  ARG_F32(vCache, 3, B * maxT * KVC, false);
  ARG_I32(kvStart, 4, B);
  for (int64_t b = 0; b < B; b++) {
    ENSURE_ARG(env, kvStart.data[b] >= 0 && kvStart.data[b] <= t, "attentionDecode: kvStart[" +
               std::to_string(b) + "]=" + std::to_string(kvStart.data[b]) + " must be in [0, " + std::to_string(t) + "]");
  }
  const float scale = 1.0f / std::sqrt((float)hd);
#pragma omp parallel if (B * nH * len * hd > (1 << 16))
  {
    std::vector<float> s(len);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * nH; bh++) {
      const int64_t b = bh / nH, h = bh % nH, g = h / group, lo = first_key(kvStart.data[b], t, window);
      const float* qh = q.data + b * C + h * hd;
      const float* K = kCache.data + b * maxT * KVC + g * hd;
      const float* V = vCache.data + b * maxT * KVC + g * hd;
      for (int64_t j = lo; j <= t; j++) {
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t k = 0; k < hd; k++) dot += qh[k] * K[j * KVC + k];
        s[j - lo] = dot;
      }
      float m;
      const float inv = 1.0f / softmax_row(s.data(), t + 1 - lo, 0, t + 1 - lo, scale, &m);
      float* o = out.data + b * C + h * hd;
      std::fill(o, o + hd, 0.0f);
      for (int64_t j = lo; j <= t; j++) axpy(o, s[j - lo] * inv, V + j * KVC, hd);
    }
  }
  return env.Undefined();
}

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, attentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, attentionBackward));
  exports.Set("attentionDecode", Napi::Function::New(env, attentionDecode));
}
