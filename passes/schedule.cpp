// The schedule (see schedule.h) and the `schedule` pass, which records the kernel count.
#include "passes/schedule.h"

namespace bitnet::passes {

std::optional<WorkSplit> split_of(const ir::Node& node) {
  return ir::kernel_split(node.op);
}

std::optional<NodeWork> work_of(const ir::Graph& graph, const ir::Node& node) {
  const auto split = split_of(node);
  if (!split) return std::nullopt;
  switch (*split) {
    case WorkSplit::kRows:
      return NodeWork{*split, graph.value(node.result).type.shape[1]};
    case WorkSplit::kHeads:
      return NodeWork{*split, ir::Dim{node.attr_int("n_head")}};
    case WorkSplit::kTokens:
      return NodeWork{*split, graph.value(node.result).type.shape[0]};
  }
  return std::nullopt;
}

int64_t kernel_count(const ir::Graph& graph) {
  int64_t n = 0;
  for (const ir::Node& node : graph.nodes()) n += split_of(node).has_value();
  return n;
}

Pass schedule() {
  return {"schedule", "record how many kernels run (the work split of each is split_of(node); nothing changes)",
          [](ir::Graph& g) -> Status {
            auto& props = g.properties();
            std::erase_if(props, [](const auto& p) { return p.first == "kernels"; });
            props.emplace_back("kernels", std::to_string(kernel_count(g)));
            return Status::success();
          }};
}

}  // namespace bitnet::passes
