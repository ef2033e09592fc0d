#include "codegen_cuda/emit_matmul_i2s.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"
#include "codegen_cuda/repack.h"

namespace bitnet::codegen_cuda {

Dim3 matmul_i2s_grid(const MatmulI2sShape& shape, int64_t n_tokens) {
  const int64_t rows_per_block = static_cast<int64_t>(shape.warps / shape.k_split) * shape.rows_per_warp;
  return Dim3{static_cast<uint32_t>((shape.m + rows_per_block - 1) / rows_per_block),
              static_cast<uint32_t>((n_tokens + shape.tokens_per_block - 1) / shape.tokens_per_block), 1};
}

int64_t matmul_i2s_k_steps(int64_t k) {
  const int64_t words = k / 16;
  return words / kI2sTileChunks + (words % kI2sTileChunks + 31) / 32;
}

MatmulI2sShape decode_gemv_shape(int64_t k, int64_t m) {
  MatmulI2sShape shape{k, m, 1};
  const int64_t steps = matmul_i2s_k_steps(k);
  shape.rows_per_warp = 2;
  shape.k_split = static_cast<int>(std::min<int64_t>((steps + 1) / 2, 8));
  // Row groups per block: as many as keep >= 2 blocks per SM of a 132-SM GPU, at most 4.
  int groups = 4;
  while (groups > 1 && (m + groups * shape.rows_per_warp - 1) / (groups * shape.rows_per_warp) < 264) groups /= 2;
  shape.warps = groups * shape.k_split;
  return shape;
}

KernelSource emit_matmul_i2s(const MatmulI2sShape& shape) {
  if (shape.k <= 0 || shape.k % 128 != 0 || shape.m <= 0) throw std::invalid_argument("emit_matmul_i2s: bad shape");
  if (shape.tokens_per_block < 1 || shape.tokens_per_block > 8 || shape.rows_per_warp < 1 || shape.rows_per_warp > 4 ||
      shape.warps < 1 || shape.warps > 32 || shape.k_split < 1 || shape.warps % shape.k_split != 0 ||
      shape.k_split > matmul_i2s_k_steps(shape.k)) {
    throw std::invalid_argument("emit_matmul_i2s: bad tiling");
  }
  KernelSource kern;
  kern.threads = shape.warps * 32;
  // Enough resident blocks to keep loads in flight (2 blocks of 256 threads: <= 128 registers).
  kern.min_blocks = kern.threads <= 256 ? 2 : 1;
  kern.name = shape.k_split == 1 ? kernel_name("bn_matmul_i2s", {{"k", shape.k},
                                                                 {"m", shape.m},
                                                                 {"t", shape.tokens_per_block},
                                                                 {"r", shape.rows_per_warp},
                                                                 {"w", shape.warps}})
                                 : kernel_name("bn_matmul_i2s", {{"k", shape.k},
                                                                 {"m", shape.m},
                                                                 {"t", shape.tokens_per_block},
                                                                 {"r", shape.rows_per_warp},
                                                                 {"w", shape.warps},
                                                                 {"s", shape.k_split}});
  auto num = [](int64_t v) { return std::to_string(v); };
  const bool split = shape.k_split > 1;
  std::string s = device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(kern.threads) + ", " + num(kern.min_blocks) + ") " +
       kern.name + R"((
    const unsigned int* __restrict__ w, float w_scale, const signed char* __restrict__ q,
    const float* __restrict__ act_scale, const int* __restrict__ act_sum, float* __restrict__ y, int n_tokens) {
)" +
       int_constants({{"kK", num(shape.k)},
                      {"kM", num(shape.m)},
                      {"kTokens", num(shape.tokens_per_block)},
                      {"kRows", num(shape.rows_per_warp)},
                      {"kWarps", num(shape.warps)},
                      {"kSplit", num(shape.k_split)}}) +
       R"(
  constexpr int kGroups = kWarps / kSplit;
  constexpr int kWordsPerRow = kK / 16;
  constexpr int kTileWords = )" +
       num(kI2sTileChunks) + R"(;
  constexpr int kTiles = kWordsPerRow / kTileWords;
  constexpr int kTailWords = kWordsPerRow % kTileWords;
  constexpr int kSteps = kTiles + (kTailWords + 31) / 32;
  constexpr int kStepsPerWarp = (kSteps + kSplit - 1) / kSplit;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int slice = warp % kSplit;  // this warp's K steps: slice, slice + kSplit, ...
  const int row0 = (blockIdx.x * kGroups + warp / kSplit) * kRows;
)";
  if (!split) s += "  if (row0 >= kM) return;  // uniform over the warp; no block-level barrier below\n";
  s += R"(  const int tok0 = blockIdx.y * kTokens;

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

  // The weight loads of kBatch steps at once (one 16-byte load per row and tile step, one 4-byte
  // load per row and tail step) before their first use, so that they are all in flight together;
  // the decode tilings have at most kBatch steps per warp, i.e. one round trip to memory. GEMM
  // tiles hold kTokens activation vectors as well, so they batch fewer steps (no spills).
  constexpr int kBatch = kTokens > 2 ? 1 : kTokens == 2 ? 2 : kRows == 1 ? 8 : kRows == 2 ? 4 : 2;
#pragma unroll 1
  for (int i0 = 0; i0 < kStepsPerWarp; i0 += kBatch) {
    uint4 wv[kBatch][kRows];
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      const int step = slice + (i0 + i) * kSplit;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (step < kTiles) {
          wv[i][r] = __ldg(reinterpret_cast<const uint4*>(wrow[r] + step * kTileWords) + lane);
        } else {
          const int c = (step - kTiles) * 32 + lane;
          wv[i][r].x = step < kSteps && c < kTailWords ? __ldg(wrow[r] + kTiles * kTileWords + c) : 0u;
          wv[i][r].y = wv[i][r].z = wv[i][r].w = 0u;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      const int step = slice + (i0 + i) * kSplit;
      if (step < kTiles) {
        // A whole tile: lane's 16-byte load covers chunks lane + 32 j (j = 0..3).
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int chunk = step * kTileWords + j * 32 + lane;
#pragma unroll
          for (int t = 0; t < kTokens; ++t) {
            const int4 a = __ldg(reinterpret_cast<const int4*>(qtok[t]) + chunk);
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
              const unsigned int word = j == 0 ? wv[i][r].x : j == 1 ? wv[i][r].y : j == 2 ? wv[i][r].z : wv[i][r].w;
              int d = acc[r][t];
              d = __dp4a((int)(word & 0x03030303u), a.x, d);
              d = __dp4a((int)((word >> 2) & 0x03030303u), a.y, d);
              d = __dp4a((int)((word >> 4) & 0x03030303u), a.z, d);
              d = __dp4a((int)((word >> 6) & 0x03030303u), a.w, d);
              acc[r][t] = d;
            }
          }
        }
      } else if (step < kSteps) {
        // 32 of the remaining chunks (fewer in the last group), one word per lane.
        const int c = (step - kTiles) * 32 + lane;
        if (c < kTailWords) {
          const int chunk = kTiles * kTileWords + c;
#pragma unroll
          for (int t = 0; t < kTokens; ++t) {
            const int4 a = __ldg(reinterpret_cast<const int4*>(qtok[t]) + chunk);
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
              const unsigned int word = wv[i][r].x;
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
    }
  }

)";
  if (!split) {
    s += R"(#pragma unroll
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
  } else {
    s += R"(  // Each warp's partial sums (int32: exact), then one thread per (row, token) adds the
  // kSplit slices in slice order and applies the epilogue.
  __shared__ int s_part[kWarps][kRows * kTokens];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      const int d = bn_warp_sum_i32(acc[r][t]);
      if (lane == 0) s_part[warp][r * kTokens + t] = d;
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kGroups * kRows * kTokens; e += kWarps * 32) {
    const int g = e / (kRows * kTokens);
    const int rt = e % (kRows * kTokens);
    int d = 0;
#pragma unroll
    for (int p = 0; p < kSplit; ++p) d += s_part[g * kSplit + p][rt];
    const int row = (blockIdx.x * kGroups + g) * kRows + rt / kTokens;
    const int tok = tok0 + rt % kTokens;
    if (row < kM && tok < n_tokens) {
      // Spec 8.2 step 5: (D - S) exact in int32, then / s, then * tensor scale, each rounded.
      const float centered = __int2float_rn(d - act_sum[tok]);
      y[(long long)tok * kM + row] = __fmul_rn(__fdiv_rn(centered, act_scale[tok]), w_scale);
    }
  }
}
)";
  }
  kern.source = std::move(s);
  return kern;
}

}  // namespace bitnet::codegen_cuda
