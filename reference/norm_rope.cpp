// RMSNorm and the two RoPE layouts, with the rounding steps of the reference binary.
#include <cmath>

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

// One head. Angles come from ggml_rope_cache_init: a running float product
// theta_{i+1} = theta_i * theta_scale starting at theta_0 = pos (never a fresh power), times
// freq_scale (rope_yarn without YaRN), then glibc cosf/sinf. The rotation is what clang
// emitted for `x0*c - x1*s` and `x0*s + x1*c` with contraction on: one product rounded,
// the other fused.
void rope_head(float* x, int64_t head_dim, int64_t pos, float theta_scale, float freq_scale, bool neox) {
  float theta = static_cast<float>(pos);
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float angle = freq_scale * theta;
    const float c = std::cos(angle);
    const float s = std::sin(angle);
    // NEOX pairs element i with i + head_dim/2; the "normal" (GPT-J) layout pairs 2i, 2i+1.
    float& v0 = neox ? x[i] : x[2 * i];
    float& v1 = neox ? x[i + head_dim / 2] : x[2 * i + 1];
    const float x0 = v0;
    const float x1 = v1;
    v0 = std::fma(x0, c, -(x1 * s));
    v1 = std::fma(x0, s, x1 * c);
    theta = theta * theta_scale;
  }
}

void rope(float* x, int64_t head_dim, int64_t n_heads, int64_t pos, float freq_base, float freq_scale, bool neox) {
  // powf(base, -2/n_dims) with the exponent computed in float, as ggml does.
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(head_dim));
  for (int64_t h = 0; h < n_heads; ++h) rope_head(x + h * head_dim, head_dim, pos, theta_scale, freq_scale, neox);
}

}  // namespace

void rope_neox(float* x, int64_t head_dim, int64_t n_heads, int64_t pos, float freq_base, float freq_scale) {
  rope(x, head_dim, n_heads, pos, freq_base, freq_scale, true);
}

void rope_normal(float* x, int64_t head_dim, int64_t n_heads, int64_t pos, float freq_base, float freq_scale) {
  rope(x, head_dim, n_heads, pos, freq_base, freq_scale, false);
}

}  // namespace bitnet::ref
