// Registration of every native kernel. Each <name>.cpp defines register_<name>(env, exports),
// which adds its functions under the same camelCase names as the TypeScript references in
// src/tensor/kernels/ (see src/tensor/kernels/types.ts for the contract and argument order).
#pragma once
#include <napi.h>

void register_matmul(Napi::Env env, Napi::Object exports);
void register_rmsnorm(Napi::Env env, Napi::Object exports);
void register_rope(Napi::Env env, Napi::Object exports);
void register_attention(Napi::Env env, Napi::Object exports);
void register_swiglu(Napi::Env env, Napi::Object exports);
void register_cross_entropy(Napi::Env env, Napi::Object exports);
void register_kd_loss(Napi::Env env, Napi::Object exports);
void register_adamw(Napi::Env env, Napi::Object exports);
void register_dtype(Napi::Env env, Napi::Object exports);
void register_matmul_half(Napi::Env env, Napi::Object exports);
void register_adamw_lean(Napi::Env env, Napi::Object exports);
