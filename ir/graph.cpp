// Graph construction (see graph.h).
#include "ir/graph.h"

#include "ir/verifier.h"

namespace bitnet::ir {

const Attr* Node::attr(std::string_view name) const {
  for (const auto& a : attrs) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

int64_t Node::attr_int(std::string_view name) const {
  return std::get<int64_t>(attr(name)->value);
}
double Node::attr_float(std::string_view name) const {
  return std::get<double>(attr(name)->value);
}
const std::string& Node::attr_string(std::string_view name) const {
  return std::get<std::string>(attr(name)->value);
}

std::string Graph::unique_name(std::string hint) {
  if (hint.empty()) hint.assign("v");
  std::string name = hint;
  int& next = name_counts_[hint];
  while (used_names_.count(name)) name = fmt::format("{}.{}", hint, ++next);
  used_names_.insert(name);
  return name;
}

Expected<ValueId> Graph::add(OpKind op, std::vector<ValueId> operands, std::vector<Attr> attrs, std::string name_hint,
                             std::optional<Type> explicit_type) {
  Node node{op, std::move(operands), std::move(attrs), -1};
  const OpInfo& info = op_info(op);
  BITNET_RETURN_IF_ERROR(verify_node_shape(node, static_cast<ValueId>(values_.size())));
  std::vector<Type> operand_types;
  operand_types.reserve(node.operands.size());
  for (ValueId v : node.operands) operand_types.push_back(values_[static_cast<size_t>(v)].type);
  Type type;
  if (info.infer != nullptr) {
    BITNET_ASSIGN_OR_RETURN(type, info.infer(node, operand_types));
  } else if (explicit_type) {
    type = *explicit_type;
  } else {
    return make_error("{}: needs an explicit result type", info.name);
  }
  if (op == OpKind::Weight) {
    BITNET_RETURN_IF_ERROR(verify_weight_type(node, type));
    name_hint = fmt::format("@{}", node.attr_string("tensor"));  // (GCC 12 -Wrestrict misfires on "@" + s)
  }
  node.result = static_cast<ValueId>(values_.size());
  values_.push_back(Value{std::move(type), unique_name(std::move(name_hint)), static_cast<int32_t>(nodes_.size())});
  nodes_.push_back(std::move(node));
  return nodes_.back().result;
}

std::vector<const Node*> Graph::outputs() const {
  std::vector<const Node*> out;
  for (const auto& n : nodes_) {
    if (n.op == OpKind::Output) out.push_back(&n);
  }
  return out;
}

void Graph::retain_nodes(const std::vector<bool>& keep) {
  std::vector<ValueId> remap(values_.size(), -1);
  std::vector<Node> nodes;
  std::vector<Value> values;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!keep[i]) continue;
    Node n = nodes_[i];
    for (ValueId& v : n.operands) v = remap[static_cast<size_t>(v)];
    Value val = values_[static_cast<size_t>(n.result)];
    val.def = static_cast<int32_t>(nodes.size());
    remap[static_cast<size_t>(n.result)] = static_cast<ValueId>(values.size());
    n.result = static_cast<ValueId>(values.size());
    values.push_back(std::move(val));
    nodes.push_back(std::move(n));
  }
  nodes_ = std::move(nodes);
  values_ = std::move(values);
}

Expected<ValueId> Builder::input_tokens() {
  return g_.add(OpKind::InputTokens, {}, {}, "tokens");
}

Expected<ValueId> Builder::weight(const std::string& tensor, Type type) {
  return g_.add(OpKind::Weight, {}, {{"tensor", tensor}}, {}, std::move(type));
}

Expected<ValueId> Builder::embed(ValueId table, ValueId ids, std::string name) {
  return g_.add(OpKind::Embed, {table, ids}, {}, std::move(name));
}

Expected<ValueId> Builder::rms_norm(ValueId x, float eps, std::string name) {
  return g_.add(OpKind::RmsNorm, {x}, {{"eps", static_cast<double>(eps)}}, std::move(name));
}

Expected<ValueId> Builder::mul(ValueId a, ValueId b, std::string name) {
  return g_.add(OpKind::Mul, {a, b}, {}, std::move(name));
}

Expected<ValueId> Builder::add(ValueId a, ValueId b, std::string name) {
  return g_.add(OpKind::Add, {a, b}, {}, std::move(name));
}

Expected<ValueId> Builder::quantize_i8(ValueId x, std::string name) {
  return g_.add(OpKind::QuantizeI8, {x}, {}, std::move(name));
}

Expected<ValueId> Builder::matmul(ValueId x, ValueId w, std::string name) {
  return g_.add(OpKind::MatMul, {x, w}, {}, std::move(name));
}

Expected<ValueId> Builder::rope(ValueId x, std::string style, int64_t n_head, int64_t head_dim, float freq_base,
                                float freq_scale, std::string name) {
  return g_.add(OpKind::Rope, {x},
                {{"style", std::move(style)},
                 {"n_head", n_head},
                 {"head_dim", head_dim},
                 {"freq_base", static_cast<double>(freq_base)},
                 {"freq_scale", static_cast<double>(freq_scale)}},
                std::move(name));
}

Expected<ValueId> Builder::attention(ValueId q, ValueId k, ValueId v, int64_t layer, int64_t n_head, int64_t n_head_kv,
                                     int64_t head_dim, std::string name) {
  return g_.add(OpKind::Attention, {q, k, v},
                {{"layer", layer}, {"n_head", n_head}, {"n_head_kv", n_head_kv}, {"head_dim", head_dim}},
                std::move(name));
}

Expected<ValueId> Builder::softmax(ValueId x, float scale, std::string name) {
  return g_.add(OpKind::Softmax, {x}, {{"scale", static_cast<double>(scale)}}, std::move(name));
}

Expected<ValueId> Builder::silu(ValueId x, std::string name) {
  return g_.add(OpKind::Silu, {x}, {}, std::move(name));
}
Expected<ValueId> Builder::relu2(ValueId x, std::string name) {
  return g_.add(OpKind::Relu2, {x}, {}, std::move(name));
}
Expected<ValueId> Builder::gelu(ValueId x, std::string name) {
  return g_.add(OpKind::Gelu, {x}, {}, std::move(name));
}

Expected<ValueId> Builder::select_rows(ValueId x, std::string name) {
  return g_.add(OpKind::SelectRows, {x}, {}, std::move(name));
}

Expected<ValueId> Builder::output(ValueId x, std::string output_name) {
  std::string hint = output_name;
  return g_.add(OpKind::Output, {x}, {{"name", std::move(output_name)}}, std::move(hint));
}

}  // namespace bitnet::ir
