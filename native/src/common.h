// Shared helpers for the native kernels: unwrapping typed arrays and numbers from N-API
// arguments with checks that throw JS errors naming the kernel, the argument and file:line.
#pragma once
#include <napi.h>
#include <cstdint>
#include <cstddef>
#include <string>

#define KP_STR2(x) #x
#define KP_STR(x) KP_STR2(x)
#define KP_WHERE __FILE__ ":" KP_STR(__LINE__)

// Throws a JS Error and returns from the calling binding when cond is false.
#define ENSURE_ARG(env, cond, msg)                                                    \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      Napi::Error::New(env, std::string("[native ") + KP_WHERE + "] " + (msg))        \
          .ThrowAsJavaScriptException();                                              \
      return env.Undefined();                                                         \
    }                                                                                 \
  } while (0)

namespace kp {

// A view of a typed-array argument: pointer honours byteOffset, length in elements.
template <typename T> struct View { T* data = nullptr; size_t length = 0; bool ok = false; };

template <typename T>
inline View<T> typed(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type want, bool nullable = false) {
  View<T> v;
  Napi::Value a = info[i];
  if (nullable && (a.IsNull() || a.IsUndefined())) { v.ok = true; return v; }
  if (!a.IsTypedArray()) return v;
  Napi::TypedArray ta = a.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != want) return v;
  Napi::ArrayBuffer buf = ta.ArrayBuffer();
  v.data = reinterpret_cast<T*>(static_cast<uint8_t*>(buf.Data()) + ta.ByteOffset());
  v.length = ta.ElementLength();
  v.ok = true;
  return v;
}

inline View<float> f32(const Napi::CallbackInfo& info, size_t i, bool nullable = false) {
  return typed<float>(info, i, napi_float32_array, nullable);
}
inline View<int32_t> i32(const Napi::CallbackInfo& info, size_t i) {
  return typed<int32_t>(info, i, napi_int32_array);
}
inline View<uint16_t> u16(const Napi::CallbackInfo& info, size_t i) {
  return typed<uint16_t>(info, i, napi_uint16_array);
}
inline int64_t integer(const Napi::CallbackInfo& info, size_t i) {
  return info[i].IsNumber() ? info[i].As<Napi::Number>().Int64Value() : -1;
}
inline double number(const Napi::CallbackInfo& info, size_t i) {
  return info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : 0.0;
}

}  // namespace kp

// Checks that argument i is a Float32Array (or null when nullable) with at least `need` elements.
#define ARG_F32(var, i, need, nullable)                                                       \
  kp::View<float> var = kp::f32(info, i, nullable);                                           \
  ENSURE_ARG(env, var.ok, std::string(__func__) + ": argument " #var " must be a Float32Array"); \
  ENSURE_ARG(env, (nullable && var.data == nullptr && (info[i].IsNull() || info[i].IsUndefined())) || \
                 var.length >= (size_t)(need),                                                 \
             std::string(__func__) + ": " #var " has " + std::to_string(var.length) +         \
                 " elements, needs " + std::to_string((size_t)(need)))
#define ARG_I32(var, i, need)                                                                 \
  kp::View<int32_t> var = kp::i32(info, i);                                                   \
  ENSURE_ARG(env, var.ok, std::string(__func__) + ": argument " #var " must be an Int32Array");  \
  ENSURE_ARG(env, var.length >= (size_t)(need),                                               \
             std::string(__func__) + ": " #var " has " + std::to_string(var.length) +         \
                 " elements, needs " + std::to_string((size_t)(need)))
#define ARG_U16(var, i, need)                                                                 \
  kp::View<uint16_t> var = kp::u16(info, i);                                                  \
  ENSURE_ARG(env, var.ok, std::string(__func__) + ": argument " #var " must be a Uint16Array"); \
  ENSURE_ARG(env, var.length >= (size_t)(need),                                               \
             std::string(__func__) + ": " #var " has " + std::to_string(var.length) +         \
                 " elements, needs " + std::to_string((size_t)(need)))
#define ARG_INT(var, i)                                                                       \
  int64_t var = kp::integer(info, i);                                                         \
  ENSURE_ARG(env, var >= 0, std::string(__func__) + ": argument " #var " must be a non-negative integer")
