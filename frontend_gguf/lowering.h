// GGUF -> IR: builds the forward graph of a supported architecture (llama, bitnet,
// bitnet-25 / bitnet-b1.58) from the model's hyper-parameters and tensors, exactly as
// the reference graph builders do (spec section 7). Weights become `weight` nodes that
// name their GGUF tensor; nothing is read or copied here.
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/model_config.h"
#include "ir/graph.h"

#include <optional>

namespace bitnet::gguf {

struct LoweringOptions {
  // Logits for every token of a call (eval, cross-validation) instead of only the last
  // one (generation).
  bool all_logits = false;
};

// The IR dtype of a GGUF tensor type, when the IR can hold it.
std::optional<ir::DType> ir_dtype(GgmlType type);

// Fails with a message naming the key or tensor when the model is unsupported,
// incomplete or inconsistent, or holds tensors the graph would silently ignore.
Expected<ir::Graph> lower_to_ir(const GgufFile& file, const LoweringOptions& options = {});
Expected<ir::Graph> lower_to_ir(const GgufFile& file, const ModelConfig& config, const LoweringOptions& options);

}  // namespace bitnet::gguf
