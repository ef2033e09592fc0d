// Static memory planning (see memory_plan.h).
#include "passes/memory_plan.h"

#include <algorithm>

namespace bitnet::passes {
namespace {

int64_t align_up(int64_t n) {
  return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

}  // namespace

Expected<MemoryPlan> plan_memory(const ir::Graph& graph, int64_t t_max) {
  if (t_max <= 0) return make_error("plan-memory: T_max must be positive, got {}", t_max);
  const auto& nodes = graph.nodes();
  MemoryPlan plan;
  plan.t_max = t_max;
  plan.slots.resize(graph.values().size());
  const auto end = static_cast<int32_t>(nodes.size());
  std::vector<ir::ValueId> placed_first;  // values that own memory
  for (size_t i = 0; i < nodes.size(); ++i) {
    const ir::Node& n = nodes[i];
    Slot& s = plan.slots[static_cast<size_t>(n.result)];
    s.first = s.last = static_cast<int32_t>(i);
    for (ir::ValueId v : n.operands) plan.slots[static_cast<size_t>(v)].last = static_cast<int32_t>(i);
    if (n.op == ir::OpKind::Output) {
      // The output is its operand's memory; it must survive the whole call.
      s.alias = n.operands[0];
      plan.slots[static_cast<size_t>(n.operands[0])].last = end;
      continue;
    }
    if (n.op == ir::OpKind::Weight) continue;
    const int64_t bytes = ir::activation_bytes(graph.value(n.result).type, t_max);
    if (bytes < 0) return make_error("plan-memory: %{} has no activation layout", graph.value(n.result).name);
    s.bytes = align_up(std::max<int64_t>(bytes, 1));
    placed_first.push_back(n.result);
  }
  // Outputs may mark outputs: follow chains, then extend the root's life too.
  for (const ir::Node& n : nodes) {
    if (n.op != ir::OpKind::Output) continue;
    ir::ValueId root = n.operands[0];
    while (plan.slots[static_cast<size_t>(root)].alias >= 0) root = plan.slots[static_cast<size_t>(root)].alias;
    plan.slots[static_cast<size_t>(root)].last = end;
    plan.slots[static_cast<size_t>(n.result)].alias = root;
  }

  // Largest first (ties: earliest first) packs big [T, n_ff] buffers tightly.
  std::vector<ir::ValueId> order = placed_first;
  std::stable_sort(order.begin(), order.end(), [&](ir::ValueId a, ir::ValueId b) {
    return plan.slots[static_cast<size_t>(a)].bytes > plan.slots[static_cast<size_t>(b)].bytes;
  });
  std::vector<ir::ValueId> placed;
  std::vector<const Slot*> conflicts;
  for (ir::ValueId v : order) {
    Slot& s = plan.slots[static_cast<size_t>(v)];
    conflicts.clear();
    for (ir::ValueId p : placed) {
      const Slot& o = plan.slots[static_cast<size_t>(p)];
      if (o.first <= s.last && s.first <= o.last) conflicts.push_back(&o);
    }
    std::sort(conflicts.begin(), conflicts.end(), [](const Slot* a, const Slot* b) { return a->offset < b->offset; });
    int64_t offset = 0;
    for (const Slot* o : conflicts) {
      if (offset + s.bytes <= o->offset) break;  // the gap before o fits
      offset = std::max(offset, o->offset + o->bytes);
    }
    s.offset = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + s.bytes);
    placed.push_back(v);
  }
  for (const ir::Node& n : nodes) {
    Slot& s = plan.slots[static_cast<size_t>(n.result)];
    if (s.alias < 0) continue;
    const Slot& target = plan.slots[static_cast<size_t>(s.alias)];
    s.offset = target.offset;
    s.bytes = target.bytes;
  }
  return plan;
}

Pass plan_memory_pass(int64_t t_max) {
  return {"plan-memory", "give each activation an arena offset; values whose live ranges overlap never share bytes",
          [t_max](ir::Graph& g) -> Status {
            BITNET_ASSIGN_OR_RETURN(MemoryPlan plan, plan_memory(g, t_max));
            auto& props = g.properties();
            std::erase_if(props, [](const auto& p) { return p.first == "t_max" || p.first == "arena_bytes"; });
            props.emplace_back("t_max", std::to_string(t_max));
            props.emplace_back("arena_bytes", std::to_string(plan.arena_bytes));
            return Status::success();
          }};
}

}  // namespace bitnet::passes
