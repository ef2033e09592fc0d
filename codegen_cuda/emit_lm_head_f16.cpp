#include "codegen_cuda/emit_lm_head_f16.h"

#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"
#include "codegen_cuda/repack.h"

namespace bitnet::codegen_cuda {

int64_t lm_head_f16_row_blocks(const LmHeadF16Shape& shape) {
  const int64_t rows_per_block = static_cast<int64_t>(shape.warps) * shape.rows_per_warp;
  return (shape.m + rows_per_block - 1) / rows_per_block;
}

Dim3 lm_head_f16_grid(const LmHeadF16Shape& shape, int64_t n_tokens) {
  const auto rows = static_cast<uint32_t>(lm_head_f16_row_blocks(shape));
  const auto tiles = static_cast<uint32_t>((n_tokens + shape.tokens_per_block - 1) / shape.tokens_per_block);
  // Token tiles along x: blocks are dispatched x first, so the tiles that read the same weight
  // rows run side by side and share each row through L2 (a head larger than L2 is then read from
  // memory once per step instead of once per tile).
  return shape.tokens_per_block > 1 ? Dim3{tiles, rows, 1} : Dim3{rows, tiles, 1};
}

namespace {

// The kernel's name, threads and launch bounds.
KernelSource kernel_of(const LmHeadF16Shape& shape) {
  KernelSource kern;
  kern.threads = shape.warps * 32;
  kern.min_blocks = 2;
  kern.name = shape.tokens_per_block == 1
                  ? kernel_name("bn_lm_head_f16",
                                {{"k", shape.k}, {"m", shape.m}, {"r", shape.rows_per_warp}, {"w", shape.warps}})
                  : kernel_name("bn_lm_head_f16", {{"k", shape.k},
                                                   {"m", shape.m},
                                                   {"r", shape.rows_per_warp},
                                                   {"w", shape.warps},
                                                   {"t", shape.tokens_per_block}});
  kern.name += std::string(shape.skip_prompt_tiles ? "_ps" : "") + pdl_suffix(shape.pdl);
  return kern;
}

// The text up to the kernel's shared memory: prelude, signature, shape constants.
std::string kernel_head(const LmHeadF16Shape& shape, const KernelSource& kern) {
  auto num = [](int64_t v) { return std::to_string(v); };
  std::string s = "#include <cuda_fp16.h>\n" + device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(kern.threads) + ", " + num(kern.min_blocks) + ") " +
       kern.name + R"((
    const unsigned short* __restrict__ w, const float* __restrict__ x, float* __restrict__ y)" +
       (shape.skip_prompt_tiles ? ", const int* __restrict__ prompt" : "") + R"(, int n_tokens) {
)" +
       int_constants({{"kK", num(shape.k)},
                      {"kM", num(shape.m)},
                      {"kRows", num(shape.rows_per_warp)},
                      {"kWarps", num(shape.warps)}}) +
       (shape.tokens_per_block > 1 ? "\n  constexpr int kTokens = " + num(shape.tokens_per_block) + ";" : "") +
       R"(
  constexpr int kThreads = kWarps * 32;
  constexpr int kStride = )" +
       num(f16_row_stride(shape.k)) + R"(;
  constexpr int kChunks = kK / 64;
  constexpr int kGroups = kChunks / 4;
  constexpr int kVectorEnd = kChunks * 64;
)";
  return s;
}

// Several tokens per block: the weights loaded once per row and lane serve every token of the
// block; each (row, token) keeps the one-token kernel's two chains, folds and tree.
KernelSource emit_lm_head_f16_tokens(const LmHeadF16Shape& shape) {
  KernelSource kern = kernel_of(shape);
  std::string s = kernel_head(shape, kern);
  // Rows of a warp that share each widened x value (the most that divide rows_per_warp, up to 4).
  int row_set = 1;
  if (shape.rows_per_warp % 2 == 0) row_set = shape.rows_per_warp % 4 == 0 ? 4 : 2;
  s +=
      "  constexpr int kSet = " + std::to_string(row_set) + R"(;
  __shared__ __half xs[kTokens * kK];  // the block's rows of x rounded to F16 (spec 8.6), exactly as used
  const int tok0 = blockIdx.x * kTokens;
)" +
      (shape.skip_prompt_tiles
           ? R"(  // Whether every token of the tile is the prompt-mode head's (the step's input, read before the wait).
  bool all_prompt = true;
#pragma unroll
  for (int t = 0; t < kTokens; ++t) all_prompt = all_prompt && (tok0 + t >= n_tokens || prompt[tok0 + t] != 0);
)"
           : "") +
      pdl_early_text(shape.pdl, "  ") + pdl_wait_text(shape.pdl, "  ") +
      R"(  if (tok0 >= n_tokens) return;  // uniform over the block
)" +
      (shape.skip_prompt_tiles
           ? "  if (all_prompt) return;  // uniform over the block: emit_lm_head_f16_prompt writes these rows\n"
           : "") +
      R"(  const int n = n_tokens - tok0 < kTokens ? n_tokens - tok0 : kTokens;
  const int lane = threadIdx.x & 31;
  for (int i = threadIdx.x; i < kTokens * kK; i += kThreads) {
    xs[i] = __float2half_rn(i < n * kK ? x[(long long)tok0 * kK + i] : 0.0f);
  }
  __syncthreads();

  const int first_row = (blockIdx.y * kWarps + (threadIdx.x >> 5)) * kRows;
  // The warp's rows kSet at a time: each widened x value serves kSet rows' chains and each
  // widened weight kTokens tokens' (fewer shared loads and conversions per FMA). Every (row, token)
  // keeps its two chains in chunk order, as the one-token kernel.
#pragma unroll 1
  for (int r0 = 0; r0 < kRows; r0 += kSet) {
    if (first_row + r0 >= kM) break;  // uniform over the warp
    const unsigned short* wr[kSet];  // rows past the end load the last row and are never stored
#pragma unroll
    for (int r = 0; r < kSet; ++r) wr[r] = w + (long long)(first_row + r0 + r < kM ? first_row + r0 + r : kM - 1) * kStride;
    float chain_lo[kSet][kTokens], chain_hi[kSet][kTokens];
#pragma unroll
    for (int r = 0; r < kSet; ++r) {
#pragma unroll
      for (int t = 0; t < kTokens; ++t) chain_lo[r][t] = chain_hi[r][t] = 0.0f;
    }
    // Lane L's two halves of chunk c (elements 64c + L and 64c + 32 + L) of each row into every
    // token's chains.
    auto step = [&](const unsigned int (&pair)[kSet], int base) {
      float w_lo[kSet], w_hi[kSet];
#pragma unroll
      for (int r = 0; r < kSet; ++r) {
        w_lo[r] = __half2float(__ushort_as_half((unsigned short)(pair[r] & 0xffffu)));
        w_hi[r] = __half2float(__ushort_as_half((unsigned short)(pair[r] >> 16)));
      }
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        const float x_lo = __half2float(xs[t * kK + base]);
        const float x_hi = __half2float(xs[t * kK + base + 32]);
#pragma unroll
        for (int r = 0; r < kSet; ++r) {
          chain_lo[r][t] = __fmaf_rn(w_lo[r], x_lo, chain_lo[r][t]);
          chain_hi[r][t] = __fmaf_rn(w_hi[r], x_hi, chain_hi[r][t]);
        }
      }
    };
#pragma unroll 1
    for (int g = 0; g < kGroups; ++g) {
      uint4 packed[kSet];
#pragma unroll
      for (int r = 0; r < kSet; ++r) packed[r] = __ldg(reinterpret_cast<const uint4*>(wr[r] + g * 256) + lane);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        unsigned int pair[kSet];
#pragma unroll
        for (int r = 0; r < kSet; ++r) pair[r] = j == 0 ? packed[r].x : j == 1 ? packed[r].y : j == 2 ? packed[r].z : packed[r].w;
        step(pair, 64 * (4 * g + j) + lane);
      }
    }
#pragma unroll
    for (int c = kGroups * 4; c < kChunks; ++c) {
      unsigned int pair[kSet];
#pragma unroll
      for (int r = 0; r < kSet; ++r) pair[r] = __ldg(reinterpret_cast<const unsigned int*>(wr[r] + c * 64) + lane);
      step(pair, 64 * c + lane);
    }
#pragma unroll
    for (int r = 0; r < kSet; ++r) {
      const int row = first_row + r0 + r;
      if (row >= kM) break;  // uniform over the warp
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        if (t >= n) break;  // uniform over the block
        // As the one-token kernel: registers 0 += 2 and 1 += 3, then 0 += 1, then the lane tree.
        const float v = bn_f16_dot_fold(chain_lo[r][t], chain_hi[r][t]);
        if (lane == 0) {
          double sum = (double)v;
          for (int k = kVectorEnd; k < kK; ++k) {
            sum = __dadd_rn(sum, (double)__fmul_rn(__half2float(__ushort_as_half(wr[r][k])), __half2float(xs[t * kK + k])));
          }
          y[(long long)(tok0 + t) * kM + row] = __double2float_rn(sum);
        }
      }
    }
  }
}
)";
  kern.source = std::move(s);
  return kern;
}

}  // namespace

KernelSource emit_lm_head_f16(const LmHeadF16Shape& shape) {
  if (shape.k < 1 || shape.k > 12288 || shape.m < 1) throw std::invalid_argument("emit_lm_head_f16: bad shape");
  if (shape.rows_per_warp < 1 || shape.warps < 1 || shape.warps > 32 || shape.tokens_per_block < 1 ||
      shape.tokens_per_block > 8 || shape.tokens_per_block * shape.k > 24576) {
    throw std::invalid_argument("emit_lm_head_f16: bad tiling");
  }
  if (shape.skip_prompt_tiles && shape.tokens_per_block == 1) {
    throw std::invalid_argument("emit_lm_head_f16: skip_prompt_tiles needs tiles of several tokens");
  }
  if (shape.tokens_per_block > 1 && lm_head_f16_row_blocks(shape) > 65535) {  // CUDA's limit on grid.y
    throw std::invalid_argument("emit_lm_head_f16: too many row blocks for grid.y; raise rows_per_warp");
  }
  if (shape.tokens_per_block > 1) return emit_lm_head_f16_tokens(shape);
  KernelSource kern = kernel_of(shape);
  std::string s = kernel_head(shape, kern);
  s += R"(  __shared__ float xs[kK];
)" + pdl_early_text(shape.pdl, "  ") +
       pdl_wait_text(shape.pdl, "  ") + R"(  const int token = blockIdx.y;
  if (token >= n_tokens) return;  // uniform over the block
  const int lane = threadIdx.x & 31;
  const float* xt = x + (long long)token * kK;
  // The decode path rounds the activations to F16 before the dot products (spec 8.6).
  for (int i = threadIdx.x; i < kK; i += kThreads) xs[i] = __half2float(__float2half_rn(xt[i]));
  __syncthreads();

  const int first_row = (blockIdx.x * kWarps + (threadIdx.x >> 5)) * kRows;
#pragma unroll 1
  for (int r = 0; r < kRows; ++r) {
    const int row = first_row + r;
    if (row >= kM) break;  // uniform over the warp
    const unsigned short* wr = w + (long long)row * kStride;
    float chain_lo = 0.0f;  // element 64c + lane: register lane / 16, lane lane % 16
    float chain_hi = 0.0f;  // element 64c + 32 + lane: register lane / 16 + 2
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      const uint4 packed = __ldg(reinterpret_cast<const uint4*>(wr + g * 256) + lane);
      const unsigned int pair[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int base = 64 * (4 * g + j) + lane;
        chain_lo = __fmaf_rn(__half2float(__ushort_as_half((unsigned short)(pair[j] & 0xffffu))), xs[base], chain_lo);
        chain_hi = __fmaf_rn(__half2float(__ushort_as_half((unsigned short)(pair[j] >> 16))), xs[base + 32], chain_hi);
      }
    }
#pragma unroll
    for (int c = kGroups * 4; c < kChunks; ++c) {
      const unsigned int pair = __ldg(reinterpret_cast<const unsigned int*>(wr + c * 64) + lane);
      const int base = 64 * c + lane;
      chain_lo = __fmaf_rn(__half2float(__ushort_as_half((unsigned short)(pair & 0xffffu))), xs[base], chain_lo);
      chain_hi = __fmaf_rn(__half2float(__ushort_as_half((unsigned short)(pair >> 16))), xs[base + 32], chain_hi);
    }
    // Registers 0 += 2 and 1 += 3 (lanes 0-15 hold register 0 / 2, lanes 16-31 register 1 / 3),
    // then 0 += 1, then the tree sum over lanes i + 8, i + 4, i + 2, i + 1.
    float v = __fadd_rn(chain_lo, chain_hi);
    v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, 16));
#pragma unroll
    for (int offset = 8; offset > 0; offset >>= 1) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, offset));
    if (lane == 0) {
      double sum = (double)v;
      for (int k = kVectorEnd; k < kK; ++k) {
        sum = __dadd_rn(sum, (double)__fmul_rn(__half2float(__ushort_as_half(wr[k])), xs[k]));
      }
      y[(long long)token * kM + row] = __double2float_rn(sum);
    }
  }
}
)";
  kern.source = std::move(s);
  return kern;
}

}  // namespace bitnet::codegen_cuda
