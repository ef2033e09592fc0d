// Decoding a plan's graph (see plan_graph.h).
#include "runtime/plan_graph.h"

#include "ir/verifier.h"

namespace bitnet::runtime {
namespace {

Expected<ir::Type> decode_type(const planfb::ValueT& v) {
  auto dtype = ir::dtype_from_name(v.dtype);
  if (!dtype) return make_error("value '{}' has unknown dtype '{}'", v.name, v.dtype);
  ir::Type t{*dtype, {}};
  for (int64_t d : v.shape) {
    if (d < ir::Dim::kSelected) return make_error("value '{}' has a negative dim {}", v.name, d);
    t.shape.push_back(ir::Dim{d});
  }
  return t;
}

}  // namespace

Expected<DecodedGraph> decode_graph(const planfb::GraphPlanT& stored,
                                    const std::vector<abi::WorkSplit>& kernel_splits) {
  DecodedGraph out;
  out.graph.set_name(stored.name);
  for (const auto& p : stored.properties) {
    if (p) out.graph.properties().emplace_back(p->key, p->value);
  }
  if (stored.values.size() != stored.nodes.size()) {
    return make_error("graph '{}': {} values for {} nodes", stored.name, stored.values.size(), stored.nodes.size());
  }
  for (size_t i = 0; i < stored.nodes.size(); ++i) {
    const planfb::NodeT* node = stored.nodes[i].get();
    const planfb::ValueT* value = stored.values[i].get();
    if (!node || !value) return make_error("graph '{}': node #{} is empty", stored.name, i);
    auto op = ir::op_from_name(node->op);
    if (!op) return make_error("graph '{}': node #{} has unknown op '{}'", stored.name, i, node->op);
    if (node->result != static_cast<int32_t>(i))
      return make_error("graph '{}': node #{} defines value {}", stored.name, i, node->result);
    std::vector<ir::Attr> attrs;
    for (const auto& a : node->attrs) {
      if (!a) return make_error("graph '{}': node #{} has an empty attribute", stored.name, i);
      switch (a->kind) {
        case planfb::AttrKind::Int:
          attrs.push_back({a->name, a->int_value});
          break;
        case planfb::AttrKind::Float:
          attrs.push_back({a->name, a->float_value});
          break;
        case planfb::AttrKind::String:
          attrs.push_back({a->name, a->string_value});
          break;
        default:
          return make_error("graph '{}': node #{} attribute '{}' has a bad kind", stored.name, i, a->name);
      }
    }
    BITNET_ASSIGN_OR_RETURN(ir::Type type, decode_type(*value));
    auto added = out.graph.add(*op, node->operands, std::move(attrs), value->name, type);
    if (!added.ok())
      return make_error("graph '{}': node #{} ({}): {}", stored.name, i, node->op, added.error().message);
    const ir::Value& v = out.graph.value(*added);
    if (v.type != type || v.name != value->name) {
      return make_error("graph '{}': node #{} ({}) should be {} '{}' but is {} '{}'", stored.name, i, node->op,
                        ir::to_string(type), value->name, ir::to_string(v.type), v.name);
    }
    const auto split = ir::kernel_split(*op);
    const int32_t k = node->kernel;
    if (split.has_value() != (k >= 0) || k >= static_cast<int32_t>(kernel_splits.size()) ||
        (split && kernel_splits[static_cast<size_t>(k)] != *split)) {
      return make_error("graph '{}': node #{} ({}) has a bad kernel index {}", stored.name, i, node->op, k);
    }
    out.kernel_of_node.push_back(k);
  }
  BITNET_RETURN_IF_ERROR(ir::verify(out.graph));
  return out;
}

}  // namespace bitnet::runtime
