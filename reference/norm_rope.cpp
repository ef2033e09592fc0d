// RMSNorm and the two RoPE layouts, with the rounding steps of the reference binary.
#include <cmath>

#include "ir/support/rope.h"
#include "reference/kernels.h"

namespace bitnet::ref {

// Spec 8.1: squares rounded to float, summed in double in index order; the mean is rounded
// to float before eps is added (in float); the scale is 1/sqrtf in float.
void rms_norm(const float* x, int64_t n, float eps, float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float square = x[i] * x[i];
    sum += static_cast<double>(square);
  }
  const auto mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
}

namespace {

void rope(float* x, int64_t head_dim, int64_t n_heads, int64_t pos, float freq_base, float freq_scale, bool neox) {
  const float theta_scale = rope::theta_scale(freq_base, head_dim);
  for (int64_t h = 0; h < n_heads; ++h)
    rope::rotate_head(x + h * head_dim, head_dim, pos, theta_scale, freq_scale, neox);
}

}  // namespace

void rope_neox(float* x, int64_t head_dim, int64_t n_heads, int64_t pos, float freq_base, float freq_scale) {
  rope(x, head_dim, n_heads, pos, freq_base, freq_scale, true);
}

void rope_normal(float* x, int64_t head_dim, int64_t n_heads, int64_t pos, float freq_base, float freq_scale) {
  rope(x, head_dim, n_heads, pos, freq_base, freq_scale, false);
}

}  // namespace bitnet::ref
