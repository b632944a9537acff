// Rotary position embedding, in place, forward and backward (the transpose rotation).
// Same semantics and argument order as src/tensor/kernels/rope.ts (the reference):
// HF rotate_half convention, x1 = x[:hd/2], x2 = x[hd/2:] of every rotated head.
// Dimension legend: N = token rows, nHeads = heads rotated per row, hd = head_dim (even),
// half = hd/2, stride = floats per row (>= nHeads*hd; the fused q|k|v row rotates only q and k).
// cos/sin (maxPos, half) are the caller's tables; every pos[n] is checked against them.
#include "common.h"
#include <string>

// sign = +1: y1 = x1*c - x2*s, y2 = x2*c + x1*s   (forward rotation R)
// sign = -1: y1 = x1*c + x2*s, y2 = x2*c - x1*s   (R^T, the backward pass)
static void rope_apply(float* x, const int32_t* pos, const float* cos, const float* sin,
                       int64_t N, int64_t nHeads, int64_t hd, int64_t stride, float sign) {
  const int64_t half = hd / 2;
#pragma omp parallel for schedule(static) if (N * nHeads * hd > (1 << 15))
  for (int64_t n = 0; n < N; n++) {
    const float* c = cos + (int64_t)pos[n] * half;
    const float* s = sin + (int64_t)pos[n] * half;
    for (int64_t h = 0; h < nHeads; h++) {
      float* x1 = x + n * stride + h * hd;
      float* x2 = x1 + half;
#pragma omp simd
      for (int64_t i = 0; i < half; i++) {
        const float a = x1[i], b = x2[i], ss = sign * s[i];
        x1[i] = a * c[i] - b * ss;
        x2[i] = b * c[i] + a * ss;
      }
    }
  }
}

// Shared argument checks of ropeForward/ropeBackward; `fn` names the kernel in the messages.
#define ROPE_ARGS(fn)                                                                              \
  ARG_INT(N, 4); ARG_INT(nHeads, 5); ARG_INT(hd, 6); ARG_INT(stride, 7);                           \
  ENSURE_ARG(env, hd % 2 == 0, fn ": rotate_half needs an even head_dim, got hd=" + std::to_string(hd)); \
  ENSURE_ARG(env, stride >= nHeads * hd, fn ": stride must be >= nHeads*hd, got stride=" +         \
             std::to_string(stride) + ", nHeads*hd=" + std::to_string(nHeads * hd));               \
  ARG_F32(x, 0, N == 0 ? 0 : (N - 1) * stride + nHeads * hd, false);                               \
  ARG_I32(pos, 1, N);                                                                              \
  ARG_F32(cos, 2, 0, false);                                                                       \
  ARG_F32(sin, 3, cos.length, false);                                                              \
  for (int64_t n = 0; n < N; n++) {                                                                \
    const int64_t p = pos.data[n];                                                                 \
    ENSURE_ARG(env, p >= 0 && (p + 1) * (hd / 2) <= (int64_t)cos.length,                           \
               fn ": pos[" + std::to_string(n) + "]=" + std::to_string(p) +                        \
                   " is outside the cos/sin tables (" + std::to_string(cos.length) + " elements)"); \
  }

static Napi::Value ropeForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ROPE_ARGS("ropeForward");
  rope_apply(x.data, pos.data, cos.data, sin.data, N, nHeads, hd, stride, 1.0f);
  return env.Undefined();
}

// in the forward pass this was y = R x, so now dx = R^T dy (in place)
static Napi::Value ropeBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ROPE_ARGS("ropeBackward");
  rope_apply(x.data, pos.data, cos.data, sin.data, N, nHeads, hd, stride, -1.0f);
  return env.Undefined();
}

void register_rope(Napi::Env env, Napi::Object exports) {
  exports.Set("ropeForward", Napi::Function::New(env, ropeForward));
  exports.Set("ropeBackward", Napi::Function::New(env, ropeBackward));
}
