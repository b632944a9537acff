// adamwUpdateBf16 and adamwUpdateInt8: AdamW with 16-bit or 8-bit block-quantized moments, the
// native twins of src/tensor/kernels/adamw_lean.ts (read its header for the formats and codes).
// n = number of parameters in the views. The arithmetic is the reference's, operation for
// operation, in double: no pow (powers by squaring), no fused multiply-adds (fp-contract off
// below), the code tables built from the same divisions. So the stored codes and the updated
// parameters equal the reference's bit for bit, which the parity test checks.
#pragma GCC optimize("fp-contract=off")
#include "common.h"
#include <cmath>
#include <cstring>

static const int64_t QUANT_BLOCK = 256;
// below this many elements a parallel region costs more than it saves
static const int64_t PARALLEL_MIN = 1 << 16;

struct Code {
  double v[256];
  int top;
};

// the `count` largest of 2^-e (P + f) / (2P - 1), ascending, v[0] = 0 (buildCode in the reference)
static Code build_code(int mantissa_bits, int count) {
  Code c;
  const int P = 1 << mantissa_bits, top = 2 * P - 1;
  c.top = count;
  c.v[0] = 0.0;
  for (int i = 0; i < count; i++) {
    const int e = i / P, f = P - 1 - (i % P);
    c.v[count - i] = std::ldexp((double)(P + f) / (double)top, -e);
  }
  return c;
}

static const Code M_CODE = build_code(3, 127);
static const Code V_CODE = build_code(4, 255);

static inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  return x ^ (x >> 16);
}

static inline double rounding_noise(uint32_t salt, uint32_t i, int which) {
  const uint32_t h = mix32((salt ^ (which ? 0x9e3779b9u : 0u)) + mix32(i));
  return (double)(h >> 8) / 16777216.0;
}

static inline int encode_magnitude(const Code& code, double x, double u, bool keep_positive) {
  if (!(x > 0)) return 0;
  if (x >= 1) return code.top;
  int lo = 0, hi = code.top;  // code[lo] <= x < code[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) >> 1;
    if (code.v[mid] <= x) lo = mid; else hi = mid;
  }
  const int k = u < (x - code.v[lo]) / (code.v[hi] - code.v[lo]) ? hi : lo;
  return keep_positive && k == 0 ? 1 : k;
}

static double pow_int(double b, int64_t n) {
  double r = 1.0, x = b;
  while (n > 0) {
    if (n & 1) r *= x;
    x *= x;
    n /= 2;
  }
  return r;
}

static inline float bf16_value(uint16_t h) {
  const uint32_t b = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

static inline uint16_t bf16_of(double x) {
  const float f = (float)x;
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

struct Hyper { double decay, stepSize, bc2Sqrt, beta1, beta2, eps; };

static Hyper hyper(double lr, double beta1, double beta2, double eps, double wd, int64_t step) {
  return { 1.0 - lr * wd, lr / (1.0 - pow_int(beta1, step)), std::sqrt(1.0 - pow_int(beta2, step)), beta1, beta2, eps };
}

static void adamw_update_bf16(float* params, const float* grads, uint16_t* m, uint16_t* v, int64_t n, const Hyper& h) {
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    const double g = grads[i];
    const double mi = h.beta1 * (double)bf16_value(m[i]) + (1.0 - h.beta1) * g;
    const double vi = h.beta2 * (double)bf16_value(v[i]) + (1.0 - h.beta2) * g * g;
    m[i] = bf16_of(mi);
    v[i] = bf16_of(vi);
    params[i] = (float)(params[i] * h.decay - h.stepSize * mi / (std::sqrt(vi) / h.bc2Sqrt + h.eps));
  }
}

// one block of up to QUANT_BLOCK values starting at i0 (its scales at index j)
static void update_block_int8(float* params, const float* grads, uint8_t* mq, float* mScale, uint8_t* vq, float* vScale,
                              int64_t i0, int64_t count, int64_t j, const Hyper& h, uint32_t salt) {
  double mNew[QUANT_BLOCK], sNew[QUANT_BLOCK];
  double mMax = 0, sMax = 0;
  for (int64_t k = 0; k < count; k++) {
    const int64_t i = i0 + k;
    const double g = grads[i];
    const double mOld = (double)mScale[j] * M_CODE.v[mq[i] & 0x7f] * ((mq[i] & 0x80) ? -1.0 : 1.0);
    const double sOld = (double)vScale[j] * V_CODE.v[vq[i]];
    const double mi = h.beta1 * mOld + (1.0 - h.beta1) * g;
    const double vi = h.beta2 * (sOld * sOld) + (1.0 - h.beta2) * g * g;
    params[i] = (float)(params[i] * h.decay - h.stepSize * mi / (std::sqrt(vi) / h.bc2Sqrt + h.eps));
    mNew[k] = mi;
    sNew[k] = std::sqrt(vi);
    if (std::fabs(mi) > mMax) mMax = std::fabs(mi);
    if (sNew[k] > sMax) sMax = sNew[k];
  }
  mScale[j] = (float)mMax;  // the codes are relative to the stored float32 scale
  vScale[j] = (float)sMax;
  const double ms = mScale[j], vs = vScale[j];
  for (int64_t k = 0; k < count; k++) {
    const int64_t i = i0 + k;
    const int mk = ms > 0 ? encode_magnitude(M_CODE, std::fabs(mNew[k]) / ms, rounding_noise(salt, (uint32_t)i, 0), false) : 0;
    mq[i] = (uint8_t)(mk == 0 ? 0 : (mk | (mNew[k] < 0 ? 0x80 : 0)));
    vq[i] = (uint8_t)(vs > 0 ? encode_magnitude(V_CODE, sNew[k] / vs, rounding_noise(salt, (uint32_t)i, 1), true) : 0);
  }
}

static void adamw_update_int8(float* params, const float* grads, uint8_t* mq, float* mScale, uint8_t* vq, float* vScale,
                              int64_t n, const Hyper& h, uint32_t salt) {
  const int64_t blocks = (n + QUANT_BLOCK - 1) / QUANT_BLOCK;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
  for (int64_t j = 0; j < blocks; j++) {
    const int64_t i0 = j * QUANT_BLOCK;
    update_block_int8(params, grads, mq, mScale, vq, vScale, i0, std::min(QUANT_BLOCK, n - i0), j, h, salt);
  }
}

#define ARG_U8(var, i, need)                                                                  \
  kp::View<uint8_t> var = kp::typed<uint8_t>(info, i, napi_uint8_array);                      \
  ENSURE_ARG(env, var.ok, std::string(__func__) + ": argument " #var " must be a Uint8Array"); \
  ENSURE_ARG(env, var.length >= (size_t)(need),                                               \
             std::string(__func__) + ": " #var " has " + std::to_string(var.length) +         \
                 " elements, needs " + std::to_string((size_t)(need)))

// the hyperparameters at arguments first..first+4 (lr, beta1, beta2, eps, weightDecay), then step
#define ARG_HYPER(first)                                                                                 \
  for (size_t a = first; a < first + 5; a++)                                                             \
    ENSURE_ARG(env, info[a].IsNumber(), std::string(__func__) + ": argument " + std::to_string(a) +       \
                                            " (lr, beta1, beta2, eps, weightDecay) must be a number");   \
  ARG_INT(step, first + 5);                                                                              \
  ENSURE_ARG(env, step >= 1, std::string(__func__) + ": step must be >= 1 (the count after this update), got " + \
                                 std::to_string(step));                                                  \
  const Hyper h = hyper(kp::number(info, first), kp::number(info, first + 1), kp::number(info, first + 2),   \
                        kp::number(info, first + 3), kp::number(info, first + 4), step)

// adamwUpdateBf16(params, grads, m, v, n, lr, beta1, beta2, eps, weightDecay, step)
static Napi::Value adamwUpdateBf16(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(n, 4);
  ARG_HYPER(5);
  ARG_F32(params, 0, n, false);
  ARG_F32(grads, 1, n, false);
  ARG_U16(m, 2, n);
  ARG_U16(v, 3, n);
  adamw_update_bf16(params.data, grads.data, m.data, v.data, n, h);
  return env.Undefined();
}

// adamwUpdateInt8(params, grads, mq, mScale, vq, vScale, n, lr, beta1, beta2, eps, weightDecay, step, salt)
static Napi::Value adamwUpdateInt8(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(n, 6);
  ARG_HYPER(7);
  ENSURE_ARG(env, info[13].IsNumber(), "adamwUpdateInt8: argument 13 (salt) must be a number");
  const uint32_t salt = (uint32_t)(uint64_t)kp::integer(info, 13);
  const int64_t blocks = (n + QUANT_BLOCK - 1) / QUANT_BLOCK;
  ARG_F32(params, 0, n, false);
  ARG_F32(grads, 1, n, false);
  ARG_U8(mq, 2, n);
  ARG_F32(mScale, 3, blocks, false);
  ARG_U8(vq, 4, n);
  ARG_F32(vScale, 5, blocks, false);
  adamw_update_int8(params.data, grads.data, mq.data, mScale.data, vq.data, vScale.data, n, h, salt);
  return env.Undefined();
}

void register_adamw_lean(Napi::Env env, Napi::Object exports) {
  exports.Set("adamwUpdateBf16", Napi::Function::New(env, adamwUpdateBf16));
  exports.Set("adamwUpdateInt8", Napi::Function::New(env, adamwUpdateInt8));
}
