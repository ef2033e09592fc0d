// The kernel emitters, one function per kernel family; emitters.cpp maps ops to them.
// Each writes the body of `kb.fn` for `kb.desc` (see kernel_builder.h and schema/abi.h for
// the buffers they read and write) and returns false with a message when it cannot.
#pragma once

#include "codegen_cpu/kernel_builder.h"

namespace bitnet::codegen {

bool emit_elementwise(KernelBuilder& kb, std::string* error);    // mul, add, silu, relu2, gelu
bool emit_matmul_family(KernelBuilder& kb, std::string* error);  // matmul, matmul_cat, matmul_add, gated_ffn
bool emit_embed(KernelBuilder& kb, std::string* error);          // embed (every weight dtype)
bool emit_norm(KernelBuilder& kb, std::string* error);           // rms_norm, norm, norm_quantize, quantize_i8
bool emit_rope(KernelBuilder& kb, std::string* error);           // rope
bool emit_softmax(KernelBuilder& kb, std::string* error);        // softmax
bool emit_attention(KernelBuilder& kb, std::string* error);      // attention, rope_attention

}  // namespace bitnet::codegen
