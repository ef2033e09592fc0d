#include "codegen_cuda/emit_q8_0.h"

#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"

namespace bitnet::codegen_cuda {

namespace {

int64_t row_blocks(const LmHeadQ8_0Shape& shape) {
  const int64_t rows_per_block = static_cast<int64_t>(shape.warps) * shape.rows_per_warp;
  return (shape.m + rows_per_block - 1) / rows_per_block;
}

}  // namespace

const std::string& q8_0_device_helpers() {
  // Value j (0..31) of a block. The scale is read as two bytes: blocks are 34 bytes long, so it is
  // 2-byte aligned only in every other block.
  static const std::string text = R"(#ifndef BITNET_CUDA_Q8_0
#define BITNET_CUDA_Q8_0
__device__ __forceinline__ float bn_q8_0_scale(const unsigned char* block) {
  return __half2float(__ushort_as_half((unsigned short)(block[0] | (block[1] << 8))));
}
__device__ __forceinline__ float bn_q8_0_value(const unsigned char* block, float d, int j) {
  return __fmul_rn((float)(signed char)block[2 + j], d);
}
#endif
)";
  return text;
}

Dim3 lm_head_q8_0_grid(const LmHeadQ8_0Shape& shape, int64_t n_tokens) {
  return Dim3{static_cast<uint32_t>(row_blocks(shape)), static_cast<uint32_t>(n_tokens), 1};
}

KernelSource emit_lm_head_q8_0(const LmHeadQ8_0Shape& shape) {
  if (shape.k < 32 || shape.k % 32 != 0 || shape.k > 12288 || shape.m < 1) {
    throw std::invalid_argument("emit_lm_head_q8_0: bad shape");
  }
  if (shape.rows_per_warp < 2 || shape.rows_per_warp % 2 != 0 || shape.warps < 1 || shape.warps > 32) {
    throw std::invalid_argument("emit_lm_head_q8_0: bad tiling");
  }
  auto num = [](int64_t v) { return std::to_string(v); };
  KernelSource kern;
  kern.threads = shape.warps * 32;
  kern.min_blocks = 2;
  kern.name =
      kernel_name("bn_lm_head_q8_0", {{"k", shape.k}, {"m", shape.m}, {"r", shape.rows_per_warp}, {"w", shape.warps}}) +
      pdl_suffix(shape.pdl);
  std::string s = "#include <cuda_fp16.h>\n" + device_prelude() + q8_0_device_helpers();
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(kern.threads) + ", " + num(kern.min_blocks) + ") " +
       kern.name + R"((
    const unsigned char* __restrict__ w, const float* __restrict__ x, float* __restrict__ y, int n_tokens) {
)" +
       int_constants({{"kK", num(shape.k)},
                      {"kM", num(shape.m)},
                      {"kRows", num(shape.rows_per_warp)},
                      {"kWarps", num(shape.warps)},
                      {"kRowBytes", num(q8_0_row_bytes(shape.k))}}) +
       R"(
  constexpr int kThreads = kWarps * 32;
  constexpr int kBlocks = kK / 32;
  __shared__ float xs[kK];  // x as it is: this path does not round it to F16
)" + pdl_early_text(shape.pdl, "  ") +
       pdl_wait_text(shape.pdl, "  ") + R"(  const int token = blockIdx.y;
  if (token >= n_tokens) return;  // uniform over the block
  const float* xt = x + (long long)token * kK;
  for (int i = threadIdx.x; i < kK; i += kThreads) xs[i] = xt[i];
  __syncthreads();

  const int lane = threadIdx.x & 15;  // the chain this thread keeps: elements i = lane (mod 16)
  const int half = (threadIdx.x >> 4) & 1;
  const int first_row = (blockIdx.x * kWarps + (threadIdx.x >> 5)) * kRows;
#pragma unroll 1
  for (int r = half; r < kRows; r += 2) {
    const int row = first_row + r;
    if (first_row + (r & ~1) >= kM) break;  // uniform over the warp: both halves stop together
    // A half-warp past the last row reads the last row and stores nothing (its shuffles still
    // pair with the other half's).
    const unsigned char* wr = w + (long long)(row < kM ? row : kM - 1) * kRowBytes;
    float chain = 0.0f;
#pragma unroll 4
    for (int b = 0; b < kBlocks; ++b) {
      const unsigned char* block = wr + b * 34;
      const float d = bn_q8_0_scale(block);
      // Elements 32b + lane and 32b + 16 + lane, in that order: both are lane's chain.
      chain = __fmaf_rn(bn_q8_0_value(block, d, lane), xs[32 * b + lane], chain);
      chain = __fmaf_rn(bn_q8_0_value(block, d, 16 + lane), xs[32 * b + 16 + lane], chain);
    }
    const float v = bn_tree_sum16(chain);  // lane 0 of each half-warp
    if (lane == 0 && row < kM) y[(long long)token * kM + row] = v;
  }
}
)";
  kern.source = std::move(s);
  return kern;
}

}  // namespace bitnet::codegen_cuda
