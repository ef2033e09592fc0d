// Fusion rewriting (see rewrite.h).
#include "passes/rewrite.h"

#include "ir/printer.h"

namespace bitnet::passes {

Uses::Uses(const ir::Graph& graph) : users_(graph.values().size()) {
  const auto& nodes = graph.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (ir::ValueId v : nodes[i].operands) users_[static_cast<size_t>(v)].push_back(static_cast<int32_t>(i));
  }
}

const ir::Node* def_if(const ir::Graph& graph, ir::ValueId v, ir::OpKind op) {
  const ir::Node& n = graph.def(v);
  return n.op == op ? &n : nullptr;
}

bool is_weight(const ir::Graph& graph, ir::ValueId v) {
  return graph.def(v).op == ir::OpKind::Weight;
}

std::string sibling_name(const std::string& sibling, const std::string& leaf) {
  const auto dot = sibling.rfind('.');
  return dot == std::string::npos ? leaf : sibling.substr(0, dot + 1) + leaf;
}

Expected<ir::Graph> apply_fusions(const ir::Graph& graph, const std::vector<Fusion>& fusions) {
  const auto& nodes = graph.nodes();
  std::vector<int32_t> fusion_at(nodes.size(), -1);
  std::vector<bool> dropped(nodes.size(), false);
  for (size_t f = 0; f < fusions.size(); ++f) {
    fusion_at[static_cast<size_t>(fusions[f].root)] = static_cast<int32_t>(f);
    for (int32_t a : fusions[f].absorbed) dropped[static_cast<size_t>(a)] = true;
  }
  for (size_t f = 0; f < fusions.size(); ++f) {
    // Matches must not overlap: a node is the root of one fusion or absorbed by one, never both.
    const auto root = static_cast<size_t>(fusions[f].root);
    if (dropped[root] || fusion_at[root] != static_cast<int32_t>(f)) {
      return make_error("overlapping fusions at `{}`", ir::print_node(graph, nodes[root]));
    }
  }
  ir::Graph out(graph.name());
  out.properties() = graph.properties();
  std::vector<ir::ValueId> remap(graph.values().size(), -1);
  const auto mapped = [&](ir::ValueId v) -> Expected<ir::ValueId> {
    const ir::ValueId m = remap[static_cast<size_t>(v)];
    if (m < 0) return make_error("value %{} is read after its node was absorbed by a fusion", graph.value(v).name);
    return m;
  };
  for (size_t i = 0; i < nodes.size(); ++i) {
    const ir::Node& n = nodes[i];
    if (dropped[i]) continue;
    if (fusion_at[i] < 0) {
      std::vector<ir::ValueId> operands;
      for (ir::ValueId v : n.operands) {
        BITNET_ASSIGN_OR_RETURN(ir::ValueId m, mapped(v));
        operands.push_back(m);
      }
      const ir::Value& result = graph.value(n.result);
      BITNET_ASSIGN_OR_RETURN(remap[static_cast<size_t>(n.result)],
                              out.add(n.op, std::move(operands), n.attrs, result.name, result.type));
      continue;
    }
    const Fusion& f = fusions[static_cast<size_t>(fusion_at[i])];
    std::vector<ir::ValueId> fresh_values;
    for (const FusedNode& fn : f.nodes) {
      std::vector<ir::ValueId> operands;
      for (FusedOperand o : fn.operands) {
        if (o < 0) {
          operands.push_back(fresh_values.at(static_cast<size_t>(-1 - o)));
        } else {
          BITNET_ASSIGN_OR_RETURN(ir::ValueId m, mapped(o));
          operands.push_back(m);
        }
      }
      auto v = out.add(fn.op, std::move(operands), fn.attrs, fn.name);
      if (!v.ok()) return make_error("fusing at `{}`: {}", ir::print_node(graph, n), v.error().message);
      fresh_values.push_back(*v);
    }
    const ir::Type& before = graph.value(n.result).type;
    const ir::Type& after = out.value(fresh_values.back()).type;
    if (before != after) {
      return make_error("fusing at `{}` changes its type to {}", ir::print_node(graph, n), ir::to_string(after));
    }
    remap[static_cast<size_t>(n.result)] = fresh_values.back();
  }
  return out;
}

Pass fusion_pass(std::string_view name, std::string_view summary, Expected<ir::Graph> (*find)(const ir::Graph&)) {
  return {name, summary, [find](ir::Graph& g) -> Status {
            BITNET_ASSIGN_OR_RETURN(g, find(g));
            return Status::success();
          }};
}

}  // namespace bitnet::passes
