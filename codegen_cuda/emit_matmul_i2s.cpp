#include "codegen_cuda/emit_matmul_i2s.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_block_norm.h"
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

namespace {

bool gated(MatmulI2sEpilogue e) {
  return e == MatmulI2sEpilogue::kGluRelu2 || e == MatmulI2sEpilogue::kGluSilu;
}

std::string epilogue_suffix(MatmulI2sEpilogue e) {
  switch (e) {
    case MatmulI2sEpilogue::kStore:
      return "";
    case MatmulI2sEpilogue::kResidualAdd:
      return "_add";
    case MatmulI2sEpilogue::kGluRelu2:
      return "_relu2";
    case MatmulI2sEpilogue::kGluSilu:
      return "_silu";
  }
  return "";
}

}  // namespace

std::string matmul_i2s_epilogue_text(const MatmulI2sShape& shape) {
  const bool fused = matmul_i2s_fused(shape);
  const std::string seg0 = std::to_string(shape.segment_end[0] != 0 ? shape.segment_end[0] : shape.m);
  const std::string seg1 = std::to_string(shape.segment_end[0] != 0 ? shape.segment_end[1] : shape.m);
  std::string s;
  // Spec 8.2 step 5: (D - S) exact in int32, then / s, then * tensor scale, each rounded.
  s += std::string("  auto bn_value = [&](int d, ") + (shape.fuse_norm ? "int" : "int tok") +
       ", float scale) {\n"
       "    return __fmul_rn(__fdiv_rn(__int2float_rn(d - " +
       std::string(shape.fuse_norm ? "s_act_sum" : "act_sum[tok]") + "), " +
       (shape.fuse_norm ? "s_act_scale" : "act_scale[tok]") +
       "), scale);\n"
       "  };\n";
  if (gated(shape.epilogue)) {
    const std::string act = shape.epilogue == MatmulI2sEpilogue::kGluRelu2
                                ? "const float r = g > 0.0f ? g : 0.0f; const float a = __fmul_rn(r, r);"
                                : "const float a = bn_silu(g);";
    s += "  auto bn_out_pair = [&](int d_gate, int d_up, int row, int tok) {\n"
         "    const float g = bn_value(d_gate, tok, w_scales[0]);\n"
         "    const float u = bn_value(d_up, tok, w_scales[1]);\n"
         "    " +
         act +
         "\n"
         "    y[(long long)tok * (kM / 2) + row / 2] = __fmul_rn(a, u);\n"
         "  };\n";
    return s;
  }
  if (!fused) {
    s += "  auto bn_row_scale = [&](int) { return w_scale; };\n";
  } else {
    s += "  auto bn_row_scale = [&](int row) { return row < " + seg0 + " ? w_scales[0] : row < " + seg1 +
         " ? w_scales[1] : w_scales[2]; };\n";
  }
  if (shape.epilogue == MatmulI2sEpilogue::kResidualAdd) {
    s += "  auto bn_out = [&](int d, int row, int tok) {\n"
         "    float* out = y + (long long)tok * kM + row;\n"
         "    *out = __fadd_rn(*out, bn_value(d, tok, bn_row_scale(row)));\n"
         "  };\n";
  } else {
    s += "  auto bn_out = [&](int d, int row, int tok) {\n"
         "    y[(long long)tok * kM + row] = bn_value(d, tok, bn_row_scale(row));\n"
         "  };\n";
  }
  return s;
}

bool matmul_i2s_fused(const MatmulI2sShape& shape) {
  return shape.epilogue != MatmulI2sEpilogue::kStore || shape.segment_end[0] != 0 || shape.fuse_norm;
}

namespace {

// The block's own RMSNorm + gain + int8 quantization of its token's row (emit_rmsnorm_quant's
// steps, spec 8.1 and 8.2 steps 1-3): the codes land in shared memory, the scale and code sum in
// s_act_scale / s_act_sum. x and gain are read three times (from L2): nothing is kept in registers.
std::string fused_norm_decls(const MatmulI2sShape& shape) {
  return R"(  constexpr float kEps = )" + float_literal(shape.norm_eps) + R"(;
  __shared__ __align__(16) signed char s_q[kK];
  __shared__ float s_act_scale;
  __shared__ int s_act_sum;
)";
}

// The fused norm, run by every thread of the block once its first weight loads are in flight
// (so that their memory latency overlaps the norm's): the codes land in shared memory.
std::string fused_norm_body() {
  return "{\n    const float* xt = x + (long long)blockIdx.y * kK;\n    " +
         block_norm_text({"kK", "xt[i]", "gain[i]", "s_q[i] = (signed char)r;", "",
                          "s_act_sum = codes;\n      s_act_scale = scale;", "s_norm"}) +
         "  }\n";
}

}  // namespace

void check_matmul_i2s_epilogue(const MatmulI2sShape& shape, const char* emitter) {
  if (gated(shape.epilogue) && (shape.m % 2 != 0 || shape.segment_end[0] != 0)) {
    throw std::invalid_argument(std::string(emitter) + ": a gated epilogue needs row pairs and no segments");
  }
  if (shape.segment_end[0] < 0 || shape.segment_end[1] < shape.segment_end[0] || shape.segment_end[1] > shape.m ||
      (shape.segment_end[0] == 0 && shape.segment_end[1] != 0)) {
    throw std::invalid_argument(std::string(emitter) + ": bad row segments");
  }
}

std::string matmul_i2s_name_suffix(const MatmulI2sShape& shape) {
  std::string s;
  if (shape.segment_end[0] != 0) {
    s += "_seg" + std::to_string(shape.segment_end[0]) + "_" + std::to_string(shape.segment_end[1]);
  }
  s += epilogue_suffix(shape.epilogue);
  if (shape.fuse_norm) s += "_norm";
  if (shape.tail_norm) s += "_tail";
  return s + pdl_suffix(shape.pdl);
}

std::string matmul_i2s_parameters(const MatmulI2sShape& shape) {
  const std::string tail = shape.tail_norm ? tail_norm_parameters() : "";
  return std::string("(\n    const unsigned int* __restrict__ w, ") +
         (matmul_i2s_fused(shape) ? "const float* __restrict__ w_scales" : "float w_scale") +
         (shape.fuse_norm ? R"(, const float* __restrict__ x,
    const float* __restrict__ gain, float* __restrict__ y)" +
                                tail + R"(, int n_tokens) {
)"
                          : R"(, const signed char* __restrict__ q,
    const float* __restrict__ act_scale, const int* __restrict__ act_sum, float* __restrict__ y)" +
                                tail + R"(, int n_tokens) {
)");
}

KernelSource emit_matmul_i2s(const MatmulI2sShape& shape) {
  if (shape.mma) return emit_matmul_i2s_mma(shape);
  if (shape.k <= 0 || shape.k % 128 != 0 || shape.m <= 0) throw std::invalid_argument("emit_matmul_i2s: bad shape");
  if (shape.tokens_per_block < 1 || shape.tokens_per_block > 8 || shape.rows_per_warp < 1 || shape.rows_per_warp > 4 ||
      shape.warps < 1 || shape.warps > 32 || shape.k_split < 1 || shape.warps % shape.k_split != 0 ||
      shape.k_split > matmul_i2s_k_steps(shape.k)) {
    throw std::invalid_argument("emit_matmul_i2s: bad tiling");
  }
  if (gated(shape.epilogue) && shape.rows_per_warp % 2 != 0) {
    throw std::invalid_argument("emit_matmul_i2s: a gated epilogue needs row pairs and no segments");
  }
  check_matmul_i2s_epilogue(shape, "emit_matmul_i2s");
  if (shape.tail_norm && (shape.tokens_per_block != 1 || shape.fuse_norm || shape.segment_end[0] != 0)) {
    throw std::invalid_argument("emit_matmul_i2s: a tail norm needs one token per block, no fused norm, no segments");
  }
  if (shape.fuse_norm && (shape.tokens_per_block != 1 || shape.k > 32768)) {
    throw std::invalid_argument("emit_matmul_i2s: a fused norm needs one token per block and k <= 32768");
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
  kern.name += matmul_i2s_name_suffix(shape);
  auto num = [](int64_t v) { return std::to_string(v); };
  const bool split = shape.k_split > 1;
  // Codes from global memory through the read-only path, or from the fused norm's shared array.
  const std::string act_load = shape.fuse_norm ? "reinterpret_cast<const int4*>(qtok[t])[chunk]"
                                               : "__ldg(reinterpret_cast<const int4*>(qtok[t]) + chunk)";
  std::string s = device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(kern.threads) + ", " + num(kern.min_blocks) + ") " +
       kern.name + matmul_i2s_parameters(shape) +
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
  if (shape.fuse_norm) s += fused_norm_decls(shape);
  // (A fused norm has barriers: every warp stays; rows past the end are clamped and never stored.)
  if (!split && !shape.fuse_norm && !shape.tail_norm) {
    s += "  if (row0 >= kM) return;  // uniform over the warp; no block-level barrier below\n";
  }
  s += R"(  const int tok0 = blockIdx.y * kTokens;

  // Rows and tokens past the end are clamped for loading (no divergence) and never stored.
  const unsigned int* wrow[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) wrow[r] = w + (long long)(row0 + r < kM ? row0 + r : kM - 1) * kWordsPerRow;
  const signed char* qtok[kTokens];
#pragma unroll
  for (int t = 0; t < kTokens; ++t) )" +
       std::string(shape.fuse_norm ? "qtok[t] = s_q;  // this block's own codes (one token)"
                                   : "qtok[t] = q + (long long)(tok0 + t < n_tokens ? tok0 + t : n_tokens - 1) * kK;") +
       R"(

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
)" + pdl_early_text(shape.pdl, "  ") +
       (shape.tokens_per_block > 2 ? pdl_wait_text(shape.pdl, "  ") : std::string()) +
       R"(#pragma unroll 1
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
)" +
       // With programmatic dependent launch (sm_90) the first weight loads are issued before this
       // kernel waits for its predecessor: the codes, scales and residual it reads come after.
       // (GEMM tiles of more than 2 tokens wait before their loop: in it the wait cost a register
       // and the t8 tile spilled.)
       (shape.tokens_per_block <= 2 && shape.pdl != PdlMode::kOff
            ? "    if (i0 == 0) {\n" + pdl_wait_text(shape.pdl, "      ") + "    }\n"
            : std::string()) +
       (shape.fuse_norm ? "    if (i0 == 0) " + fused_norm_body() : std::string()) +
       R"(#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      const int step = slice + (i0 + i) * kSplit;
      if (step < kTiles) {
        // A whole tile: lane's 16-byte load covers chunks lane + 32 j (j = 0..3).
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int chunk = step * kTileWords + j * 32 + lane;
#pragma unroll
          for (int t = 0; t < kTokens; ++t) {
            const int4 a = )" +
       act_load + R"(;
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
              const unsigned int word = j == 0 ? wv[i][r].x : j == 1 ? wv[i][r].y : j == 2 ? wv[i][r].z : wv[i][r].w;
              acc[r][t] = bn_dp4a_word(word, a, acc[r][t]);
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
            const int4 a = )" +
       act_load + R"(;
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
              acc[r][t] = bn_dp4a_word(wv[i][r].x, a, acc[r][t]);
            }
          }
        }
      }
    }
  }

)";
  s += matmul_i2s_epilogue_text(shape);
  if (!split && !gated(shape.epilogue)) {
    s += R"(#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      const int d = bn_warp_sum_i32(acc[r][t]);
      const int row = row0 + r;
      const int tok = tok0 + t;
      if (lane == 0 && row < kM && tok < n_tokens) bn_out(d, row, tok);
    }
  }
)";
  } else if (!split) {
    s += R"(#pragma unroll
  for (int r = 0; r < kRows; r += 2) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      const int d_gate = bn_warp_sum_i32(acc[r][t]);
      const int d_up = bn_warp_sum_i32(acc[r + 1][t]);
      const int row = row0 + r;
      const int tok = tok0 + t;
      if (lane == 0 && row < kM && tok < n_tokens) bn_out_pair(d_gate, d_up, row, tok);
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
)";
    if (!gated(shape.epilogue)) {
      s += R"(  for (int e = threadIdx.x; e < kGroups * kRows * kTokens; e += kWarps * 32) {
    const int g = e / (kRows * kTokens);
    const int rt = e % (kRows * kTokens);
    int d = 0;
#pragma unroll
    for (int p = 0; p < kSplit; ++p) d += s_part[g * kSplit + p][rt];
    const int row = (blockIdx.x * kGroups + g) * kRows + rt / kTokens;
    const int tok = tok0 + rt % kTokens;
    if (row < kM && tok < n_tokens) bn_out(d, row, tok);
  }
)";
    } else {
      s += R"(  for (int e = threadIdx.x; e < kGroups * (kRows / 2) * kTokens; e += kWarps * 32) {
    const int g = e / ((kRows / 2) * kTokens);
    const int pt = e % ((kRows / 2) * kTokens);
    const int r = 2 * (pt / kTokens);
    const int t = pt % kTokens;
    int d_gate = 0, d_up = 0;
#pragma unroll
    for (int p = 0; p < kSplit; ++p) {
      d_gate += s_part[g * kSplit + p][r * kTokens + t];
      d_up += s_part[g * kSplit + p][(r + 1) * kTokens + t];
    }
    const int row = (blockIdx.x * kGroups + g) * kRows + r;
    const int tok = tok0 + t;
    if (row < kM && tok < n_tokens) bn_out_pair(d_gate, d_up, row, tok);
  }
)";
    }
  }
  // The outputs are stored; the tail norm (if any), then the kernel's closing brace.
  if (shape.tail_norm) s += tail_norm_text(gated(shape.epilogue) ? "(kM / 2)" : "kM", "y", shape.norm_eps);
  s += "}\n";
  kern.source = std::move(s);
  return kern;
}

}  // namespace bitnet::codegen_cuda
