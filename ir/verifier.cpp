// Graph verification (see verifier.h).
#include "ir/verifier.h"

#include <unordered_set>

namespace bitnet::ir {
namespace {

bool kind_matches(const AttrValue& v, AttrKind kind) {
  switch (kind) {
    case AttrKind::kInt:
      return std::holds_alternative<int64_t>(v);
    case AttrKind::kFloat:
      return std::holds_alternative<double>(v);
    case AttrKind::kString:
      return std::holds_alternative<std::string>(v);
  }
  return false;
}

}  // namespace

Status verify_node_shape(const Node& node, ValueId first_undefined) {
  const OpInfo& info = op_info(node.op);
  const int n = static_cast<int>(node.operands.size());
  if (n < info.min_operands || n > info.max_operands) {
    return make_error("{}: {} operands, expected {}", info.name, n,
                      info.min_operands == info.max_operands
                          ? fmt::format("{}", info.min_operands)
                          : fmt::format("{}..{}", info.min_operands, info.max_operands));
  }
  for (ValueId v : node.operands) {
    // Operands must be defined by earlier nodes: this is what keeps graphs acyclic.
    if (v < 0 || v >= first_undefined) return make_error("{}: operand %{} is not defined before use", info.name, v);
  }
  for (const AttrSpec& spec : info.attrs) {
    const Attr* a = node.attr(spec.name);
    if (a == nullptr) return make_error("{}: missing attribute '{}'", info.name, spec.name);
    if (!kind_matches(a->value, spec.kind))
      return make_error("{}: attribute '{}' has the wrong kind", info.name, spec.name);
  }
  for (const Attr& a : node.attrs) {
    bool known = false;
    for (const AttrSpec& spec : info.attrs) known |= spec.name == a.name;
    if (!known) return make_error("{}: unknown attribute '{}'", info.name, a.name);
  }
  return Status::success();
}

Status verify_weight_type(const Node& node, const Type& type) {
  if (!is_weight_dtype(type.dtype) || type.rank() < 1 || type.rank() > 2) {
    return make_error("weight @{}: {} is not a weight type", node.attr_string("tensor"), to_string(type));
  }
  for (const Dim& d : type.shape) {
    if (d.is_tokens() || d.size <= 0) return make_error("weight @{}: shape must be static", node.attr_string("tensor"));
  }
  return Status::success();
}

Status verify(const Graph& g) {
  std::unordered_set<std::string> names;
  std::vector<int> defs(g.values().size(), 0);
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& node = g.nodes()[i];
    const OpInfo& info = op_info(node.op);
    const auto where = [&] { return fmt::format("node #{} ({})", i, info.name); };
    if (node.result < 0 || static_cast<size_t>(node.result) >= g.values().size()) {
      return make_error("{}: has no result value", where());
    }
    if (++defs[static_cast<size_t>(node.result)] > 1) {
      return make_error("{}: value %{} is defined twice", where(), g.value(node.result).name);
    }
    const Value& result = g.value(node.result);
    if (result.def != static_cast<int32_t>(i)) return make_error("{}: result's definition link is wrong", where());
    auto shape = verify_node_shape(node, node.result);
    if (!shape.ok()) return make_error("{}: {}", where(), shape.error().message);
    if (!names.insert(result.name).second) return make_error("{}: duplicate value name %{}", where(), result.name);
    std::vector<Type> operand_types;
    for (ValueId v : node.operands) operand_types.push_back(g.value(v).type);
    if (info.infer != nullptr) {
      auto inferred = info.infer(node, operand_types);
      if (!inferred.ok()) return make_error("{}: {}", where(), inferred.error().message);
      if (*inferred != result.type) {
        return make_error("{}: result %{} has type {} but the op produces {}", where(), result.name,
                          to_string(result.type), to_string(*inferred));
      }
    } else if (node.op == OpKind::Weight) {
      BITNET_RETURN_IF_ERROR(verify_weight_type(node, result.type));
    }
  }
  for (size_t v = 0; v < defs.size(); ++v) {
    if (defs[v] != 1) return make_error("value %{} has no defining node", g.values()[v].name);
  }
  if (g.outputs().empty()) return make_error("the graph has no outputs");
  return Status::success();
}

}  // namespace bitnet::ir
