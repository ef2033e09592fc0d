// Token embedding lookup for the decode step: an F16 row of token_embd widened to float
// (spec 7: exact, no scaling). The token id is read from device memory, so a captured CUDA
// graph replays for any token.
#pragma once

#include <cstdint>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

struct EmbedF16Shape {
  int64_t n_embd = 0;           // row length
  int64_t n_vocab = 0;          // rows; an id outside [0, n_vocab) writes zeros (never reads out of bounds)
  PdlMode pdl = PdlMode::kOff;  // programmatic dependent launch points (kernel_source.h)
};

// Kernel signature: (const unsigned short* table, const int* tokens, float* x, int n_tokens)
// table: [n_vocab][n_embd] F16 bits as stored in the GGUF; x: [n_tokens][n_embd].
// Grid embed_f16_grid(n_tokens), kernel.threads threads. Bit-identical to ref::fp16_to_fp32.
KernelSource emit_embed_f16(const EmbedF16Shape& shape);
Dim3 embed_f16_grid(int64_t n_tokens);

}  // namespace bitnet::codegen_cuda
