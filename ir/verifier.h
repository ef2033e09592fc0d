// The verifier: operand counts and definitions (SSA, topological order, hence acyclic),
// attributes against the op table, types against each op's rule, unique names, outputs.
#pragma once

#include "ir/graph.h"

namespace bitnet::ir {

Status verify(const Graph& graph);

// Pieces the builder also uses while constructing a node.
Status verify_node_shape(const Node& node, ValueId first_undefined);  // operand count/ids, attributes
Status verify_weight_type(const Node& node, const Type& type);

}  // namespace bitnet::ir
