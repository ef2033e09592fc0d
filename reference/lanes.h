// Internal helpers for the reference kernels: the 16-float register shape of the AVX-512
// build that produced the reference outputs, emulated with small arrays.
#pragma once

#include <array>
#include <cstdint>

#include "reference/kernels.h"

namespace bitnet::ref::detail {

// One __m512 of floats.
inline constexpr int kLanes = 16;
using Lanes = std::array<float, kLanes>;

// _mm512_reduce_add_ps as clang 14 lowers it (and as the spec writes it down): the upper
// half is added onto the lower half, repeatedly, so lane 0 ends up holding
// ((v0 + v8) + (v4 + v12)) + ... in this exact order: i + 8, then i + 4, i + 2, i + 1.
inline float tree_sum(Lanes v) {
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int i = 0; i < width; ++i) v[i] = v[i] + v[i + width];
  }
  return v[0];
}

// fp16_to_fp32 by table lookup, as ggml does (ggml_table_f32_f16): the table is filled from
// fp16_to_fp32 itself, so the values are identical; the hot dot products just avoid the
// bit manipulation per element.
inline float f16_value(uint16_t h) {
  static const std::array<float, 65536> table = [] {
    std::array<float, 65536> t{};
    for (uint32_t i = 0; i < t.size(); ++i) t[i] = fp16_to_fp32(static_cast<uint16_t>(i));
    return t;
  }();
  return table[h];
}

}  // namespace bitnet::ref::detail
