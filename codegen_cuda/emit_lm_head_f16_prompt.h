// The F16 LM head in the reference's prompt mode (spec 8.6: a call's rows of one sequence, two or
// more): tinyBLAS on the F32 activations as they are, one 16-lane FMA chain per output (lane l:
// elements l, l + 16, ...) then the 16-lane tree, as ref::tinyblas_dot_f16_f32. The batched step
// runs it after the decode-mode head (emit_lm_head_f16.h) over the same rows; it writes only the
// rows flagged as prompt mode, and a block whose tokens are all decode mode returns at once. The
// decode-mode head leaves the tiles whose tokens are all flagged (skip_prompt_tiles), so an
// all-logits call reads the head's weights once, not twice.
#pragma once

#include <cstdint>

#include "codegen_cuda/emit_lm_head_f16.h"
#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

// Kernel signature: (const unsigned short* w, const float* x, float* y, const int* prompt,
// int n_tokens): w as repack_f16() lays it out (the decode-mode head's buffer); x: [n_tokens][k];
// y: [n_tokens][m], row t written where prompt[t] != 0. Uses k (% 64 == 0), m, warps,
// rows_per_warp (a half-warp per weight row) and tokens_per_block (1..8: each weight load
// serves them all; x is read through L1, not staged).
KernelSource emit_lm_head_f16_prompt(const LmHeadF16Shape& shape);
// (ceil(n_tokens / tokens_per_block), row blocks): token tiles first, as the decode-mode head's.
Dim3 lm_head_f16_prompt_grid(const LmHeadF16Shape& shape, int64_t n_tokens);

}  // namespace bitnet::codegen_cuda
