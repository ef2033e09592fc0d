// A kernel to compile, described without reference to any graph: the op, its operand and
// result types and its attributes. Two nodes with equal descriptions share one compiled
// kernel (all layers of a model use the same handful of kernels).
#pragma once

#include "ir/graph.h"

#include <string>
#include <vector>

namespace bitnet::codegen {

struct KernelDesc {
  ir::OpKind op = ir::OpKind::MatMul;
  std::vector<ir::Type> operands;
  ir::Type result;
  std::vector<ir::Attr> attrs;  // the node's attributes minus those that do not change code (layer)

  static KernelDesc from_node(const ir::Graph& graph, const ir::Node& node);
  // A readable, unique key, e.g. "matmul(i8q[T, 2560], i2_s[6912, 2560]) -> f32[T, 6912]".
  std::string key() const;
  int64_t attr_int(std::string_view name) const;
  double attr_float(std::string_view name) const;
  const std::string& attr_string(std::string_view name) const;
};

// Ops the executor runs without a compiled kernel (inputs, weights, row selection, outputs).
bool needs_kernel(ir::OpKind op);

}  // namespace bitnet::codegen
