// RoPE building blocks shared by the rope and rope_attention emitters (emit_rope.cpp).
// Internal to codegen_cpu.
#pragma once

#include "codegen_cpu/emit_math.h"

namespace bitnet::codegen {

struct RopeParams {
  int64_t head_dim = 0;
  float theta_scale = 0;  // powf(freq_base, -2 / head_dim), computed here with the host libm as the reference does
  float freq_scale = 1;
  bool neox = true;
};
// From a rope / rope_attention description (style, head_dim, freq_base, freq_scale).
RopeParams rope_params(const KernelDesc& desc);

struct RopeTable {
  llvm::Value* cos = nullptr;  // <head_dim/2 x float>
  llvm::Value* sin = nullptr;
};
// cos and sin of one position's angles (pos: i64), as the reference gets them: theta_0 =
// float(pos), theta_{i+1} = theta_i * theta_scale (a running float product, as
// ggml_rope_cache_init), angle = freq_scale * theta, then glibc's cosf / sinf, reproduced
// bit for bit for positions below kRopeExactPositions (see emit_rope.cpp) and within 1 ulp
// beyond.
RopeTable rope_table(KernelBuilder& kb, const RopeParams& p, llvm::Value* position);
inline constexpr int64_t kRopeExactPositions = 4096;
// One rotated head (<head_dim x float>) read from `head` (head_dim floats), with the
// reference's rounding: out0 = fma(x0, c, -(x1 s)), out1 = fma(x0, s, x1 c).
llvm::Value* rope_head(KernelBuilder& kb, const RopeParams& p, const RopeTable& t, llvm::Value* head);

}  // namespace bitnet::codegen
