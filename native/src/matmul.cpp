// matmulForward / matmulBackward through OpenBLAS sgemm, plus a raw sgemm for callers that
// need other layouts (the chunked lm_head, benchmarks).
// Dimension legend: N = rows, C = input channels, OC = output channels.
#include "common.h"
#include <cblas.h>

// out[N,OC] = inp[N,C] @ weight[OC,C]^T (+ bias); with accumulate (arg 7) out += ... (residuals)
static Napi::Value matmulForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool accumulate = info.Length() > 7 && info[7].ToBoolean();
  ARG_INT(N, 4); ARG_INT(C, 5); ARG_INT(OC, 6);
  ARG_F32(out, 0, N * OC, false);
  ARG_F32(inp, 1, N * C, false);
  ARG_F32(weight, 2, OC * C, false);
  ARG_F32(bias, 3, OC, true);
  if (N == 0 || OC == 0) return env.Undefined();
  if (bias.data) {
    for (int64_t n = 0; n < N; n++) {
      float* row = out.data + n * OC;
      if (accumulate) for (int64_t o = 0; o < OC; o++) row[o] += bias.data[o];
      else std::copy(bias.data, bias.data + OC, row);
    }
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)OC, (int)C, 1.0f,
              inp.data, (int)C, weight.data, (int)C, (bias.data || accumulate) ? 1.0f : 0.0f, out.data, (int)OC);
  return env.Undefined();
}

// dinp += dout @ weight; dweight += dout^T @ inp; dbias += colsum(dout)
static Napi::Value matmulBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ARG_INT(N, 6); ARG_INT(C, 7); ARG_INT(OC, 8);
  ARG_F32(dinp, 0, N * C, true);
  ARG_F32(dweight, 1, OC * C, true);
  ARG_F32(dbias, 2, OC, true);
  ARG_F32(dout, 3, N * OC, false);
  ARG_F32(inp, 4, N * C, false);
  ARG_F32(weight, 5, OC * C, false);
  if (dinp.data)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)C, (int)OC, 1.0f,
                dout.data, (int)OC, weight.data, (int)C, 1.0f, dinp.data, (int)C);
  if (dweight.data)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)OC, (int)C, (int)N, 1.0f,
                dout.data, (int)OC, inp.data, (int)C, 1.0f, dweight.data, (int)C);
  if (dbias.data) {
    for (int64_t n = 0; n < N; n++) {
      const float* row = dout.data + n * OC;
      for (int64_t o = 0; o < OC; o++) dbias.data[o] += row[o];
    }
  }
  return env.Undefined();
}

// sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): row-major C = alpha*op(A)op(B) + beta*C
static Napi::Value sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ta = info[0].ToBoolean(), tb = info[1].ToBoolean();
  ARG_INT(M, 2); ARG_INT(Nn, 3); ARG_INT(K, 4);
  float alpha = (float)kp::number(info, 5);
  ARG_INT(lda, 7); ARG_INT(ldb, 9); ARG_INT(ldc, 12);
  float beta = (float)kp::number(info, 10);
  ARG_F32(A, 6, (ta ? K : M) * lda - (lda - (ta ? M : K)), false);
  ARG_F32(B, 8, (tb ? Nn : K) * ldb - (ldb - (tb ? K : Nn)), false);
  ARG_F32(Cm, 11, M * ldc - (ldc - Nn), false);
  if (M == 0 || Nn == 0) return env.Undefined();
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)Nn,
              (int)K, alpha, A.data, (int)lda, B.data, (int)ldb, beta, Cm.data, (int)ldc);
  return env.Undefined();
}

void register_matmul(Napi::Env env, Napi::Object exports) {
  exports.Set("matmulForward", Napi::Function::New(env, matmulForward));
  exports.Set("matmulBackward", Napi::Function::New(env, matmulBackward));
  exports.Set("sgemm", Napi::Function::New(env, sgemm));
}
