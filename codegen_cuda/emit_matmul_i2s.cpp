#include "codegen_cuda/emit_matmul_i2s.h"

#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"
#include "codegen_cuda/repack.h"

namespace bitnet::codegen_cuda {

Dim3 matmul_i2s_grid(const MatmulI2sShape& shape, int64_t n_tokens) {
  const int64_t rows_per_block = static_cast<int64_t>(shape.warps) * shape.rows_per_warp;
  return Dim3{static_cast<uint32_t>((shape.m + rows_per_block - 1) / rows_per_block),
              static_cast<uint32_t>((n_tokens + shape.tokens_per_block - 1) / shape.tokens_per_block), 1};
}

KernelSource emit_matmul_i2s(const MatmulI2sShape& shape) {
  if (shape.k <= 0 || shape.k % 128 != 0 || shape.m <= 0) throw std::invalid_argument("emit_matmul_i2s: bad shape");
  if (shape.tokens_per_block < 1 || shape.tokens_per_block > 8 || shape.rows_per_warp < 1 || shape.rows_per_warp > 4 ||
      shape.warps < 1 || shape.warps > 32) {
    throw std::invalid_argument("emit_matmul_i2s: bad tiling");
  }
  KernelSource kern;
  kern.threads = shape.warps * 32;
  // Enough resident blocks to keep loads in flight: registers <= 65536 / (256 * 2) = 128.
  kern.min_blocks = 2;
  kern.name = kernel_name(
      "bn_matmul_i2s",
      {{"k", shape.k}, {"m", shape.m}, {"t", shape.tokens_per_block}, {"r", shape.rows_per_warp}, {"w", shape.warps}});
  auto num = [](int64_t v) { return std::to_string(v); };
  std::string s = device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(kern.threads) + ", " + num(kern.min_blocks) + ") " +
       kern.name + R"((
    const unsigned int* __restrict__ w, float w_scale, const signed char* __restrict__ q,
    const float* __restrict__ act_scale, const int* __restrict__ act_sum, float* __restrict__ y, int n_tokens) {
  constexpr int kK = )" +
       num(shape.k) + R"(;
  constexpr int kM = )" +
       num(shape.m) + R"(;
  constexpr int kTokens = )" +
       num(shape.tokens_per_block) + R"(;
  constexpr int kRows = )" +
       num(shape.rows_per_warp) + R"(;
  constexpr int kWarps = )" +
       num(shape.warps) + R"(;
  constexpr int kWordsPerRow = kK / 16;
  constexpr int kTileWords = )" +
       num(kI2sTileChunks) + R"(;
  constexpr int kTiles = kWordsPerRow / kTileWords;
  constexpr int kTailWords = kWordsPerRow % kTileWords;
  const int lane = threadIdx.x & 31;
  const int row0 = (blockIdx.x * kWarps + (threadIdx.x >> 5)) * kRows;
  if (row0 >= kM) return;  // uniform over the warp; no block-level barrier below
  const int tok0 = blockIdx.y * kTokens;

  // Rows and tokens past the end are clamped for loading (no divergence) and never stored.
  const unsigned int* wrow[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) wrow[r] = w + (long long)(row0 + r < kM ? row0 + r : kM - 1) * kWordsPerRow;
  const signed char* qtok[kTokens];
#pragma unroll
  for (int t = 0; t < kTokens; ++t) qtok[t] = q + (long long)(tok0 + t < n_tokens ? tok0 + t : n_tokens - 1) * kK;

  int acc[kRows][kTokens];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[r][t] = 0;
  }

  // Whole tiles: one 16-byte weight load per row covers chunks lane + 32 j (j = 0..3).
#pragma unroll 2
  for (int tile = 0; tile < kTiles; ++tile) {
    uint4 wv[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) wv[r] = __ldg(reinterpret_cast<const uint4*>(wrow[r] + tile * kTileWords) + lane);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int chunk = tile * kTileWords + j * 32 + lane;
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        const int4 a = __ldg(reinterpret_cast<const int4*>(qtok[t]) + chunk);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const unsigned int word = j == 0 ? wv[r].x : j == 1 ? wv[r].y : j == 2 ? wv[r].z : wv[r].w;
          int d = acc[r][t];
          d = __dp4a((int)(word & 0x03030303u), a.x, d);
          d = __dp4a((int)((word >> 2) & 0x03030303u), a.y, d);
          d = __dp4a((int)((word >> 4) & 0x03030303u), a.z, d);
          d = __dp4a((int)((word >> 6) & 0x03030303u), a.w, d);
          acc[r][t] = d;
        }
      }
    }
  }
  // The remaining chunks, one word each, in order.
  for (int c = lane; c < kTailWords; c += 32) {
    const int chunk = kTiles * kTileWords + c;
    unsigned int words[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) words[r] = __ldg(wrow[r] + chunk);
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      const int4 a = __ldg(reinterpret_cast<const int4*>(qtok[t]) + chunk);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        int d = acc[r][t];
        d = __dp4a((int)(words[r] & 0x03030303u), a.x, d);
        d = __dp4a((int)((words[r] >> 2) & 0x03030303u), a.y, d);
        d = __dp4a((int)((words[r] >> 4) & 0x03030303u), a.z, d);
        d = __dp4a((int)((words[r] >> 6) & 0x03030303u), a.w, d);
        acc[r][t] = d;
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      const int d = bn_warp_sum_i32(acc[r][t]);
      const int row = row0 + r;
      const int tok = tok0 + t;
      if (lane == 0 && row < kM && tok < n_tokens) {
        // Spec 8.2 step 5: (D - S) exact in int32, then / s, then * tensor scale, each rounded.
        const float centered = __int2float_rn(d - act_sum[tok]);
        y[(long long)tok * kM + row] = __fmul_rn(__fdiv_rn(centered, act_scale[tok]), w_scale);
      }
    }
  }
}
)";
  kern.source = std::move(s);
  return kern;
}

}  // namespace bitnet::codegen_cuda
