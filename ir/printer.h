// The textual form of a graph: stable and diff-friendly (one node per line, attributes
// in table order, floats in their shortest exact form). Golden tests compare it.
#pragma once

#include "ir/graph.h"

#include <string>

namespace bitnet::ir {

std::string print(const Graph& graph);
std::string print_node(const Graph& graph, const Node& node);

}  // namespace bitnet::ir
