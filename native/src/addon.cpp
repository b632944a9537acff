// Entry point of the addon: registers every kernel and a few runtime queries.
#include "kernels.h"
#include <cblas.h>
#include <omp.h>

#ifndef KOMPRESOR_CXX_FLAGS
#define KOMPRESOR_CXX_FLAGS "unknown"
#endif

extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);
extern "C" int openblas_get_parallel(void);
extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads(void);

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("blas", Napi::String::New(env, openblas_get_config()));
  o.Set("blasThreads", Napi::Number::New(env, openblas_get_num_threads()));
  o.Set("ompThreads", Napi::Number::New(env, omp_get_max_threads()));
  // what decides the bits of a result besides the inputs: the BLAS kernel set picked for this
  // CPU at load time (OPENBLAS_CORETYPE overrides it), its threading, and how this addon was
  // compiled (-march: the instruction set and FMA contraction of our own kernels)
  o.Set("blasCore", Napi::String::New(env, openblas_get_corename()));
  o.Set("blasParallel", Napi::Number::New(env, openblas_get_parallel()));
  o.Set("cxxFlags", Napi::String::New(env, KOMPRESOR_CXX_FLAGS));
  o.Set("compiler", Napi::String::New(env, __VERSION__));
  return o;
}

static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n > 0) { openblas_set_num_threads(n); omp_set_num_threads(n); }
  return info.Env().Undefined();
}

// Weak stubs let the addon link while a kernel file is not written yet.
__attribute__((weak)) void register_rmsnorm(Napi::Env, Napi::Object) {}
__attribute__((weak)) void register_rope(Napi::Env, Napi::Object) {}
__attribute__((weak)) void register_attention(Napi::Env, Napi::Object) {}
__attribute__((weak)) void register_swiglu(Napi::Env, Napi::Object) {}
__attribute__((weak)) void register_cross_entropy(Napi::Env, Napi::Object) {}
__attribute__((weak)) void register_kd_loss(Napi::Env, Napi::Object) {}
__attribute__((weak)) void register_adamw(Napi::Env, Napi::Object) {}
__attribute__((weak)) void register_dtype(Napi::Env, Napi::Object) {}
__attribute__((weak)) void register_matmul_half(Napi::Env, Napi::Object) {}
__attribute__((weak)) void register_adamw_lean(Napi::Env, Napi::Object) {}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  register_matmul(env, exports);
  register_rmsnorm(env, exports);
  register_rope(env, exports);
  register_attention(env, exports);
  register_swiglu(env, exports);
  register_cross_entropy(env, exports);
  register_kd_loss(env, exports);
  register_adamw(env, exports);
  register_dtype(env, exports);
  register_matmul_half(env, exports);
  register_adamw_lean(env, exports);
  return exports;
}

NODE_API_MODULE(kompresor_native, Init)
