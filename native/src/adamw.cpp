// adamwUpdate and sumSquares, the native twins of src/tensor/kernels/adamw.ts.
// n = number of parameters in the flat buffer. Both are memory-bound streams over n floats,
// split across threads; the arithmetic is done in double (free next to the memory traffic) so
// each stored value is rounded once, as in the reference.
#include "common.h"
#include <algorithm>
#include <cmath>
#include <vector>

// below this many elements a parallel region costs more than it saves (and decoding calls
// these kernels with a handful of rows)
static const int64_t PARALLEL_MIN = 1 << 16;

// torch.optim.AdamW (amsgrad off) in place, in PyTorch's order of operations:
//   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
//   p -= (lr / (1-b1^step)) * m / (sqrt(v) / sqrt(1-b2^step) + eps)
static void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, double lr,
                         double beta1, double beta2, double eps, double wd, int64_t step) {
  const double decay = 1.0 - lr * wd;
  const double stepSize = lr / (1.0 - std::pow(beta1, (double)step));
  const double bc2Sqrt = std::sqrt(1.0 - std::pow(beta2, (double)step));
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    const double g = grads[i];
    const double mi = beta1 * m[i] + (1.0 - beta1) * g;
    const double vi = beta2 * v[i] + (1.0 - beta2) * g * g;
    m[i] = (float)mi;
    v[i] = (float)vi;
    params[i] = (float)(params[i] * decay - stepSize * mi / (std::sqrt(vi) / bc2Sqrt + eps));
  }
}

// adamwUpdate(params, grads, m, v, n, lr, beta1, beta2, eps, weightDecay, step)
static Napi::Value adamwUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(n, 4);
  for (size_t i = 5; i <= 9; i++)
    ENSURE_ARG(env, info[i].IsNumber(),
               "adamwUpdate: argument " + std::to_string(i) + " (lr, beta1, beta2, eps, weightDecay) must be a number");
  ARG_INT(step, 10);
  ENSURE_ARG(env, step >= 1, "adamwUpdate: step must be >= 1 (the count after this update), got " + std::to_string(step));
  ARG_F32(params, 0, n, false);
  ARG_F32(grads, 1, n, false);
  ARG_F32(m, 2, n, false);
  ARG_F32(v, 3, n, false);
  adamw_update(params.data, grads.data, m.data, v.data, n, kp::number(info, 5), kp::number(info, 6),
               kp::number(info, 7), kp::number(info, 8), kp::number(info, 9), step);
  return env.Undefined();
}

// sumSquares(x, n): sum of x[i]^2 in double (the global gradient norm for clipping). The sum
// is taken over fixed blocks of SUMSQ_BLOCK elements, whose partial sums are then added in block
// order on one thread: the result is the same for any thread count (an OpenMP reduction adds
// per-thread partials, so its rounding changed with OMP_NUM_THREADS and with it the clipping).
static constexpr int64_t SUMSQ_BLOCK = 1 << 14;

static Napi::Value sumSquares(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(n, 1);
  ARG_F32(x, 0, n, false);
  const float* p = x.data;
  const int64_t nb = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
  std::vector<double> part(nb, 0.0);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
  for (int64_t b = 0; b < nb; b++) {
    const int64_t end = std::min(n, (b + 1) * SUMSQ_BLOCK);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b * SUMSQ_BLOCK; i < end; i++) s += (double)p[i] * p[i];
    part[b] = s;
  }
  double s = 0.0;
  for (int64_t b = 0; b < nb; b++) s += part[b];
  return Napi::Number::New(env, s);
}

void register_adamw(Napi::Env env, Napi::Object exports) {
  exports.Set("adamwUpdate", Napi::Function::New(env, adamwUpdate));
  exports.Set("sumSquares", Napi::Function::New(env, sumSquares));
}
