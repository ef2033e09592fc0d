// The I2_S matrix product on int8-quantized activations (spec 8.2 steps 4-5), GEMV (one token
// per block) and small-T GEMM (a tile of tokens per block), with __dp4a on weights repacked by
// repack_i2s(). Integer-exact; the float epilogue is the reference's three rounded steps.
#pragma once

#include <cstdint>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

enum class MatmulI2sEpilogue {
  kStore,        // y = v
  kResidualAdd,  // y = y + v (the residual stream, updated in place)
  kGluRelu2,     // gated FFN (bitnet-b1.58): see below
  kGluSilu,      // gated FFN (bitnet)
};

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
  // What happens to each output value v (see MatmulI2sEpilogue). Anything but a plain store with
  // one segment uses the fused signature below (scales read from memory).
  MatmulI2sEpilogue epilogue = MatmulI2sEpilogue::kStore;
  // Row segments with a tensor scale each (q|k|v as one launch): rows [0, segment_end[0]) use
  // w_scales[0], [segment_end[0], segment_end[1]) w_scales[1], the rest w_scales[2]; 0 = unused.
  int64_t segment_end[2] = {0, 0};
  // The RMSNorm (+ gain) and int8 quantization of the input row done by each block itself
  // (emit_rmsnorm_quant's math, codes kept in shared memory) instead of by a separate launch:
  // tokens_per_block must be 1. Uses the fused signature with x and gain in place of the codes.
  bool fuse_norm = false;
  float norm_eps = 1e-5f;
  // Programmatic dependent launch (kernel_source.h): a decode GEMV waits for its predecessor
  // after issuing its first weight loads.
  PdlMode pdl = PdlMode::kOff;
  // The RMSNorm + gain + int8 quantization of the output row done at the end of this launch by
  // its last block to finish (a counter every block increments after storing and fencing its
  // outputs), for the next GEMV: the separate rmsnorm_quant launch is then not needed. One token
  // per launch (tokens_per_block 1, n_tokens 1); the row is y (kM values, kM / 2 gated). Adds
  // (const float* tail_gain, signed char* tail_q, float* tail_scale, int* tail_sum,
  //  float* tail_normed, unsigned int* tail_counter) before n_tokens: codes, scale and code sum as
  // emit_rmsnorm_quant writes them, the normed floats where tail_normed is not null, and a counter
  // that is 0 before the launch and is left 0 after it. Not with fuse_norm or mma.
  bool tail_norm = false;
  // Int8 tensor cores (mma.m16n8k32, sm_80+) instead of __dp4a: each warp computes
  // rows_per_warp (16, 32, 48 or 64) rows x tokens_per_block (8, 16, 24 or 32) tokens as
  // 16 x 8 MMA tiles, at most 8 of them (4 above 4 warps); k_split 1, no fused norm
  // (emit_matmul_i2s_mma.cpp). Same signature, grid (matmul_i2s_grid), epilogues and bits.
  bool mma = false;
};

// Gated epilogues read rows in pairs: row 2r is gate row r, row 2r + 1 up row r (weights
// interleaved by the caller), and store act(gate) * up at y[token][r] (m / 2 values per token),
// act(g) = max(g, 0)^2 (relu2) or g / (1 + expf_approx(-g)) (silu, ref::silu for n % 16 == 0 rows),
// with gate scaled by w_scales[0] and up by w_scales[1]. rows_per_warp must be even.

// Kernel signature:
//   (const unsigned int* w, float w_scale, const signed char* q, const float* act_scale,
//    const int* act_sum, float* y, int n_tokens)
// w: repack_i2s() words; w_scale: the tensor's float scale; q: [n_tokens][k] int8 codes;
// act_scale, act_sum: per token (emit_rmsnorm_quant); y: [n_tokens][m]. Each warp owns
// rows_per_warp rows and one token tile; a row's dot product is summed per lane in int32 and
// reduced by warp shuffles (integers: exact in any order). y = float(float(float(D - S) / s) * scale)
// with every step rounded as ref::matmul_i8q_rows, so the output is bit-identical.
// Fused signature (matmul_i2s_fused(shape)): the same, with `const float* w_scales` in place of
// `float w_scale`; with fuse_norm also `const float* x, const float* gain` (x: [n_tokens][k], the
// norm's input; gain: [k]) in place of q, act_scale and act_sum:
//   (const unsigned int* w, const float* w_scales, const float* x, const float* gain, float* y, int n_tokens)
// The fused norm's codes, scale and code sum are emit_rmsnorm_quant's (the same rounding steps;
// its sum of squares is a fixed tree over this kernel's threads, so the same 1-ulp caveat). Every epilogue keeps
// spec 8.2 step 5's rounding; the residual add and the activation are the reference's float ops, so outputs stay
// bit-identical.
KernelSource emit_matmul_i2s(const MatmulI2sShape& shape);
bool matmul_i2s_fused(const MatmulI2sShape& shape);
// The tensor-core form (shape.mma; emit_matmul_i2s calls it).
KernelSource emit_matmul_i2s_mma(const MatmulI2sShape& shape);
// The kernel's parameter list (both forms) and the text that turns an int32 dot product into
// stored outputs: bn_out(d, row, tok) for plain rows (store or residual add, with the row's
// segment scale), bn_out_pair(d_gate, d_up, row, tok) for gated pairs (row = the gate row).
std::string matmul_i2s_parameters(const MatmulI2sShape& shape);
// Also shared: the refusal of row segments and gated epilogues a shape cannot have (throws
// std::invalid_argument naming `emitter`), and the kernel name's tail (segments, epilogue,
// fused norm, PDL).
void check_matmul_i2s_epilogue(const MatmulI2sShape& shape, const char* emitter);
std::string matmul_i2s_name_suffix(const MatmulI2sShape& shape);
std::string matmul_i2s_epilogue_text(const MatmulI2sShape& shape);
Dim3 matmul_i2s_grid(const MatmulI2sShape& shape, int64_t n_tokens);

// K steps of a row (see k_split): K/2048 tiles plus ceil(((K/16) % 128) / 32) groups of 32 chunks.
int64_t matmul_i2s_k_steps(int64_t k);

// The decode (T = 1) tiling: every lane issues all of its weight loads (at most two steps per row)
// before its first dp4a, and there are enough warps that a GPU's SMs all stream at once (each
// I2_S decode GEMV reads only 0.4-4.5 MB, so a launch is one or two memory latencies long, not a
// bandwidth-bound stream). K is split between warps once a row has more than two steps.
MatmulI2sShape decode_gemv_shape(int64_t k, int64_t m);

}  // namespace bitnet::codegen_cuda
