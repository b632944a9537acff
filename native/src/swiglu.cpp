// swigluForward / swigluBackward, the native twins of src/tensor/kernels/swiglu.ts.
// Dimension legend: N = token rows, F = MLP intermediate size. gateup[N,2F] holds [gate | up]
// per row; out[N,F] = silu(gate) * up. Rows run in parallel and the loops vectorise: the
// sigmoid uses a branch-free expf (glibc's expf is a scalar call that blocks vectorisation and
// measured ~20x slower per element than this one).
#include "common.h"
#include "exp_nonpos.h"
#include <cstring>

// below this many elements a parallel region costs more than it saves (and decoding calls
// these kernels with a handful of rows)
static const int64_t PARALLEL_MIN = 1 << 16;

using kp::exp_nonpos;  // native/src/exp_nonpos.h

// sigmoid(x) from e = e^-|x| in (0, 1], so the exponential never overflows:
// x >= 0: 1 / (1 + e^-x);  x < 0: e^x / (1 + e^x). Both branches are computed and selected.
static inline float sigmoid_f32(float x) {
  const float e = exp_nonpos(x < 0.0f ? x : -x);
  const float r = 1.0f / (1.0f + e);
  return x < 0.0f ? e * r : r;
}

// out[N,F] <- gateup[N,2F]
static void swiglu_forward(float* out, const float* gateup, int64_t N, int64_t F) {
#pragma omp parallel for schedule(static) if (N * F >= PARALLEL_MIN)
  for (int64_t n = 0; n < N; n++) {
    const float* gate = gateup + n * 2 * F;
    const float* up = gate + F;
    float* y = out + n * F;
#pragma omp simd
    for (int64_t i = 0; i < F; i++) y[i] = gate[i] * sigmoid_f32(gate[i]) * up[i];
  }
}

// in the forward pass this was:  y = g * s(g) * u,  s = sigmoid, s' = s * (1 - s)
// so now we have:
//   dg = dy * u * s * (1 + g * (1 - s))
//   du = dy * g * s
static void swiglu_backward(float* dgateup, const float* dout, const float* gateup, int64_t N, int64_t F) {
#pragma omp parallel for schedule(static) if (N * F >= PARALLEL_MIN)
  for (int64_t n = 0; n < N; n++) {
    const float* gate = gateup + n * 2 * F;
    const float* up = gate + F;
    const float* dy = dout + n * F;
    float* dgate = dgateup + n * 2 * F;
    float* dup = dgate + F;
#pragma omp simd
    for (int64_t i = 0; i < F; i++) {
      const float g = gate[i], s = sigmoid_f32(g);
      dgate[i] += dy[i] * up[i] * s * (1.0f + g * (1.0f - s));
      dup[i] += dy[i] * g * s;
    }
  }
}

// swigluForward(out, gateup, N, F)
static Napi::Value swigluForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(N, 2); ARG_INT(F, 3);
  ARG_F32(out, 0, N * F, false);
  ARG_F32(gateup, 1, N * 2 * F, false);
  swiglu_forward(out.data, gateup.data, N, F);
  return env.Undefined();
}

// swigluBackward(dgateup, dout, gateup, N, F)
static Napi::Value swigluBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(N, 3); ARG_INT(F, 4);
  ARG_F32(dgateup, 0, N * 2 * F, false);
  ARG_F32(dout, 1, N * F, false);
  ARG_F32(gateup, 2, N * 2 * F, false);
  swiglu_backward(dgateup.data, dout.data, gateup.data, N, F);
  return env.Undefined();
}

void register_swiglu(Napi::Env env, Napi::Object exports) {
  exports.Set("swigluForward", Napi::Function::New(env, swigluForward));
  exports.Set("swigluBackward", Napi::Function::New(env, swigluBackward));
}
