// The schedule (see schedule.h) and the `schedule` pass, which records the kernel count.
#include "passes/schedule.h"

namespace bitnet::passes {

std::optional<WorkSplit> split_of(const ir::Node& node) {
  using ir::OpKind;
  switch (node.op) {
    case OpKind::InputTokens:
    case OpKind::Weight:
    case OpKind::SelectLast:
    case OpKind::Output:
      return std::nullopt;
    // Products: output features are independent (each is one weight row), and a split by rows
    // keeps every result bit independent of the thread count.
    case OpKind::MatMul:
    case OpKind::MatMulCat:
    case OpKind::MatMulAdd:
    case OpKind::GatedFfn:
      return WorkSplit::kRows;
    // Heads attend independently; per head the whole KV window is read once.
    case OpKind::Attention:
    case OpKind::RopeAttention:
      return WorkSplit::kHeads;
    case OpKind::Embed:
    case OpKind::RmsNorm:
    case OpKind::Mul:
    case OpKind::Add:
    case OpKind::QuantizeI8:
    case OpKind::Rope:
    case OpKind::Softmax:
    case OpKind::Silu:
    case OpKind::Relu2:
    case OpKind::Gelu:
    case OpKind::Norm:
    case OpKind::NormQuantize:
      return WorkSplit::kTokens;
  }
  return std::nullopt;
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
