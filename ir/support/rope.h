// Rotary position embedding of one head, with the reference's rounding steps, defined once:
// the reference kernels and the runtime's KV shift (rotating cached keys by a position delta,
// as llama.cpp's K shift) use it.
#pragma once

#include <cmath>
#include <cstdint>

namespace bitnet::rope {

// powf(base, -2/n_dims) with the exponent computed in float, as ggml does.
inline float theta_scale(float freq_base, int64_t head_dim) {
  return std::pow(freq_base, -2.0f / static_cast<float>(head_dim));
}

// One head. Angles come from ggml_rope_cache_init: a running float product
// theta_{i+1} = theta_i * theta_scale starting at theta_0 = pos (never a fresh power), times
// freq_scale (rope_yarn without YaRN), then glibc cosf/sinf. The rotation is what clang
// emitted for `x0*c - x1*s` and `x0*s + x1*c` with contraction on: one product rounded,
// the other fused.
inline void rotate_head(float* x, int64_t head_dim, int64_t pos, float theta_scale, float freq_scale, bool neox) {
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

}  // namespace bitnet::rope
