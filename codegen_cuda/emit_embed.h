// Token embedding lookup for the decode step: a row of token_embd widened to float (spec 7:
// exact, no scaling), from an F16 table or a Q8_0 one (bitnet.cpp's embedding type when
// n_embd % 256 != 0). The token id is read from device memory, so a captured CUDA graph replays
// for any token.
#pragma once

#include <cstdint>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

struct EmbedShape {
  int64_t n_embd = 0;           // row length (% 32 == 0 for Q8_0)
  int64_t n_vocab = 0;          // rows; an id outside [0, n_vocab) writes zeros (never reads out of bounds)
  PdlMode pdl = PdlMode::kOff;  // programmatic dependent launch points (kernel_source.h)
};

// Kernel signature: (const unsigned short* table, const int* tokens, float* x, int n_tokens)
// table: [n_vocab][n_embd] F16 bits as stored in the GGUF; x: [n_tokens][n_embd].
// Grid embed_grid(n_tokens), kernel.threads threads. Bit-identical to ref::fp16_to_fp32.
KernelSource emit_embed_f16(const EmbedShape& shape);

// Kernel signature: (const unsigned char* table, const int* tokens, float* x, int n_tokens)
// table: [n_vocab] Q8_0 rows as stored. Each value is ggml's dequantize_row_q8_0, float(q) * d,
// bit for bit.
KernelSource emit_embed_q8_0(const EmbedShape& shape);

// One block per token.
Dim3 embed_grid(int64_t n_tokens);

}  // namespace bitnet::codegen_cuda
