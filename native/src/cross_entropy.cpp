// crossEntropyForwardBackward, the native twin of src/tensor/kernels/cross_entropy.ts.
// Dimension legend: N = rows in the chunk, V = vocabulary size (up to ~150k).
// Fused softmax cross-entropy in place: losses[n] = logsumexp(logits[n]) - logits[n, t] and
// logits[n] <- (softmax - onehot) * dscale. Rows run in parallel. The exponentials are
// computed once, by a branch-free expf that the compiler vectorises (glibc's expf is a scalar
// call and dominated the row at V = 49152), and the row sum is kept in double.
#include "common.h"
#include "exp_nonpos.h"
#include <cmath>
#include <cstring>
#include <limits>

// below this many elements a parallel region costs more than it saves (and decoding calls
// these kernels with a handful of rows)
static const int64_t PARALLEL_MIN = 1 << 16;

using kp::exp_nonpos;  // native/src/exp_nonpos.h

// in the forward pass this is:  loss = lse - x_t,  lse = log sum_j exp(x_j)
// so the gradient is:           dloss/dx_j = exp(x_j - lse) - [j == t] = softmax_j - onehot_j
// subtracting the row max m first keeps every exponential in (0, 1]; lse = m + log(sum).
static float ce_row(float* x, int32_t t, int64_t V, double dscale) {
  if (t < 0) {  // ignored (-100): no loss, no gradient
    std::fill(x, x + V, 0.0f);
    return 0.0f;
  }
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
  const float xt = x[t];
  // keep e^(x_j - m) in place: the gradient is e / sum. The double sum is a separate pass
  // because GCC vectorises the exp loop badly with a double reduction in it (20x slower).
#pragma omp simd
  for (int64_t j = 0; j < V; j++) x[j] = exp_nonpos(x[j] - m);
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < V; j++) sum += x[j];
  const double et = x[t];
  const float inv = (float)(dscale / sum);
#pragma omp simd
  for (int64_t j = 0; j < V; j++) x[j] *= inv;
  // subtract the onehot in double before rounding, so p_t - 1 keeps its low bits
  x[t] = (float)((et / sum - 1.0) * dscale);
  return (float)((double)m + std::log(sum) - (double)xt);
}

// crossEntropyForwardBackward(losses, logits, targets, N, V, dscale)
static Napi::Value crossEntropyForwardBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(N, 3); ARG_INT(V, 4);
  ENSURE_ARG(env, info[5].IsNumber(), "crossEntropyForwardBackward: argument dscale must be a number");
  const double dscale = kp::number(info, 5);
  ARG_F32(losses, 0, N, false);
  ARG_F32(logits, 1, N * V, false);
  ARG_I32(targets, 2, N);
  // checked up front: a bad target would read outside the row, and threads cannot throw
  for (int64_t n = 0; n < N; n++) {
    ENSURE_ARG(env, targets.data[n] < V,
               "crossEntropyForwardBackward: targets[" + std::to_string(n) + "] = " +
                   std::to_string(targets.data[n]) + " is out of range for V = " + std::to_string(V));
  }
  float* lp = logits.data;
  float* lo = losses.data;
  const int32_t* tp = targets.data;
#pragma omp parallel for schedule(static) if (N * V >= PARALLEL_MIN)
  for (int64_t n = 0; n < N; n++) lo[n] = ce_row(lp + n * V, tp[n], V, dscale);
  return env.Undefined();
}

void register_cross_entropy(Napi::Env env, Napi::Object exports) {
  exports.Set("crossEntropyForwardBackward", Napi::Function::New(env, crossEntropyForwardBackward));
}
