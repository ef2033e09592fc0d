// Q8_0 token tables (ggml block_q8_0: an F16 scale d, then 32 int8 q; w = float(q) * d), as
// bitnet.cpp's quantizer stores the embedding when n_embd % 256 != 0 (spec 4): the LM head
// kernel, and the device helpers it shares with the lookup (emit_embed.h). Both read the tensor
// as stored in the GGUF.
#pragma once

#include <cstdint>
#include <string>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

// Bytes of one Q8_0 row of `cols` values (cols % 32 == 0).
constexpr int64_t q8_0_row_bytes(int64_t cols) {
  return cols / 32 * 34;
}

// Device functions bn_q8_0_scale(block) and bn_q8_0_value(block, d, j) (guarded: several kernels
// of one program include them).
const std::string& q8_0_device_helpers();

struct LmHeadQ8_0Shape {
  int64_t k = 0;          // n_embd, % 32 == 0, <= 12288 (x is staged in 48 KB of shared memory)
  int64_t m = 0;          // vocabulary rows
  int rows_per_warp = 4;  // even: each half-warp takes every other row
  int warps = 8;
  PdlMode pdl = PdlMode::kOff;
};

// Kernel signature: (const unsigned char* w, const float* x, float* y, int n_tokens)
// w: [m] Q8_0 rows as stored; x: [n_tokens][k]; y: [n_tokens][m]. Grid lm_head_q8_0_grid.
// The reference's arithmetic for a weight type without a kernel of its own (ref::matmul, the
// same for one token and for several): each row dequantized, then tinyBLAS's F32 chain, i.e.
// 16 FMA chains over elements i = l (mod 16) in order, on x as it is (no F16 rounding), and the
// 16-lane tree sum. A half-warp holds one row's 16 chains, lane l chain l: bit-identical to
// ref::tinyblas_dot_f32.
KernelSource emit_lm_head_q8_0(const LmHeadQ8_0Shape& shape);
Dim3 lm_head_q8_0_grid(const LmHeadQ8_0Shape& shape, int64_t n_tokens);

}  // namespace bitnet::codegen_cuda
