// `bitnet convert HF_DIR -o OUT.gguf`: a Hugging Face checkpoint (BitNetForCausalLM in its BF16
// master or packed 1.58-bit form, BitnetForCausalLM, LlamaForCausalLM) written as a GGUF model
// this engine, llama.cpp and bitnet.cpp load. The safetensors are mapped; one tensor at a time
// is decoded and encoded, and the output is written atomically.
#pragma once

#include "convert/hf_tokenizer.h"
#include "ir/support/expected.h"

#include <string>
#include <vector>

namespace bitnet::convert {

struct ConvertOptions {
  // Projections: "i2_s" (the BitNet default), "tq2_0", "tq1_0", "f16" (the llama default),
  // "bf16", "f32" or "q8_0". Empty: the architecture's default.
  std::string type;
  // Token embedding (and untied output): "f16" (default), "bf16", "f32" or "q8_0".
  std::string embedding_type;
  std::string name;  // general.name; empty: the directory's name
};

struct ConvertReport {
  std::string hf_architecture, gguf_arch;
  std::string layout;  // "bf16 master weights (absmean ternarization)", "packed 1.58-bit", "dense"
  std::string weight_type, embedding_type;
  uint64_t n_tensors = 0, n_layer = 0, n_vocab = 0;
  TokenizerReport tokenizer;  // its notes are what the user should know
};

Expected<ConvertReport> convert_hf_checkpoint(const std::string& dir, const std::string& output,
                                              const ConvertOptions& options);

}  // namespace bitnet::convert
