// A plan's graphs: an optimised ir::Graph with the kernel of each node, its memory plan,
// schedule and KV-cache layout, as a planfb::GraphPlanT, and back. The runtime rebuilds the
// ir::Graph from the plan and re-derives layout and schedule with the same code the compiler
// used; the two must agree exactly, so the executor runs what the plan says.
#pragma once

#include "ir/graph.h"
#include "plan_generated.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bitnet::runtime {

// Where a weight node's tensor comes from: the GGUF (index into Plan.weights) or the
// sidecar (index into Sidecar.weights).
struct WeightRef {
  planfb::BindingKind kind = planfb::BindingKind::Weight;
  int32_t index = -1;
};
using WeightIndex = std::map<std::string, WeightRef>;  // by tensor name

// Fails if a weight node's tensor is not in `weights` or the memory plan fails.
Expected<std::unique_ptr<planfb::GraphPlanT>> encode_graph(const ir::Graph& graph, bool all_logits,
                                                           const std::vector<int32_t>& kernel_of_node, int64_t t_max,
                                                           const WeightIndex& weights);

struct DecodedGraph {
  ir::Graph graph;
  std::vector<int32_t> kernel_of_node;  // per node: index into the plan's kernels or -1
};

// Rebuilds the graph (every node through ir::Graph::add, so operands, attributes and types are
// checked as for any graph), checks each kernel index against `kernel_splits` (the split of
// each plan kernel), and re-encodes it: a plan whose stored values, memory plan, schedule or KV
// layout differ from the re-derived ones is refused.
Expected<DecodedGraph> decode_graph(const planfb::GraphPlanT& stored, const WeightIndex& weights,
                                    const std::vector<planfb::WorkSplit>& kernel_splits);

}  // namespace bitnet::runtime
