// The kernels the standalone device check runs: BitNet b1.58 2B4T decode shapes (n_embd 2560,
// n_ff 6912, 5 kv heads x 128 = 640, vocab 128256) plus small-T GEMM tiles. Shared by the
// build-time embedder (cuda_kernel_embed.cpp) and the check (cuda_kernel_check.cpp).
#pragma once

#include <string>
#include <vector>

#include "codegen_cuda/emit_lm_head_f16.h"
#include "codegen_cuda/emit_matmul_i2s.h"
#include "codegen_cuda/emit_rmsnorm_quant.h"

namespace bitnet::bench {

struct NamedMatmul {
  std::string role;  // "q/o", "k/v", "gate/up", "down"
  codegen_cuda::MatmulI2sShape shape;
  int n_tokens;
};

inline std::vector<codegen_cuda::RmsNormQuantShape> check_norms() {
  return {{2560, 1e-5f, true, false}, {6912, 1e-5f, true, false}, {2560, 1e-5f, true, true}};
}

inline std::vector<NamedMatmul> check_matmuls() {
  return {{"q/o", {2560, 2560, 1}, 1},    {"k/v", {2560, 640, 1}, 1},          {"gate/up", {2560, 6912, 1}, 1},
          {"down", {6912, 2560, 1}, 1},   {"gate/up T=8", {2560, 6912, 8}, 8}, {"down T=8", {6912, 2560, 8}, 8},
          {"q/o T=4", {2560, 2560, 4}, 4}};
}

inline codegen_cuda::LmHeadF16Shape check_lm_head() {
  return {2560, 128256};
}

// Every kernel above, one translation unit (one module on the device).
inline std::string check_source() {
  std::string source;
  for (const auto& n : check_norms()) source += codegen_cuda::emit_rmsnorm_quant(n).source;
  for (const auto& m : check_matmuls()) source += codegen_cuda::emit_matmul_i2s(m.shape).source;
  source += codegen_cuda::emit_lm_head_f16(check_lm_head()).source;
  return source;
}

}  // namespace bitnet::bench
