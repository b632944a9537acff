// rmsnormForward / rmsnormBackward, the native twins of src/tensor/kernels/rmsnorm.ts.
// Dimension legend: N = token rows, C = channels. out = inp * rstd * weight with
// rstd = 1/sqrt(mean(inp^2) + eps) (HF LlamaRMSNorm in float32). Rows run in parallel; the
// per-row sums are kept in double so long rows do not lose their small entries.
#include "common.h"
#include <cmath>

// below this many elements a parallel region costs more than it saves (and decoding calls
// these kernels with a handful of rows)
static const int64_t PARALLEL_MIN = 1 << 16;

// out[N,C], rstd[N] (saved for backward) <- inp[N,C], weight[C]
static void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight,
                            int64_t N, int64_t C, double eps) {
#pragma omp parallel for schedule(static) if (N * C >= PARALLEL_MIN)
  for (int64_t n = 0; n < N; n++) {
    const float* x = inp + n * C;
    float* y = out + n * C;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; c++) ss += (double)x[c] * x[c];
    float r = (float)(1.0 / std::sqrt(ss / (double)C + eps));
    rstd[n] = r;
    // HF's order: (x * rstd) rounded to float, then times the weight
    for (int64_t c = 0; c < C; c++) y[c] = (x[c] * r) * weight[c];
  }
}

// in the forward pass this was:  y_i = x_i * r * w_i,  r = (mean_j x_j^2 + eps)^(-1/2)
// so dr/dx_j = -r^3 x_j / C, and with g_i = dy_i * w_i:
//   dx_j = r * (g_j - x_j * r^2 * (sum_i g_i x_i) / C)     (rows in parallel)
//   dw_i = sum_n dy_i * x_i * r                              (column blocks in parallel)
// dweight is summed per column over all rows in double, then added once, so no two threads
// write the same element and the result does not depend on the thread count.
static void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                             const float* weight, const float* rstd, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C >= PARALLEL_MIN)
  for (int64_t n = 0; n < N; n++) {
    const float* x = inp + n * C;
    const float* dy = dout + n * C;
    float* dx = dinp + n * C;
    double gx = 0.0;  // sum_i dy_i * w_i * x_i
#pragma omp simd reduction(+ : gx)
    for (int64_t c = 0; c < C; c++) gx += (double)(dy[c] * weight[c]) * x[c];
    const float r = rstd[n];
    const float k = (float)((double)r * r * gx / (double)C);
    for (int64_t c = 0; c < C; c++) dx[c] += r * (dy[c] * weight[c] - x[c] * k);
  }
  const int64_t BLOCK = 64;  // columns per task: 64 doubles of accumulator stay in registers/L1
  const int64_t nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (N * C >= PARALLEL_MIN)
  for (int64_t b = 0; b < nblocks; b++) {
    const int64_t c0 = b * BLOCK, w = std::min(BLOCK, C - c0);
    double acc[BLOCK] = {0};
    for (int64_t n = 0; n < N; n++) {
      const float* x = inp + n * C + c0;
      const float* dy = dout + n * C + c0;
      const double r = rstd[n];
      for (int64_t j = 0; j < w; j++) acc[j] += (double)dy[j] * x[j] * r;
    }
    for (int64_t j = 0; j < w; j++) dweight[c0 + j] += (float)acc[j];
  }
}

// rmsnormForward(out, rstd, inp, weight, N, C, eps)
static Napi::Value rmsnormForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(N, 4); ARG_INT(C, 5);
  ENSURE_ARG(env, info[6].IsNumber(), "rmsnormForward: argument eps must be a number");
  const double eps = kp::number(info, 6);
  ARG_F32(out, 0, N * C, false);
  ARG_F32(rstd, 1, N, false);
  ARG_F32(inp, 2, N * C, false);
  ARG_F32(weight, 3, C, false);
  rmsnorm_forward(out.data, rstd.data, inp.data, weight.data, N, C, eps);
  return env.Undefined();
}

// rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, N, C)
static Napi::Value rmsnormBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(N, 6); ARG_INT(C, 7);
  ARG_F32(dinp, 0, N * C, false);
  ARG_F32(dweight, 1, C, false);
  ARG_F32(dout, 2, N * C, false);
  ARG_F32(inp, 3, N * C, false);
  ARG_F32(weight, 4, C, false);
  ARG_F32(rstd, 5, N, false);
  rmsnorm_backward(dinp.data, dweight.data, dout.data, inp.data, weight.data, rstd.data, N, C);
  return env.Undefined();
}

void register_rmsnorm(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsnormForward", Napi::Function::New(env, rmsnormForward));
  exports.Set("rmsnormBackward", Napi::Function::New(env, rmsnormBackward));
}
