// The opt-in requantized LM head (`--lm-head q8_0|q6_k`): the matmul that produces the logits
// reads a copy of its F16 weight in a block format instead (fewer bytes per decoded token;
// results change, so it is never the default). This rewrite only renames what the matmul
// reads; whoever runs the graph supplies the requantized bytes under the new name (the
// executor's extra weights, a plan's sidecar). The embed keeps reading the original tensor,
// so a tied table still looks tokens up exactly.
#pragma once

#include "ir/graph.h"
#include "ir/graph_properties.h"

#include <string>
#include <string_view>

namespace bitnet::passes {

struct LmHead {
  std::string source;  // the model file's tensor ("token_embd.weight" when tied)
  std::string tensor;  // what the matmul reads: `source`, or lm_head_tensor_name(source, dtype)
  ir::Type type;       // of `tensor`; [n_vocab, n_embd]
  bool retargeted() const { return tensor != source; }
};

// "token_embd.weight" + q8_0 -> "token_embd.weight@q8_0" ('@' never occurs in GGUF names the
// frontend lowers, so the name cannot collide with a tensor of the file).
std::string lm_head_tensor_name(const std::string& source, ir::DType dtype);

// The LM head of a graph: the matmul whose result the `logits` output marks, with a weight as
// its second operand. A retargeted head's source is the part of its name before the '@'.
Expected<LmHead> find_lm_head(const ir::Graph& graph);

// Points the LM-head matmul at a new weight node of `dtype` (same shape) inserted just before
// it. F16 (the default) and heads that are not F16 leave the graph unchanged: the returned
// head says which happened. Fails for a dtype other than f16, q8_0 or q6_k, or an F16 head
// whose rows are not whole blocks of `dtype` (q6_k needs a multiple of 256 columns).
Expected<LmHead> retarget_lm_head(ir::Graph& graph, ir::DType dtype);

}  // namespace bitnet::passes
