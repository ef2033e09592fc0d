// Encoding an optimised graph into a plan's GraphPlan: its values and nodes, the memory plan's
// slots, the schedule (every step the executor takes: token loading, kernel calls with their
// bindings and work splits, last-row copies) and the KV table. The runtime runs this as stored
// (runtime/executor.h); check_rederived is the compiler-side deep check that a stored graph
// plan is exactly what this compiler derives from its graph.
#pragma once

#include "ir/graph.h"
#include "plan_generated.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bitnet::compiler {

// Where a weight node's tensor comes from: the GGUF (index into Plan.weights) or the
// sidecar (index into Sidecar.weights).
struct WeightRef {
  planfb::BindingKind kind = planfb::BindingKind::Weight;
  int32_t index = -1;
};
using WeightIndex = std::map<std::string, WeightRef>;  // by tensor name

// The multiple a kernel's thread ranges are split on: whole KV-head groups for attention (each
// thread appends only its own KV heads), SIMD row blocks for the matmul family, 1 otherwise.
int64_t split_granularity(const ir::Node& node, abi::WorkSplit split);

// Fails if a weight node's tensor is not in `weights` or the memory plan fails.
Expected<std::unique_ptr<planfb::GraphPlanT>> encode_graph(const ir::Graph& graph, bool all_logits,
                                                           const std::vector<int32_t>& kernel_of_node, int64_t t_max,
                                                           const WeightIndex& weights);

// Decodes `stored` (runtime::decode_graph) and encodes the graph again: fails, naming the
// first part that differs (values, nodes, memory plan, schedule, KV layout, outputs), unless
// the two are identical.
Status check_rederived(const planfb::GraphPlanT& stored, const WeightIndex& weights,
                       const std::vector<abi::WorkSplit>& kernel_splits);

}  // namespace bitnet::compiler
