// Kernel descriptions (see kernel_desc.h).
#include "codegen_cpu/kernel_desc.h"

#include "ir/printer.h"

namespace bitnet::codegen {

KernelDesc KernelDesc::from_node(const ir::Graph& graph, const ir::Node& node) {
  KernelDesc d;
  d.op = node.op;
  for (ir::ValueId v : node.operands) d.operands.push_back(graph.value(v).type);
  d.result = graph.value(node.result).type;
  for (const ir::Attr& a : node.attrs) {
    if (a.name != "layer") d.attrs.push_back(a);
  }
  return d;
}

std::string KernelDesc::key() const {
  std::string k = fmt::format("{}(", ir::op_name(op));
  for (size_t i = 0; i < operands.size(); ++i) k += fmt::format("{}{}", i ? ", " : "", ir::to_string(operands[i]));
  k += ")";
  for (const ir::Attr& a : attrs) {
    std::visit([&](const auto& v) { k += fmt::format(" {}={}", a.name, v); }, a.value);
  }
  return fmt::format("{} -> {}", k, ir::to_string(result));
}

int64_t KernelDesc::attr_int(std::string_view name) const {
  for (const auto& a : attrs) {
    if (a.name == name) return std::get<int64_t>(a.value);
  }
  return 0;
}

double KernelDesc::attr_float(std::string_view name) const {
  for (const auto& a : attrs) {
    if (a.name == name) return std::get<double>(a.value);
  }
  return 0;
}

const std::string& KernelDesc::attr_string(std::string_view name) const {
  static const std::string empty;
  for (const auto& a : attrs) {
    if (a.name == name) return std::get<std::string>(a.value);
  }
  return empty;
}

bool needs_kernel(ir::OpKind op) {
  return ir::op_info(op).kernel;
}

}  // namespace bitnet::codegen
