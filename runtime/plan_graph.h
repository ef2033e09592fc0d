// A plan's graph as an ir::Graph: every stored node rebuilt through ir::Graph::add, so
// operands, attributes and types are checked as for any graph, and each node's kernel index
// checked against the op table and the plan's kernels. This describes what the plan computes
// (dump-plan, the bench's roofline, the LM-head note); sessions run the plan's schedule, which
// plan_check.h bounds-checks. Nothing here re-derives the compiler's layout or schedule.
#pragma once

#include "ir/graph.h"
#include "plan_generated.h"
#include "schema/abi.h"

#include <vector>

namespace bitnet::runtime {

struct DecodedGraph {
  ir::Graph graph;
  std::vector<int32_t> kernel_of_node;  // per node: index into the plan's kernels or -1
};

// `kernel_splits`: the split of each plan kernel.
Expected<DecodedGraph> decode_graph(const planfb::GraphPlanT& stored, const std::vector<abi::WorkSplit>& kernel_splits);

}  // namespace bitnet::runtime
