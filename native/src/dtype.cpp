// bf16ToF32, f16ToF32, f32ToBf16, f32ToF16: the native twins of src/tensor/kernels/dtype.ts.
// n = number of elements; 16-bit values are raw bit patterns (Uint16Array).
//   bf16 = the top half of a float32; f16 = 1 sign, 5 exponent (bias 15), 10 mantissa bits.
// Narrowing rounds to nearest, ties to even; NaN stays a quiet NaN, Inf stays Inf, |x| >= 65520
// becomes Inf in f16, f16 subnormals are exact. f16 uses the F16C instructions (vcvtph2ps /
// vcvtps2ph, which implement exactly these IEEE rules) 8 at a time when the CPU has them, and
// the same bit arithmetic as the reference otherwise and for the tail.
#include "common.h"
#include <cstring>
#if defined(__F16C__)
#include <immintrin.h>
#endif

// big conversions (checkpoint loading) are split across threads; small ones are not worth it
static const int64_t PARALLEL_MIN = 1 << 16;

static inline uint32_t bits_of(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static inline float float_of(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// drops `shift` low bits of mant, rounding to nearest, ties to even (1 <= shift <= 24)
static inline uint32_t round_shift(uint32_t mant, int shift) {
  const uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
  return (rem > half || (rem == half && (q & 1))) ? q + 1 : q;
}

static inline uint16_t f32_to_f16_scalar(float f) {
  const uint32_t x = bits_of(f), sign = (x >> 16) & 0x8000, abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((abs >> 13) & 0x3ff));  // quiet NaN
  if (abs >= 0x477ff000) return (uint16_t)(sign | 0x7c00);  // >= 65520 (and Inf) -> Inf
  if (abs >= 0x38800000) return (uint16_t)(sign | round_shift(abs - (112u << 23), 13));  // normal
  const int e = (int)(abs >> 23);
  if (e < 102) return (uint16_t)sign;  // below 2^-25: zero
  return (uint16_t)(sign | round_shift((abs & 0x7fffff) | 0x800000, 126 - e));  // subnormal
}

static inline float f16_to_f32_scalar(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f) return float_of(sign | 0x7f800000 | (mant << 13) | (mant ? 0x400000u : 0));  // Inf; NaN quieted
  if (exp != 0) return float_of(sign | ((exp + 112) << 23) | (mant << 13));
  return float_of(sign) + (h & 0x8000 ? -1.0f : 1.0f) * (float)mant * 5.9604644775390625e-8f;  // mant * 2^-24, exact
}

static void f16_to_f32(float* out, const uint16_t* inp, int64_t n) {
  const int64_t nv = n / 8 * 8;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
  for (int64_t i = 0; i < nv; i += 8) {
#if defined(__F16C__)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(inp + i))));
#else
    for (int64_t k = i; k < i + 8; k++) out[k] = f16_to_f32_scalar(inp[k]);
#endif
  }
  for (int64_t i = nv; i < n; i++) out[i] = f16_to_f32_scalar(inp[i]);
}

static void f32_to_f16(uint16_t* out, const float* inp, int64_t n) {
  const int64_t nv = n / 8 * 8;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
  for (int64_t i = 0; i < nv; i += 8) {
#if defined(__F16C__)
    _mm_storeu_si128((__m128i*)(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(inp + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#else
    for (int64_t k = i; k < i + 8; k++) out[k] = f32_to_f16_scalar(inp[k]);
#endif
  }
  for (int64_t i = nv; i < n; i++) out[i] = f32_to_f16_scalar(inp[i]);
}

// bf16 is the top half of a float32: widening is a shift, narrowing adds 0x7fff plus the lowest
// kept bit (round to nearest even; a carry into the exponent is correct, up to Inf). A NaN gets
// its quiet bit set so a payload only in the dropped bits cannot turn into Inf.
static void bf16_to_f32(float* out, const uint16_t* inp, int64_t n) {
  uint32_t* o = reinterpret_cast<uint32_t*>(out);
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) o[i] = (uint32_t)inp[i] << 16;
}

static void f32_to_bf16(uint16_t* out, const float* inp, int64_t n) {
  const uint32_t* x = reinterpret_cast<const uint32_t*>(inp);
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    const uint32_t b = x[i];
    const uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    out[i] = (uint16_t)((b & 0x7fffffffu) > 0x7f800000u ? (b >> 16) | 0x40u : rounded);
  }
}

// <name>(out, inp, n): the four bindings share one shape
#define DTYPE_BINDING(name, OUT_ARG, IN_ARG, fn)             \
  static Napi::Value name(const Napi::CallbackInfo& info) {  \
    Napi::Env env = info.Env();                              \
    ARG_INT(n, 2);                                           \
    OUT_ARG(out, 0, n);                                      \
    IN_ARG(inp, 1, n);                                       \
    fn(out.data, inp.data, n);                               \
    return env.Undefined();                                  \
  }
#define F32_ARG(var, i, need) ARG_F32(var, i, need, false)
DTYPE_BINDING(bf16ToF32, F32_ARG, ARG_U16, bf16_to_f32)
DTYPE_BINDING(f16ToF32, F32_ARG, ARG_U16, f16_to_f32)
DTYPE_BINDING(f32ToBf16, ARG_U16, F32_ARG, f32_to_bf16)
DTYPE_BINDING(f32ToF16, ARG_U16, F32_ARG, f32_to_f16)

void register_dtype(Napi::Env env, Napi::Object exports) {
  exports.Set("bf16ToF32", Napi::Function::New(env, bf16ToF32));
  exports.Set("f16ToF32", Napi::Function::New(env, f16ToF32));
  exports.Set("f32ToBf16", Napi::Function::New(env, f32ToBf16));
  exports.Set("f32ToF16", Napi::Function::New(env, f32ToF16));
}
