// The F16 x F32 GEMV of the tied LM head in decode mode (spec 8.4, 8.6): each output is
// ggml_vec_dot_f16(W row, f16(x)) reproduced lane for lane, one warp per row.
#pragma once

#include <cstdint>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

struct LmHeadF16Shape {
  int64_t k = 0;          // n_embd; <= 12288 (x is staged in 48 KB of shared memory)
  int64_t m = 0;          // vocabulary rows
  int rows_per_warp = 4;  // processed one after another, sharing the staged x
  int warps = 8;
  PdlMode pdl = PdlMode::kOff;  // programmatic dependent launch points (kernel_source.h)
  // Tokens per block (1..8; tokens * k <= 24576): each weight load serves them all, each token
  // keeping its own chains (the same arithmetic per row and token). Above 1 the block's x rows
  // are staged as F16 (exact: the decode path rounds them to F16 anyway).
  int tokens_per_block = 1;
  // Tiles of several tokens only: the signature gains `const int* prompt` (one flag per token)
  // before n_tokens, and a block whose tokens are all flagged returns at once. The batched step
  // sets it: emit_lm_head_f16_prompt computes those rows after this kernel, so an all-logits call
  // (every row in prompt mode) does not stream the head's weights twice.
  bool skip_prompt_tiles = false;
};

// Kernel signature: (const unsigned short* w, const float* x, float* y, int n_tokens)
// (skip_prompt_tiles: (w, x, y, const int* prompt, int n_tokens))
// w: repack_f16() halves (row stride f16_row_stride(k)); x: [n_tokens][k]; y: [n_tokens][m].
// Grid (row blocks, n_tokens) for one token per block; (ceil(n_tokens / tokens_per_block), row
// blocks) above, token tiles first so that the blocks reading the same rows run together.
// x is rounded to F16 as the reference's decode path does; lane L keeps
// the FMA chains of elements 64c + L and 64c + 32 + L, which are exactly ggml_vec_dot_f16's
// chains (register L / 16 and L / 16 + 2, lane L % 16); the folds and the 16-lane tree sum run
// in its order, the n % 64 tail in double: bit-identical to ref::vec_dot_f16.
KernelSource emit_lm_head_f16(const LmHeadF16Shape& shape);
Dim3 lm_head_f16_grid(const LmHeadF16Shape& shape, int64_t n_tokens);
// Blocks of warps * rows_per_warp vocabulary rows covering m (the grids' row axis).
int64_t lm_head_f16_row_blocks(const LmHeadF16Shape& shape);

}  // namespace bitnet::codegen_cuda
