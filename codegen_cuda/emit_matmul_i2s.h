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
  // Warps that share a row group and split its K steps between them (1 = a warp owns whole
  // rows). The steps of a row are its 128-chunk tiles (one 16-byte load per lane) and then its
  // remaining chunks in groups of 32 (one 4-byte load per lane); warp s of a group takes steps
  // s, s + k_split, ... Partial dot products are int32 and are added through shared memory:
  // exact in any order, so the output is the same bits for every k_split. warps % k_split == 0
  // and k_split <= the number of steps.
  int k_split = 1;
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

// K steps of a row (see k_split): K/2048 tiles plus ceil(((K/16) % 128) / 32) groups of 32 chunks.
int64_t matmul_i2s_k_steps(int64_t k);

// The decode (T = 1) tiling: every lane issues all of its weight loads (at most two steps per row)
// before its first dp4a, and there are enough warps that a GPU's SMs all stream at once (each
// I2_S decode GEMV reads only 0.4-4.5 MB, so a launch is one or two memory latencies long, not a
// bandwidth-bound stream). K is split between warps once a row has more than two steps.
MatmulI2sShape decode_gemv_shape(int64_t k, int64_t m);

}  // namespace bitnet::codegen_cuda
