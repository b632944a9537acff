// kdForwardBackward, the native twin of src/tensor/kernels/kd_loss.ts (derivation in
// docs/kd-loss.md). Dimension legend: N = rows in the chunk, V = vocabulary size, k = topK.
// Fused logit distillation in place: losses[n] = KL(q || p) (reverse: KL(p || q)) with
// p = softmax(z / T) of the student row z and q = softmax(u / T) of the teacher row u, and
// z <- dscale * dKL/dz. Rows run in parallel; each row is a few vectorised passes over V with a
// branch-free expf and the sums (and the KL itself) kept in double. topK restricts both sides to
// the teacher's k largest logits (nth_element, ties to the lower id) and renormalises there.
#include "common.h"
#include "exp_nonpos.h"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

// below this many elements a parallel region costs more than it saves
static const int64_t PARALLEL_MIN = 1 << 16;

static float row_max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

// w[j] = e^((x_j - m) / T); returns the sum in double. Two loops: GCC vectorises the exp loop
// badly with a double reduction in it (see cross_entropy.cpp).
static double exp_shifted(float* w, const float* x, float m, float invT, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; j++) w[j] = kp::exp_nonpos((x[j] - m) * invT);
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; j++) sum += w[j];
  return sum;
}

// x when keep, else +0: a bit mask, because GCC turns `keep ? x : 0` around floating-point
// arithmetic into a scalar branchy loop (10x slower here)
static inline float keep_if(float x, bool keep) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u &= -(uint32_t)keep;
  std::memcpy(&x, &u, 4);
  return x;
}

// sum_j w_j (a_j - b_j) over the w_j > 0 (a zero weight contributes 0 even against an infinity)
static double weighted_diff(const float* w, const float* a, const float* b, int64_t n) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < n; j++) {
    const bool k = w[j] > 0.0f;
    acc += (double)w[j] * ((double)keep_if(a[j], k) - (double)keep_if(b[j], k));
  }
  return acc;
}

// KL between softmax(z/T) and softmax(u/T) over n entries; z <- dscale * dKL/dz. w is scratch[n].
//
// forward, KL(q || p) = sum_j q_j (log q_j - log p_j), log p_j = z_j/T - lseS:
//   KL = (1/T) sum_j q_j (u_j - z_j) - (lseT - lseS);   dKL/dz_j = (p_j - q_j) / T
// reverse, KL(p || q) = sum_j p_j r_j with r_j = (z_j - u_j)/T - (lseS - lseT):
//   dKL/dz_j = p_j (r_j - KL) / T
static double kl_row(float* z, const float* u, float* w, int64_t n, double T, bool reverse, double dscale) {
  const float invT = (float)(1.0 / T);
  const float ms = row_max(z, n), mt = row_max(u, n);
  if (!reverse) {
    const double sumT = exp_shifted(w, u, mt, invT, n);           // w = e^((u - mt)/T), q = w / sumT
    const double cross = weighted_diff(w, u, z, n);
    const double sumS = exp_shifted(z, z, ms, invT, n);           // z = e^((z - ms)/T), p = z / sumS
    const double lseS = (double)ms / T + std::log(sumS), lseT = (double)mt / T + std::log(sumT);
    const double kl = cross / sumT / T - (lseT - lseS);
    // p_j - q_j = (z_j - w_j * sumS/sumT) / sumS: written so that an identical teacher gives an
    // exact 0 even when the compiler fuses the multiply-add (sumS/sumT is then exactly 1)
    const float ratio = (float)(sumS / sumT), cs = (float)(dscale / T / sumS);
#pragma omp simd
    for (int64_t j = 0; j < n; j++) z[j] = (z[j] - w[j] * ratio) * cs;
    return kl;
  }
  const double sumT = exp_shifted(w, u, mt, invT, n);             // only the teacher's normaliser
  const double sumS = exp_shifted(w, z, ms, invT, n);             // w = e^((z - ms)/T), p = w / sumS
  const double lseS = (double)ms / T + std::log(sumS), lseT = (double)mt / T + std::log(sumT);
  const double dl = lseS - lseT;
  const double kl = weighted_diff(w, z, u, n) / sumS / T - dl;
  const double c = dl + kl, g = dscale / T / sumS, iT = 1.0 / T;
#pragma omp simd
  for (int64_t j = 0; j < n; j++) {
    const double r = ((double)z[j] - (double)u[j]) * iT - c;
    z[j] = keep_if((float)(g * (double)w[j] * r), w[j] > 0.0f);  // p_j = 0: no gradient
  }
  return kl;
}

// Per-thread scratch: sel[V] for the selection, then ids, z, u and w for the k kept entries.
struct Scratch {
  std::vector<float> sel, zk, uk, w;
  std::vector<int32_t> ids;
};

// the top-k path: gather the kept entries, run the dense row on them, scatter the gradient back
static double kl_row_topk(float* z, const float* u, Scratch& s, int64_t V, int64_t k, double T, bool reverse,
                          double dscale) {
  std::copy(u, u + V, s.sel.begin());
  std::nth_element(s.sel.begin(), s.sel.begin() + (V - k), s.sel.end());
  const float thr = s.sel[V - k];  // the k-th largest teacher logit
  int64_t need = k;
  for (int64_t j = 0; j < V; j++) need -= u[j] > thr;
  int64_t i = 0;
  for (int64_t j = 0; j < V; j++) {
    if (u[j] > thr || (u[j] == thr && need-- > 0)) {
      s.ids[i] = (int32_t)j; s.zk[i] = z[j]; s.uk[i] = u[j]; i++;
    }
  }
  const double kl = kl_row(s.zk.data(), s.uk.data(), s.w.data(), k, T, reverse, dscale);
  std::fill(z, z + V, 0.0f);
  for (int64_t j = 0; j < k; j++) z[s.ids[j]] = s.zk[j];
  return kl;
}

static float kd_row(float* z, const float* u, int32_t target, Scratch& s, int64_t V, int64_t k, double T,
                    bool reverse, double dscale) {
  if (target < 0) {  // ignored (-100): no loss, no gradient
    std::fill(z, z + V, 0.0f);
    return 0.0f;
  }
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (int64_t j = 0; j < V; j++) bad |= (z[j] != z[j]) | (u[j] != u[j]);
  if (bad) {
    std::fill(z, z + V, std::numeric_limits<float>::quiet_NaN());
    return std::numeric_limits<float>::quiet_NaN();
  }
  if (k == V) return (float)kl_row(z, u, s.w.data(), V, T, reverse, dscale);
  return (float)kl_row_topk(z, u, s, V, k, T, reverse, dscale);
}

static std::string num(double x) {
  std::ostringstream o;
  o << x;
  return o.str();
}

// kdForwardBackward(losses, logits, teacherLogits, targets, N, V, temperature, topK, reverse, dscale)
static Napi::Value kdForwardBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(N, 4); ARG_INT(V, 5);
  ENSURE_ARG(env, info[6].IsNumber(), "kdForwardBackward: argument temperature must be a number");
  const double T = kp::number(info, 6);
  ENSURE_ARG(env, T > 0 && std::isfinite(T),
             "kdForwardBackward: temperature must be a finite number > 0, got " + num(T));
  const double topK = info[7].IsNumber() ? kp::number(info, 7) : -1.0;
  ENSURE_ARG(env, topK >= 0 && std::floor(topK) == topK && std::isfinite(topK),
             "kdForwardBackward: topK must be an integer >= 0 (0 = full vocabulary), got " +
                 (info[7].IsNumber() ? num(topK) : std::string("a non-number")));
  ENSURE_ARG(env, info[8].IsBoolean(), "kdForwardBackward: argument reverse must be a boolean");
  const bool reverse = info[8].As<Napi::Boolean>().Value();
  ENSURE_ARG(env, info[9].IsNumber(), "kdForwardBackward: argument dscale must be a number");
  const double dscale = kp::number(info, 9);
  ARG_F32(losses, 0, N, false);
  ARG_F32(logits, 1, N * V, false);
  ARG_F32(teacherLogits, 2, N * V, false);
  ARG_I32(targets, 3, N);
  const int64_t k = topK == 0 || topK >= (double)V ? V : (int64_t)topK;
  float* lp = logits.data;
  const float* up = teacherLogits.data;
  float* lo = losses.data;
  const int32_t* tp = targets.data;
#pragma omp parallel if (N * V >= PARALLEL_MIN)
  {
    Scratch s;
    s.w.resize(k);
    if (k < V) { s.sel.resize(V); s.zk.resize(k); s.uk.resize(k); s.ids.resize(k); }
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) lo[n] = kd_row(lp + n * V, up + n * V, tp[n], s, V, k, T, reverse, dscale);
  }
  return env.Undefined();
}

void register_kd_loss(Napi::Env env, Napi::Object exports) {
  exports.Set("kdForwardBackward", Napi::Function::New(env, kdForwardBackward));
}
