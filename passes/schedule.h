// The schedule: how each node's work is split over the executor's thread pool. It is kept
// apart from the graph (what is computed) so a new split never touches a pass or the frontend.
#pragma once

#include "passes/pass_manager.h"

#include <optional>

namespace bitnet::passes {

// What a work unit [begin, end) of a kernel counts: the op table's split (ir/ops.h).
using WorkSplit = abi::WorkSplit;

struct NodeWork {
  WorkSplit split = WorkSplit::kTokens;
  ir::Dim units;  // static for rows and heads; the rows' dim (T or R of the call) for token splits
};

// The split of a node's kernel; nullopt for nodes that run no kernel (input.tokens, weights,
// select_rows, which is a row copy, and output markers).
std::optional<WorkSplit> split_of(const ir::Node& node);
// The split and its number of units.
std::optional<NodeWork> work_of(const ir::Graph& graph, const ir::Node& node);
// Units of a call with n_tokens tokens.
inline int64_t units_for(const NodeWork& w, int64_t n_tokens) {
  return w.units.is_symbolic() ? n_tokens : w.units.size;
}
// Nodes that run a kernel.
int64_t kernel_count(const ir::Graph& graph);

}  // namespace bitnet::passes
