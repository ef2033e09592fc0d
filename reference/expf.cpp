// ggml's polynomial exp (ggml_v_expf, AVX-512 variant) one lane at a time, and SiLU built on it.
#include <cmath>
#include <limits>

#include "reference/kernels.h"
#include "reference/lanes.h"

namespace bitnet::ref {

// Each line below is one vector instruction of the AVX-512 routine; fnmadd(a, b, c) is
// c - a*b with a single rounding, i.e. fma(-a, b, c). Every intermediate is a float, so the
// result is bit-identical to the lane the reference computed.
float expf_approx(float x) {
  // Round x/ln2 to an integer n with the 1.5*2^23 shifter: adding it pushes the fraction
  // bits out of the mantissa (round to nearest even), subtracting it leaves the integer.
  const float shifter = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, shifter);
  const float n = z - shifter;
  // b = x - n*ln2, with ln2 split into a high and a low part (Cody-Waite) for accuracy.
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  // exp(b) on |b| <= ln2/2 by a degree-5 polynomial, evaluated in Estrin form with u = b^2.
  const float u = b * b;
  const float j =
      std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
               std::fma(0x1.ffffecp-1f, b, 1.0f));
  // |n| > 192 (an ordered compare, so false for NaN): the lane is replaced by 0 (n <= 0) or
  // +inf. This is how -inf mask entries become exactly 0 in the softmax.
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : std::numeric_limits<float>::infinity();
  if (std::isnan(n)) return j;  // NaN in, NaN out (vscalefps propagates it)
  // vscalefps: j * 2^n with one rounding, overflowing to inf / underflowing through the
  // subnormals exactly like ldexp (n is an integer here, |n| <= 192).
  return std::ldexp(j, static_cast<int>(n));
}

// ggml_v_silu: x / (1 + exp(-x)), where -x is computed as 0 - x (so silu(+0) sees +0).
float silu(float x) {
  const float neg_x = 0.0f - x;
  return x / (1.0f + expf_approx(neg_x));
}

// ggml_vec_silu_f32: full 16-lane blocks use the vector routine; the n % 16 leftovers go
// through the scalar ggml_silu_f32, which calls the C library's expf instead.
void silu_row(const float* x, int64_t n, float* y) {
  const int64_t vector_end = n - n % detail::kLanes;
  for (int64_t i = 0; i < vector_end; ++i) y[i] = silu(x[i]);
  for (int64_t i = vector_end; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
}

}  // namespace bitnet::ref
