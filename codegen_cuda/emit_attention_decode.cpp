#include "codegen_cuda/emit_attention_decode.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_block_norm.h"
#include "codegen_cuda/emit_common.h"

namespace bitnet::codegen_cuda {
namespace {

void validate(const AttentionDecodeShape& s) {
  if (s.n_head < 1 || s.n_head_kv < 1 || s.n_head % s.n_head_kv != 0 || s.head_dim < 1 || s.head_dim > 256 ||
      s.n_ctx < 32 || s.n_ctx % 32 != 0 || s.n_ctx > kMaxAttentionCells) {
    throw std::invalid_argument("attention_decode: bad shape");
  }
  if (s.n_ctx > kMaxSharedSoftmaxCells && !s.separate_softmax) {
    throw std::invalid_argument("attention_decode: more than " + std::to_string(kMaxSharedSoftmaxCells) +
                                " cells need separate_softmax");
  }
  if (s.warps < 1 || s.warps > 32 || s.positions_per_warp < 1 || s.dims_per_warp < 1 || s.position_blocks < 0) {
    throw std::invalid_argument("attention_decode: bad tiling");
  }
  // A batched step's tokens may attend to cells other tokens of the step append: rope_kv must
  // have run for all of them first. RoPE pairs need an even head_dim.
  if (s.fuse_rope && (s.batched || s.head_dim % 2 != 0)) throw std::invalid_argument("attention_decode: bad fuse_rope");
  if (s.tail_norm && s.batched) throw std::invalid_argument("attention_decode: a tail norm needs one token");
}

// The separate softmax kernel's warps (1024 threads).
constexpr int kSoftmaxWarps = 32;

std::string num(int64_t v) {
  return std::to_string(v);
}

// The shape's constants, kThreads where the kernel strides by it (unused constants fail the
// emulator's -Werror build).
std::string shape_constants(const AttentionDecodeShape& s, bool with_threads = true) {
  return int_constants({{"kHeads", num(s.n_head)},
                        {"kHeadsKv", num(s.n_head_kv)},
                        {"kHd", num(s.head_dim)},
                        {"kCtx", num(s.n_ctx)},
                        {"kWarps", num(s.warps)}}) +
         R"(
  constexpr int kGroup = kHeads / kHeadsKv;
)" + (with_threads ? "  constexpr int kThreads = kWarps * 32;\n" : "") +
         R"(  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
)";
}

// The 16 values probs[16 b ..] added as the reference's 16-lane block sum: level w adds element
// l + w to element l for w = 8, 4, 2, 1 (level w is t<w>_*, t1_0 the sum). Written out as
// scalars: as a loop over a local array, NVRTC kept the array in local memory in some kernels.
std::string block_tree_sum_text(const std::string& probs) {
  std::string text;
  for (int l = 0; l < 16; ++l) {
    text += "    const float t16_" + std::to_string(l) + " = " + probs + "[16 * b + " + std::to_string(l) + "];\n";
  }
  for (int width = 8, from = 16; width >= 1; from = width, width /= 2) {
    for (int l = 0; l < width; ++l) {
      const std::string at = "t" + std::to_string(from) + "_";
      text += "    const float t" + std::to_string(width) + "_" + std::to_string(l) + " = __fadd_rn(" + at +
              std::to_string(l) + ", " + at + std::to_string(l + width) + ");\n";
    }
  }
  return text;
}

// The softmax of row `srow` (scores) into `probs` (shared memory, or srow itself): w = float(s *
// scale) for cells <= pos, e = expf_approx(w - max), p = float(e * (1 / sum)), rounded to F16
// where `round_to_f16` (an expression of the kernel: decode mode), masked cells of the window 0.
// Needs srow, pos, n_kv, kScale and the s_max / s_sum arrays; ends with a barrier.
std::string softmax_text(const std::string& probs, const std::string& round_to_f16) {
  const std::string& p = probs;
  return R"(  // w = float(s * scale); cells past pos are masked (-inf), so they add nothing to the max.
  float m = -__int_as_float(0x7f800000);
  for (int j = threadIdx.x; j <= pos; j += kThreads) {
    const float w = __fmul_rn(srow[j], kScale);
    )" + p +
         R"([j] = w;
    m = fmaxf(m, w);
  }
  m = bn_warp_max_f32(m);
  if (lane == 0) s_max[warp] = m;
  __syncthreads();
  float row_max = s_max[0];
  for (int w = 1; w < kWarps; ++w) row_max = fmaxf(row_max, s_max[w]);
  // e = expf_approx(w - max); a masked cell is expf_approx(-inf) = 0 exactly.
  for (int j = threadIdx.x; j < n_kv; j += kThreads) )" +
         p + "[j] = j <= pos ? bn_expf_approx(__fsub_rn(" + p + R"([j], row_max)) : 0.0f;
  __syncthreads();
  // The reference's 16-lane block sums (tree order i + 8, i + 4, i + 2, i + 1), added in double.
  double part = 0.0;
  for (int b = threadIdx.x; b < n_kv / 16; b += kThreads) {
)" + block_tree_sum_text(p) +
         R"(    part = __dadd_rn(part, (double)t1_0);
  }
  part = bn_warp_sum_f64(part);
  if (lane == 0) s_sum[warp] = part;
  __syncthreads();
  double total = s_sum[0];
  for (int w = 1; w < kWarps; ++w) total = __dadd_rn(total, s_sum[w]);
  const float inv = __double2float_rn(__ddiv_rn(1.0, total));
  // p = float(e * inv), rounded to F16 for the decode-mode vec_dot_f16 (spec 8.4); prompt mode
  // keeps it in F32 for tinyBLAS.
  for (int j = threadIdx.x; j < n_kv; j += kThreads) {
    const float pj = __fmul_rn()" +
         p + R"([j], inv);
    )" + p +
         "[j] = " + round_to_f16 + R"( ? __half2float(__float2half_rn(pj)) : pj;
  }
  __syncthreads();
)";
}

// Whether token bn_t runs in the reference's prompt mode (its sequence has two or more tokens in
// the call: F32 probabilities, tinyBLAS for P·V), read from the batched step's input; one token
// alone is decode mode.
std::string prompt_flag_text(const AttentionDecodeShape& s) {
  return s.batched ? "  const bool bn_prompt = prompt[bn_t] != 0;  // an input of the step\n"
                   : "  constexpr bool bn_prompt = false;\n";
}

std::string seq_param(const AttentionDecodeShape& s) {
  return s.batched ? ", const int* __restrict__ seq" : "";
}

}  // namespace

Dim3 attention_scores_grid(const AttentionDecodeShape& shape) {
  const int64_t per_block = static_cast<int64_t>(shape.warps) * shape.positions_per_warp;
  int64_t blocks = (shape.n_ctx + per_block - 1) / per_block;
  if (shape.position_blocks > 0) blocks = std::min<int64_t>(blocks, shape.position_blocks);
  return Dim3{static_cast<uint32_t>(blocks), static_cast<uint32_t>(shape.n_head_kv), 1};
}

Dim3 attention_softmax_pv_grid(const AttentionDecodeShape& shape) {
  const int64_t per_block = static_cast<int64_t>(shape.warps) * shape.dims_per_warp;
  return Dim3{static_cast<uint32_t>(shape.n_head), static_cast<uint32_t>((shape.head_dim + per_block - 1) / per_block),
              1};
}

KernelSource emit_attention_scores(const AttentionDecodeShape& shape) {
  validate(shape);
  KernelSource k;
  k.threads = shape.warps * 32;
  k.min_blocks = 1;
  k.name = kernel_name("bn_attn_scores", {{"h", shape.n_head},
                                          {"hkv", shape.n_head_kv},
                                          {"d", shape.head_dim},
                                          {"c", shape.n_ctx},
                                          {"w", shape.warps},
                                          {"p", shape.positions_per_warp}}) +
           (shape.batched ? "_b" : "") + (shape.fuse_rope ? "_rope" : "") + pdl_suffix(shape.pdl);
  // The fused form writes the K cache it reads: no __restrict__ const there, so that its loads
  // take the coherent path and see this block's own stores after the barrier.
  const std::string params = shape.fuse_rope ? R"(
    const float* __restrict__ qkv, const float* __restrict__ rope_cos, const float* __restrict__ rope_sin,
    const int* __restrict__ pos_ptr, unsigned short* k_cache, unsigned short* __restrict__ v_cache,
    float* __restrict__ scores)"
                                             : R"(
    const unsigned short* __restrict__ q16, const unsigned short* __restrict__ k_cache, const int* __restrict__ pos_ptr,
    float* __restrict__ scores)";
  std::string s = "#include <cuda_fp16.h>\n" + device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(k.threads) + ", 1) " + k.name + "(" + params +
       seq_param(shape) + R"() {
)" + shape_constants(shape) +
       "  constexpr int kPerWarp = " + num(shape.positions_per_warp) + R"(;
  constexpr int kEmbdKv = kHeadsKv * kHd;
  constexpr int kChunks = kHd / 64;
  constexpr int kVectorEnd = kChunks * 64;
  constexpr int kRegs = kChunks > 0 ? kChunks : 1;
  __shared__ float qs[kGroup * kHd];
)" + pdl_early_text(shape.pdl, "  ") +
       (shape.batched
            ? batched_token_text("blockIdx.z", {{"q16", "kHeads * kHd"}, {"scores", "(long long)kHeads * kCtx"}},
                                 {{"k_cache", "(long long)kCtx * kEmbdKv"}}, "  ")
            : "") +
       "  const int pos = *pos_ptr;  // an input of the step, read before the wait\n" + pdl_wait_text(shape.pdl, "  ") +
       R"(  constexpr int kPerBlock = kWarps * kPerWarp;
  const int g = blockIdx.y;
  if ((int)blockIdx.x * kPerBlock > pos || pos >= kCtx) return;  // uniform over the block: no cached cell here
)" +
       (shape.fuse_rope
            ? R"(  // rope_kv's work for this kv head, done here (emit_rope_kv, bit for bit): the group's query
  // heads rotated, rounded to F16 and widened; and, by the one block whose chunks hold pos, the
  // rotated key and the value appended at cell pos (read back below, after the barrier).
  constexpr int kHalf = kHd / 2;
  constexpr int kEmbd = kHeads * kHd;
  for (int i = threadIdx.x; i < kGroup * kHalf; i += kThreads) {
    const int hi = i / kHalf;
    const int p = i % kHalf;
    const float* src = qkv + (g * kGroup + hi) * kHd;
    float out0, out1;
    bn_rope_pair(src[p], src[p + kHalf], rope_cos[pos * kHalf + p], rope_sin[pos * kHalf + p], out0, out1);
    qs[hi * kHd + p] = __half2float(__float2half_rn(out0));
    qs[hi * kHd + p + kHalf] = __half2float(__float2half_rn(out1));
  }
  if ((int)blockIdx.x == (pos / kPerBlock) % (int)gridDim.x) {
    const float* src = qkv + kEmbd + g * kHd;
    unsigned short* dst = k_cache + (long long)pos * kEmbdKv + g * kHd;
    for (int p = threadIdx.x; p < kHalf; p += kThreads) {
      float out0, out1;
      bn_rope_pair(src[p], src[p + kHalf], rope_cos[pos * kHalf + p], rope_sin[pos * kHalf + p], out0, out1);
      dst[p] = __half_as_ushort(__float2half_rn(out0));
      dst[p + kHalf] = __half_as_ushort(__float2half_rn(out1));
    }
    for (int d = threadIdx.x; d < kHd; d += kThreads) {
      v_cache[(long long)(g * kHd + d) * kCtx + pos] = __half_as_ushort(__float2half_rn(qkv[kEmbd + kEmbdKv + g * kHd + d]));
    }
  }
)"
            : R"(  // The group's query heads (consecutive: heads g * kGroup ..), already F16, widened once.
  for (int i = threadIdx.x; i < kGroup * kHd; i += kThreads) {
    qs[i] = __half2float(__ushort_as_half(q16[g * kGroup * kHd + i]));
  }
)") + R"(  __syncthreads();
  // Chunks of kPerBlock cells: this block's first, then every gridDim.x-th up to pos.
#pragma unroll 1
  for (int first = blockIdx.x * kPerBlock; first <= pos; first += gridDim.x * kPerBlock) {
    const int j0 = first + warp * kPerWarp;
    if (j0 > pos) continue;  // uniform over the warp (no barrier in this loop)
    // The K rows of all of this warp's cells are loaded before the first product, so that their
    // memory latencies overlap (cells past pos load row pos and are never stored). Lane L owns
    // elements 64c + L and 64c + 32 + L: ggml_vec_dot_f16's chains (see bn_f16_dot_fold).
    float k_lo[kPerWarp][kRegs], k_hi[kPerWarp][kRegs];
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      const unsigned short* kr = k_cache + (long long)(j0 + i <= pos ? j0 + i : pos) * kEmbdKv + g * kHd;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        k_lo[i][c] = __half2float(__ushort_as_half(kr[64 * c + lane]));
        k_hi[i][c] = __half2float(__ushort_as_half(kr[64 * c + 32 + lane]));
      }
    }
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      const int j = j0 + i;
      if (j > pos) break;  // uniform over the warp
      const unsigned short* kr = k_cache + (long long)j * kEmbdKv + g * kHd;
      // The group's heads unrolled: their folds are independent, so their shuffles overlap.
#pragma unroll
      for (int hi = 0; hi < kGroup; ++hi) {
        const float* qh = qs + hi * kHd;
        float lo = 0.0f, up = 0.0f;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
          lo = __fmaf_rn(k_lo[i][c], qh[64 * c + lane], lo);
          up = __fmaf_rn(k_hi[i][c], qh[64 * c + 32 + lane], up);
        }
        const float v = bn_f16_dot_fold(lo, up);
        if (lane == 0) {
          // The n % 64 tail: float products added in double in index order, as the reference.
          double sum = (double)v;
          for (int e = kVectorEnd; e < kHd; ++e) {
            sum = __dadd_rn(sum, (double)__fmul_rn(__half2float(__ushort_as_half(kr[e])), qh[e]));
          }
          scores[(long long)(g * kGroup + hi) * kCtx + j] = __double2float_rn(sum);
        }
      }
    }
  }
}
)";
  k.source = std::move(s);
  return k;
}

Dim3 attention_softmax_grid(const AttentionDecodeShape& shape) {
  return Dim3{static_cast<uint32_t>(shape.n_head), 1, 1};
}

KernelSource emit_attention_softmax(const AttentionDecodeShape& shape) {
  validate(shape);
  if (!shape.separate_softmax) throw std::invalid_argument("attention_softmax: the shape has no separate softmax");
  // One block per head: its row is up to a million cells, read four times (from L2); all the
  // threads a block may have.
  KernelSource k;
  k.threads = kSoftmaxWarps * 32;
  k.min_blocks = 1;
  k.name = kernel_name("bn_attn_softmax", {{"h", shape.n_head}, {"d", shape.head_dim}, {"c", shape.n_ctx}}) +
           (shape.batched ? "_b" : "") + pdl_suffix(shape.pdl);
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  const std::string token_stride = num(shape.n_head) + "LL * kCtx";  // a batched token's rows
  std::string s = "#include <cuda_fp16.h>\n" + device_prelude();
  // Written in place: no __restrict__ const on `scores`, so that the loads see this block's stores.
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(k.threads) + ", 1) " + k.name +
       "(float* scores, const int* __restrict__ pos_ptr" + (shape.batched ? ", const int* __restrict__ prompt" : "") +
       ") {\n" + int_constants({{"kCtx", num(shape.n_ctx)}, {"kWarps", num(kSoftmaxWarps)}}) +
       "\n  constexpr float kScale = " + float_literal(scale) + R"(;
  constexpr int kThreads = kWarps * 32;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  __shared__ float s_max[kWarps];
  __shared__ double s_sum[kWarps];
)" + pdl_early_text(shape.pdl, "  ") +
       (shape.batched ? batched_token_text("blockIdx.z", {{"scores", token_stride.c_str()}}, {}, "  ") : "") +
       prompt_flag_text(shape) + "  const int pos = *pos_ptr;  // an input of the step, read before the wait\n" +
       pdl_wait_text(shape.pdl, "  ") +
       R"(  if (pos < 0 || pos >= kCtx) return;  // uniform over the grid
  int n_kv = (pos + 32) / 32 * 32;  // ref::padded_kv_length(pos + 1, n_ctx)
  n_kv = n_kv < kCtx ? n_kv : kCtx;
  float* srow = scores + (long long)blockIdx.x * kCtx;
)" + softmax_text("srow", "!bn_prompt") +
       "}\n";
  k.source = std::move(s);
  return k;
}

KernelSource emit_attention_softmax_pv(const AttentionDecodeShape& shape) {
  validate(shape);
  KernelSource k;
  k.threads = shape.warps * 32;
  k.min_blocks = 1;
  k.name = kernel_name("bn_attn_softmax_pv", {{"h", shape.n_head},
                                              {"hkv", shape.n_head_kv},
                                              {"d", shape.head_dim},
                                              {"c", shape.n_ctx},
                                              {"w", shape.warps},
                                              {"r", shape.dims_per_warp}}) +
           (shape.batched ? "_b" : "") + (shape.separate_softmax ? "_gp" : "") + (shape.tail_norm ? "_tail" : "") +
           pdl_suffix(shape.pdl);
  // As ref::attention: 1.0f / sqrtf(float(head_dim)) in float, applied to the raw q.k.
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  std::string s = "#include <cuda_fp16.h>\n" + device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(k.threads) + ", 1) " + k.name + R"((
    const float* __restrict__ scores, const unsigned short* __restrict__ v_cache, const int* __restrict__ pos_ptr,
    float* __restrict__ out)" +
       (shape.tail_norm ? tail_norm_parameters() : std::string()) + seq_param(shape) +
       (shape.batched ? ", const int* __restrict__ prompt" : "") + R"() {
)" + shape_constants(shape, !shape.separate_softmax) +
       "  constexpr int kPerWarp = " + num(shape.dims_per_warp) + ";\n" +
       (shape.separate_softmax ? "" : "  constexpr float kScale = " + float_literal(scale) + ";\n") +
       (shape.separate_softmax ? "" : R"(  __shared__ float p_s[kCtx];
  __shared__ float s_max[kWarps];
  __shared__ double s_sum[kWarps];
)") + pdl_early_text(shape.pdl, "  ") +
       (shape.batched
            ? batched_token_text("blockIdx.z", {{"scores", "(long long)kHeads * kCtx"}, {"out", "kHeads * kHd"}},
                                 {{"v_cache", "(long long)kHeadsKv * kHd * kCtx"}}, "  ")
            : "") +
       prompt_flag_text(shape) + "  const int pos = *pos_ptr;  // an input of the step, read before the wait\n" +
       pdl_wait_text(shape.pdl, "  ") +
       R"(  const int h = blockIdx.x;
  const int g = h / kGroup;
  // Uniform over the grid: no block counts itself in for a tail norm either (whose output is then
  // left as it was, as `out` is; the host never sends such a position).
  if (pos < 0 || pos >= kCtx) return;
  // ref::padded_kv_length(pos + 1, n_ctx): the window the reference's softmax and V product span.
  int n_kv = (pos + 32) / 32 * 32;
  n_kv = n_kv < kCtx ? n_kv : kCtx;
  const float* srow = scores + (long long)h * kCtx;
)" + (shape.separate_softmax ? "  const float* p_s = srow;  // emit_attention_softmax's probabilities\n" : "") +
       R"(  // The V pass (below) reads chunks of 64 cells; chunks wholly past pos hold p = 0 and leave the
  // chains unchanged (fma(v, 0, acc) = acc), so they are skipped.
  const int n_chunks = n_kv / 64;
  const int live_chunks = n_chunks < pos / 64 + 1 ? n_chunks : pos / 64 + 1;
  // This warp's output elements d0 .. d0 + kPerWarp - 1 (none when d0 >= head_dim: uniform over
  // the warp; elements past head_dim load the last row and are never stored). Their V values are
  // loaded kBatch chunks at a time, every row's together, so that kPerWarp * kBatch * 2 loads per
  // lane are in flight at once; the first batch before the softmax (if any), under whose work it arrives.
  constexpr int kBatch = 16;
  const int d0 = (blockIdx.y * kWarps + warp) * kPerWarp;
  const bool has_rows = d0 < kHd;
  const unsigned short* vr[kPerWarp];
#pragma unroll
  for (int i = 0; i < kPerWarp; ++i) vr[i] = v_cache + (long long)(g * kHd + (d0 + i < kHd ? d0 + i : kHd - 1)) * kCtx;
  unsigned short v_lo[kPerWarp][kBatch], v_hi[kPerWarp][kBatch];
  auto load_batch = [&](int c0) {
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const bool live = c0 + b < live_chunks;  // uniform over the warp
#pragma unroll
      for (int i = 0; i < kPerWarp; ++i) {
        v_lo[i][b] = live ? vr[i][64 * (c0 + b) + lane] : (unsigned short)0;
        v_hi[i][b] = live ? vr[i][64 * (c0 + b) + 32 + lane] : (unsigned short)0;
      }
    }
  };
  if (has_rows && !bn_prompt) load_batch(0);  // (the prompt-mode path reads V its own way)

)" + (shape.separate_softmax ? std::string() : softmax_text("p_s", "!bn_prompt")) +
       R"(
  // Prompt mode: o[h][d] = tinyBLAS over the window on F32 p (spec 8.4): one 16-lane FMA chain
  // (lane l: cells l, l + 16, ...) then the 16-lane tree, a half-warp per output element. Cells
  // past pos hold p = 0 and leave a chain unchanged, so the chains stop at pos.
  if (has_rows && bn_prompt) {  // uniform over the block
    const int chain = lane & 15;
    const int half = lane >> 4;
#pragma unroll 1
    for (int i = 0; i < kPerWarp && d0 + i < kHd; i += 2) {  // uniform over the warp: both halves together
      const int d = d0 + i + half;
      const bool stores = i + half < kPerWarp && d < kHd;
      const unsigned short* row = v_cache + (long long)(g * kHd + (d < kHd ? d : kHd - 1)) * kCtx;
      float acc = 0.0f;
#pragma unroll 4
      for (int j = chain; j <= pos; j += 16) acc = __fmaf_rn(__half2float(__ushort_as_half(row[j])), p_s[j], acc);
      acc = bn_tree_sum16(acc);
      if (chain == 0 && stores) out[h * kHd + d] = acc;
    }
  }
  // Decode mode: o[h][d] = vec_dot_f16(V row (g, d) over the window, p): each row's two chains in chunk order.
  if (has_rows && !bn_prompt) {  // uniform over the warp
    float lo[kPerWarp], up[kPerWarp];
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) lo[i] = up[i] = 0.0f;
#pragma unroll 1
    for (int c0 = 0; c0 < live_chunks; c0 += kBatch) {
      if (c0 > 0) load_batch(c0);
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int c = c0 + b;
        if (c >= live_chunks) break;  // uniform over the warp
        const float p_lo = p_s[64 * c + lane], p_hi = p_s[64 * c + 32 + lane];
#pragma unroll
        for (int i = 0; i < kPerWarp; ++i) {
          lo[i] = __fmaf_rn(__half2float(__ushort_as_half(v_lo[i][b])), p_lo, lo[i]);
          up[i] = __fmaf_rn(__half2float(__ushort_as_half(v_hi[i][b])), p_hi, up[i]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kPerWarp; ++i) {
      const int d = d0 + i;
      if (d >= kHd) break;  // uniform over the warp
      const float v = bn_f16_dot_fold(lo[i], up[i]);
      if (lane == 0) {
        double sum = (double)v;
        for (int e = n_chunks * 64; e < n_kv && e <= pos; ++e) {
          sum = __dadd_rn(sum, (double)__fmul_rn(__half2float(__ushort_as_half(vr[i][e])), p_s[e]));
        }
        out[h * kHd + d] = __double2float_rn(sum);
      }
    }
  }
)" + (shape.tail_norm ? tail_norm_text("kHeads * kHd", "out", shape.norm_eps) : std::string()) +
       "}\n";
  k.source = std::move(s);
  return k;
}

}  // namespace bitnet::codegen_cuda
