// Graph printing (see printer.h). Example line:
//   %blk0.q = matmul %blk0.attn_q8, @blk.0.attn_q.weight : f32[T, 256]
#include "ir/printer.h"

namespace bitnet::ir {
namespace {

std::string value_ref(const Graph& g, ValueId v) {
  const std::string& name = g.value(v).name;
  return name.starts_with("@") ? name : fmt::format("%{}", name);
}

std::string attr_text(const AttrValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return fmt::format("{}", *i);
  if (const auto* d = std::get_if<double>(&v)) {
    // Hyper-parameters come from f32 metadata: print them as the shortest float that
    // reads back exactly, and doubles that are not floats in full.
    const auto f = static_cast<float>(*d);
    return static_cast<double>(f) == *d ? fmt::format("{}", f) : fmt::format("{}", *d);
  }
  std::string s = "\"";
  for (char c : std::get<std::string>(v)) {
    if (c == '"' || c == '\\') s += '\\';
    s += c;
  }
  return s + "\"";
}

}  // namespace

std::string print_node(const Graph& g, const Node& node) {
  const OpInfo& info = op_info(node.op);
  std::string line = fmt::format("{} = {}", value_ref(g, node.result), info.name);
  for (size_t i = 0; i < node.operands.size(); ++i)
    line += fmt::format("{}{}", i ? ", " : " ", value_ref(g, node.operands[i]));
  // Weights print their tensor as the value name already.
  if (node.op != OpKind::Weight && !info.attrs.empty()) {
    line += " {";
    for (size_t i = 0; i < info.attrs.size(); ++i) {
      const Attr* a = node.attr(info.attrs[i].name);
      line += fmt::format("{}{} = {}", i ? ", " : "", info.attrs[i].name, a ? attr_text(a->value) : "?");
    }
    line += "}";
  }
  return fmt::format("{} : {}", line, to_string(g.value(node.result).type));
}

std::string print(const Graph& g) {
  std::string out = fmt::format("graph \"{}\"", g.name());
  for (const auto& [key, value] : g.properties()) out += fmt::format(" {}=\"{}\"", key, value);
  out += " {\n";
  for (const Node& node : g.nodes()) out += fmt::format("  {}\n", print_node(g, node));
  return out + "}\n";
}

}  // namespace bitnet::ir
