// e^x for x <= 0, branch-free so loops calling it vectorise (glibc's expf is a scalar call).
// One Cephes-style expf shared by cross_entropy.cpp, swiglu.cpp and kd_loss.cpp.
#pragma once
#include <cstdint>
#include <cstring>

namespace kp {

// n = round(x / ln2), r = x - n*ln2 with ln2 split in two so r is exact, e^r by its degree-7
// polynomial (relative error < 2e-7 on [-ln2/2, ln2/2]), then times 2^n built in the exponent
// bits. Below -87.33 e^x is under the smallest normal float and we return 0. NaN stays NaN.
static inline float exp_nonpos(float x) {
  const float lo = -87.33654475f;
  const float xc = x < lo ? lo : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  const float t = xc * 1.44269504088896341f + magic;
  const float n = t - magic;
  int32_t ni;
  std::memcpy(&ni, &t, 4);
  ni -= 0x4B400000;  // the bits of magic: what is left is n as an integer, in [-126, 0]
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const int32_t sbits = (ni + 127) << 23;
  float s;
  std::memcpy(&s, &sbits, 4);
  return x < lo ? 0.0f : er * s;
}

}  // namespace kp
