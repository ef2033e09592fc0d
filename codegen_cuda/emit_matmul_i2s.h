// The I2_S matrix product on int8-quantized activations (spec 8.2 steps 4-5), GEMV (one token
// per block) and small-T GEMM (a tile of tokens per block), with __dp4a on weights repacked by
// repack_i2s(). Integer-exact; the float epilogue is the reference's three rounded steps.
#pragma once

#include <cstdint>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

struct MatmulI2sShape {
  int64_t k = 0;             // input features (cols), % 128 == 0
  int64_t m = 0;             // output features (rows)
  int tokens_per_block = 1;  // 1 = GEMV; 2..8 = the GEMM's token tile
  int rows_per_warp = 2;     // rows that share each activation load
  int warps = 8;             // per block
};

// Kernel signature:
//   (const unsigned int* w, float w_scale, const signed char* q, const float* act_scale,
//    const int* act_sum, float* y, int n_tokens)
// w: repack_i2s() words; w_scale: the tensor's float scale; q: [n_tokens][k] int8 codes;
// act_scale, act_sum: per token (emit_rmsnorm_quant); y: [n_tokens][m]. Each warp owns
// rows_per_warp rows and one token tile; a row's dot product is summed per lane in int32 and
// reduced by warp shuffles (integers: exact in any order). y = float(float(float(D - S) / s) * scale)
// with every step rounded as ref::matmul_i8q_rows, so the output is bit-identical.
KernelSource emit_matmul_i2s(const MatmulI2sShape& shape);
Dim3 matmul_i2s_grid(const MatmulI2sShape& shape, int64_t n_tokens);

}  // namespace bitnet::codegen_cuda
