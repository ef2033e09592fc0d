// Decode attention over the F16 KV cache (spec 8.4, decode mode), GQA, in two launches (three
// with separate_softmax):
//   scores:     s[h][j] = vec_dot_f16(K_j, f16(q_h)) for every cached position j <= pos, split over
//               the context (blocks of 32 positions per kv head, a block taking one chunk or
//               striding over several; the kv head's K row is loaded once for all query heads
//               of its group);
//   softmax_pv: per query head, softmax(s * 1/sqrt(head_dim)) recomputed by each block of the head
//               (it is cheap next to the V stream), p rounded to F16, then o[h][d] =
//               vec_dot_f16(V_d over the padded window, p), dims_per_warp output elements per
//               warp whose V loads are issued together, 16 chunks of 64 cells at a time (the
//               first batch before the softmax, whose work hides its latency).
// The probabilities of softmax_pv live in shared memory, which holds a row of at most
// kMaxSharedSoftmaxCells. Above that (or when asked), softmax is a launch of its own, one block per
// head, that writes the probabilities over the scores row; softmax_pv then only multiplies them
// by V, reading them from global memory (L2). Same bits either way, at any context length.
// Every dot product keeps ggml_vec_dot_f16's own FMA chains, folds and tree (bit-identical to
// ref::vec_dot_f16); the causal window is ref::padded_kv_length(pos + 1, n_ctx), masked cells
// give exactly 0 as in the reference. The one reordering: the softmax denominator's 16-lane block
// sums (each bit-identical) are added in double in a fixed tree instead of index order, which
// moves float(1 / sum) only when the double sum lies within ~n * 2^-53 relative of a float
// rounding boundary (as emit_rmsnorm_quant's sum of squares). Deterministic: no atomics.
// Not flash-decoding: the V pass is split over output elements, not over the context, so that
// each output keeps the reference's single FMA chain per lane (a split would change its bits).
// Long contexts still have parallelism: n_head * head_dim / dims_per_warp warps, each streaming
// its V rows with kPerWarp * 32 loads in flight.
#pragma once

#include <cstdint>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

// The longest row softmax_pv's shared memory holds (32 KiB of floats); longer caches need
// AttentionDecodeShape::separate_softmax.
inline constexpr int64_t kMaxSharedSoftmaxCells = 8192;
// The most cells a cache may hold (the CLI's context limit; cell indices stay in int).
inline constexpr int64_t kMaxAttentionCells = int64_t{1} << 20;

struct AttentionDecodeShape {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;  // n_head % n_head_kv == 0; query head h uses kv head h / (n_head / n_head_kv)
  int64_t head_dim = 0;   // <= 256
  int64_t n_ctx = 0;      // cache cells, % 32 == 0, <= kMaxAttentionCells
  int warps = 8;
  int positions_per_warp = 4;  // scores kernel
  // Scores kernel blocks per kv head and token (grid.x): 0 = one per chunk of warps *
  // positions_per_warp cells, covering the whole cache; else at most that many, each taking chunks
  // blockIdx.x, blockIdx.x + gridDim.x, ... up to the token's position. A batched step sets it:
  // there the grid is also multiplied by the tokens, and blocks past every token's position would
  // otherwise outnumber the working ones by n_ctx / (pos + 1).
  int position_blocks = 0;
  // The scores kernel does rope_kv's work for its kv head first (one token only): the group's
  // query heads rotated into shared memory, and the rotated key and the value appended at cell pos
  // by the block whose chunks hold it, saving a launch per layer. Its signature is then
  // (const float* qkv, const float* rope_cos, const float* rope_sin, const int* pos,
  //  unsigned short* k_cache, unsigned short* v_cache, float* scores), with qkv and the tables as
  // emit_rope_kv takes them.
  bool fuse_rope = false;
  // The softmax_pv kernel's last block to finish normalises and quantizes the attention output
  // row (attn_sub_norm) for the o GEMV (emit_block_norm.h; one token only): its signature gains
  // tail_norm_parameters() after `out`.
  bool tail_norm = false;
  float norm_eps = 1e-5f;
  int dims_per_warp = 2;  // softmax_pv kernel
  // The softmax as its own launch (emit_attention_softmax), writing the probabilities over the
  // scores; softmax_pv then reads them from there. Needed above kMaxSharedSoftmaxCells.
  bool separate_softmax = false;
  PdlMode pdl = PdlMode::kOff;  // programmatic dependent launch points (kernel_source.h)
  // Several tokens per launch: token t = blockIdx.z, at position pos_ptr[t], with q16, scores and
  // out rows t and the caches of sequence seq[t] (one region of n_ctx cells per sequence, as
  // RopeKvShape::batched). Both signatures gain `const int* seq` at the end, softmax_pv's then
  // `const int* prompt`: per token, 0 = the one-token kernel's arithmetic (decode mode), else the
  // reference's prompt mode (its sequence has 2+ tokens in the call): F32 probabilities and
  // P·V by tinyBLAS (one 16-lane FMA chain per output, then the 16-lane tree), as ref::attention
  // with Mode::kPrompt.
  bool batched = false;
};

// Kernel signature: (const unsigned short* q16, const unsigned short* k_cache, const int* pos,
// float* scores). q16 from emit_rope_kv; scores: [n_head][n_ctx], entries j <= pos written. The
// kernel takes any grid.x (it strides over the chunks by gridDim.x); attention_scores_grid says
// the one for position_blocks.
KernelSource emit_attention_scores(const AttentionDecodeShape& shape);
Dim3 attention_scores_grid(const AttentionDecodeShape& shape);  // one token (batched: grid.z = the tokens)

// Kernel signature: (const float* scores, const unsigned short* v_cache, const int* pos, float* out)
// out: [n_head * head_dim], the heads concatenated (the attn_sub_norm input). With
// separate_softmax, `scores` holds emit_attention_softmax's probabilities instead.
KernelSource emit_attention_softmax_pv(const AttentionDecodeShape& shape);
Dim3 attention_softmax_pv_grid(const AttentionDecodeShape& shape);  // one token (batched: grid.z = the tokens)

// separate_softmax only. Kernel signature: (float* scores, const int* pos) (batched: the tokens'
// rows of scores and positions, then `const int* prompt` as softmax_pv's, no seq): each head's
// row of entries j < padded_kv_length(pos + 1) becomes the probabilities softmax_pv would compute
// (rounded to F16 in decode mode; masked cells 0), in place.
KernelSource emit_attention_softmax(const AttentionDecodeShape& shape);
Dim3 attention_softmax_grid(const AttentionDecodeShape& shape);  // one token (batched: grid.z = the tokens)

}  // namespace bitnet::codegen_cuda
