// The IR graph: values in SSA form, each defined by exactly one node, nodes in
// topological order. Nodes are plain data (op, operands, attributes, one result); the
// builder only records them and infers their result types.
#pragma once

#include "ir/ops.h"

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace bitnet::ir {

using ValueId = int32_t;

struct Value {
  Type type;
  std::string name;  // unique within the graph; printed as %name (weights as @tensor.name)
  int32_t def = -1;  // index of the defining node
};

struct Node {
  OpKind op = OpKind::Output;
  std::vector<ValueId> operands;
  std::vector<Attr> attrs;
  ValueId result = -1;

  const Attr* attr(std::string_view name) const;
  int64_t attr_int(std::string_view name) const;  // requires the attribute (verified graphs)
  double attr_float(std::string_view name) const;
  const std::string& attr_string(std::string_view name) const;
};

class Graph {
 public:
  explicit Graph(std::string name = "graph") : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  // Free-form properties printed in the header (architecture, source file, ...).
  std::vector<std::pair<std::string, std::string>>& properties() { return properties_; }
  const std::vector<std::pair<std::string, std::string>>& properties() const { return properties_; }

  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<Node>& mutable_nodes() { return nodes_; }
  const std::vector<Value>& values() const { return values_; }
  const Value& value(ValueId id) const { return values_[static_cast<size_t>(id)]; }
  const Node& def(ValueId id) const { return nodes_[static_cast<size_t>(values_[static_cast<size_t>(id)].def)]; }

  // Appends a node. The result type is inferred from the op's rule, or taken from
  // `explicit_type` for ops without one. `name_hint` names the result (made unique).
  Expected<ValueId> add(OpKind op, std::vector<ValueId> operands, std::vector<Attr> attrs = {},
                        std::string name_hint = {}, std::optional<Type> explicit_type = std::nullopt);

  // Output nodes in order.
  std::vector<const Node*> outputs() const;

  // Rebuilds the graph keeping only `keep[i]` nodes, renumbering values (used by passes).
  void retain_nodes(const std::vector<bool>& keep);

 private:
  std::string unique_name(std::string hint);
  std::string name_;
  std::vector<std::pair<std::string, std::string>> properties_;
  std::vector<Node> nodes_;
  std::vector<Value> values_;
  std::unordered_map<std::string, int> name_counts_;  // last suffix used per hint
  std::unordered_set<std::string> used_names_;
};

// Thin typed wrappers over Graph::add, one per op (what lowering code reads best).
class Builder {
 public:
  explicit Builder(Graph& graph) : g_(graph) {}
  Graph& graph() { return g_; }

  Expected<ValueId> input_tokens();
  Expected<ValueId> weight(const std::string& tensor, Type type);
  Expected<ValueId> embed(ValueId table, ValueId ids, std::string name = "embd");
  Expected<ValueId> rms_norm(ValueId x, float eps, std::string name = "norm");
  Expected<ValueId> mul(ValueId a, ValueId b, std::string name = "mul");
  Expected<ValueId> add(ValueId a, ValueId b, std::string name = "add");
  Expected<ValueId> quantize_i8(ValueId x, std::string name = "q8");
  Expected<ValueId> matmul(ValueId x, ValueId w, std::string name = "mm");
  Expected<ValueId> rope(ValueId x, std::string style, int64_t n_head, int64_t head_dim, float freq_base,
                         float freq_scale, std::string name = "rope");
  Expected<ValueId> attention(ValueId q, ValueId k, ValueId v, int64_t layer, int64_t n_head, int64_t n_head_kv,
                              int64_t head_dim, std::string name = "attn");
  Expected<ValueId> softmax(ValueId x, float scale, std::string name = "softmax");
  Expected<ValueId> silu(ValueId x, std::string name = "silu");
  Expected<ValueId> relu2(ValueId x, std::string name = "relu2");
  Expected<ValueId> gelu(ValueId x, std::string name = "gelu");
  Expected<ValueId> select_rows(ValueId x, std::string name = "last");
  Expected<ValueId> output(ValueId x, std::string output_name);

 private:
  Graph& g_;
};

}  // namespace bitnet::ir
