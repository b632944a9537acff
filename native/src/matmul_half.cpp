// matmulForwardHalf: out[N,OC] = inp[N,C] @ widen(weight[OC,C])^T (+ bias), the weight held as
// 16-bit bit patterns (bf16, or f16 when the last argument is true) and widened to float32 inside
// the kernel, so a frozen model keeps its checkpoint's 2 bytes per weight in memory and decode
// reads half the bytes of float32. The arithmetic is the float32 matmul on the widened weight:
// the result equals matmulForward(out, inp, widen(weight), ...) up to summation order.
//
// Two paths:
//   - few rows (N <= GEMV_MAX_N, e.g. decode): a GEMV that streams each weight row once, both
//     cores splitting the output channels, widening 8 values per AVX2 step into FMA accumulators;
//   - many rows (prefill, eval, a teacher's forward): tiles of TILE_FLOATS widened weights in one
//     scratch buffer (kept between calls: no allocation or page faults per call), each tile a multi-threaded OpenBLAS sgemm (the widening costs O(OC*C), the
//     GEMM O(N*OC*C), so it is amortised as soon as N is a few dozen rows).
// Dimension legend: N = rows, C = input channels, OC = output channels.
#include "common.h"
#include <cblas.h>
#include <cstring>
#include <vector>
#include <algorithm>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KP_AVX2 1
#endif

static const int64_t GEMV_MAX_N = 8;
static const int64_t TILE_FLOATS = 1 << 22;  // 16 MiB of widened weights per sgemm

static inline float bf16_scalar(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; std::memcpy(&f, &u, 4); return f; }
static inline float f16_scalar(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0x1f) u = sign | 0x7f800000 | (mant << 13) | (mant ? 0x400000u : 0);
  else if (exp != 0) u = sign | ((exp + 112) << 23) | (mant << 13);
  else { float f = (float)mant * 5.9604644775390625e-8f; return (h & 0x8000) ? -f : f; }
  float f; std::memcpy(&f, &u, 4); return f;
}
static inline float widen(uint16_t h, bool f16) { return f16 ? f16_scalar(h) : bf16_scalar(h); }

#ifdef KP_AVX2
static inline __m256 widen8(const uint16_t* p, bool f16) {
  const __m128i h = _mm_loadu_si128((const __m128i*)p);
  if (f16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

// out[n, o] (+)= dot(inp[n], widen(w[o])) for every n < N <= GEMV_MAX_N; one pass over each row
static void gemv_rows(float* out, const float* inp, const uint16_t* w, const float* bias, int64_t N, int64_t C,
                      int64_t OC, bool accumulate, bool f16) {
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < OC; o++) {
    const uint16_t* wr = w + o * C;
    float acc[GEMV_MAX_N];
    int64_t c = 0;
#ifdef KP_AVX2
    __m256 va[GEMV_MAX_N];
    for (int64_t n = 0; n < N; n++) va[n] = _mm256_setzero_ps();
    for (; c + 8 <= C; c += 8) {
      const __m256 wv = widen8(wr + c, f16);
      for (int64_t n = 0; n < N; n++) va[n] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(inp + n * C + c), va[n]);
    }
    for (int64_t n = 0; n < N; n++) acc[n] = hsum(va[n]);
#else
    for (int64_t n = 0; n < N; n++) acc[n] = 0.0f;
#endif
    for (; c < C; c++) {
      const float wv = widen(wr[c], f16);
      for (int64_t n = 0; n < N; n++) acc[n] += wv * inp[n * C + c];
    }
    for (int64_t n = 0; n < N; n++) {
      const float b = bias ? bias[o] : 0.0f;
      float* dst = out + n * OC + o;
      *dst = accumulate ? *dst + acc[n] + b : acc[n] + b;
    }
  }
}

static void widen_rows(float* dst, const uint16_t* src, int64_t n, bool f16) {
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t i0 = 0; i0 < n; i0 += 4096) {
    const int64_t i1 = std::min(n, i0 + 4096);
    int64_t i = i0;
#ifdef KP_AVX2
    for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(dst + i, widen8(src + i, f16));
#endif
    for (; i < i1; i++) dst[i] = widen(src[i], f16);
  }
}

// tiles of rows widened into scratch, each an sgemm into out's matching columns
static void gemm_tiles(float* out, const float* inp, const uint16_t* w, const float* bias, int64_t N, int64_t C,
                       int64_t OC, bool accumulate, bool f16) {
  if (bias) {
    for (int64_t n = 0; n < N; n++) {
      float* row = out + n * OC;
      if (accumulate) for (int64_t o = 0; o < OC; o++) row[o] += bias[o];
      else std::copy(bias, bias + OC, row);
    }
  }
  const float beta = (bias || accumulate) ? 1.0f : 0.0f;
  const int64_t rows = std::max<int64_t>(16, std::min<int64_t>(OC, TILE_FLOATS / std::max<int64_t>(C, 1)));
  // kernels are called from the JS thread only, so one buffer serves every call
  static std::vector<float> scratch;
  if (scratch.size() < (size_t)(rows * C)) scratch.resize((size_t)(rows * C));
  for (int64_t o0 = 0; o0 < OC; o0 += rows) {
    const int64_t r = std::min(rows, OC - o0);
    widen_rows(scratch.data(), w + o0 * C, r * C, f16);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)r, (int)C, 1.0f, inp, (int)C,
                scratch.data(), (int)C, beta, out + o0, (int)OC);
  }
}

static Napi::Value matmulForwardHalf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(N, 4); ARG_INT(C, 5); ARG_INT(OC, 6);
  const bool accumulate = info.Length() > 7 && info[7].ToBoolean();
  const bool f16 = info.Length() > 8 && info[8].ToBoolean();
  ARG_F32(out, 0, N * OC, false);
  ARG_F32(inp, 1, N * C, false);
  ARG_U16(weight, 2, OC * C);
  ARG_F32(bias, 3, OC, true);
  if (N == 0 || OC == 0) return env.Undefined();
  if (N <= GEMV_MAX_N) gemv_rows(out.data, inp.data, weight.data, bias.data, N, C, OC, accumulate, f16);
  else gemm_tiles(out.data, inp.data, weight.data, bias.data, N, C, OC, accumulate, f16);
  return env.Undefined();
}

void register_matmul_half(Napi::Env env, Napi::Object exports) {
  exports.Set("matmulForwardHalf", Napi::Function::New(env, matmulForwardHalf));
}
