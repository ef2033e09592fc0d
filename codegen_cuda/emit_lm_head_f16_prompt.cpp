#include "codegen_cuda/emit_lm_head_f16_prompt.h"

#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"
#include "codegen_cuda/repack.h"

namespace bitnet::codegen_cuda {

Dim3 lm_head_f16_prompt_grid(const LmHeadF16Shape& shape, int64_t n_tokens) {
  const auto rows = static_cast<uint32_t>(lm_head_f16_row_blocks(shape));
  const auto tiles = static_cast<uint32_t>((n_tokens + shape.tokens_per_block - 1) / shape.tokens_per_block);
  return Dim3{tiles, rows, 1};
}

KernelSource emit_lm_head_f16_prompt(const LmHeadF16Shape& shape) {
  if (shape.k < 64 || shape.k % 64 != 0 || shape.m < 1 || shape.warps < 1 || shape.warps > 32 ||
      shape.rows_per_warp < 2 || shape.rows_per_warp % 2 != 0 || shape.tokens_per_block < 1 ||
      shape.tokens_per_block > 8) {
    throw std::invalid_argument("lm_head_f16_prompt: bad shape");
  }
  auto num = [](int64_t v) { return std::to_string(v); };
  KernelSource kern;
  kern.threads = shape.warps * 32;
  kern.min_blocks = 1;
  kern.name = kernel_name("bn_lm_head_f16_prompt", {{"k", shape.k},
                                                    {"m", shape.m},
                                                    {"r", shape.rows_per_warp},
                                                    {"w", shape.warps},
                                                    {"t", shape.tokens_per_block}}) +
              pdl_suffix(shape.pdl);
  std::string s = "#include <cuda_fp16.h>\n" + device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(kern.threads) + ", 1) " + kern.name + R"((
    const unsigned short* __restrict__ w, const float* __restrict__ x, float* __restrict__ y,
    const int* __restrict__ prompt, int n_tokens) {
)" +
       int_constants({{"kK", num(shape.k)},
                      {"kM", num(shape.m)},
                      {"kRows", num(shape.rows_per_warp)},
                      {"kWarps", num(shape.warps)},
                      {"kTokens", num(shape.tokens_per_block)},
                      {"kStride", num(f16_row_stride(shape.k))}}) +
       R"(
  constexpr int kGroupChunks = kK / 64 / 4 * 4;  // chunks in repack_f16's groups of 4
  const int t0 = blockIdx.x * kTokens;
  // Which of this tile's tokens are prompt mode (the step's input, read before the wait).
  bool mine[kTokens];
  bool any = false;
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    mine[t] = t0 + t < n_tokens && prompt[t0 + t] != 0;
    any = any || mine[t];
  }
)" + pdl_early_text(shape.pdl, "  ") +
       pdl_wait_text(shape.pdl, "  ") +
       R"(  if (!any) return;  // uniform over the block: the decode-mode head's rows stand

  const int chain = threadIdx.x & 15;  // the chain this thread keeps: elements e = chain (mod 16)
  const int half = (threadIdx.x >> 4) & 1;
  const int first_row = (blockIdx.y * kWarps + (threadIdx.x >> 5)) * kRows;
  const float* xt[kTokens];
#pragma unroll
  for (int t = 0; t < kTokens; ++t) xt[t] = x + (long long)(t0 + t < n_tokens ? t0 + t : t0) * kK;
#pragma unroll 1
  for (int r = half; r < kRows; r += 2) {
    const int row = first_row + r;
    if (first_row + (r & ~1) >= kM) break;  // uniform over the warp: both halves stop together
    const unsigned short* wr = w + (long long)(row < kM ? row : kM - 1) * kStride;
    float acc[kTokens];
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;
#pragma unroll 4
    for (int e = chain; e < kK; e += 16) {
      // Element e of the row in repack_f16's layout: chunk c, lane l, half h.
      const int c = e >> 6, l = e & 31, h = (e >> 5) & 1;
      const int at = c < kGroupChunks ? (c >> 2) * 256 + l * 8 + 2 * (c & 3) + h : c * 64 + 2 * l + h;
      const float wv = __half2float(__ushort_as_half(wr[at]));
#pragma unroll
      for (int t = 0; t < kTokens; ++t) acc[t] = __fmaf_rn(wv, xt[t][e], acc[t]);
    }
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      const float v = bn_tree_sum16(acc[t]);
      if (chain == 0 && row < kM && mine[t]) y[(long long)(t0 + t) * kM + row] = v;
    }
  }
}
)";
  kern.source = std::move(s);
  return kern;
}

}  // namespace bitnet::codegen_cuda
