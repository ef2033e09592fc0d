// What the fusion passes share: who uses each value, and a rebuild that replaces a matched
// pattern by fused nodes at the position of its last node (the root), so topological order
// and the names of surviving values are kept.
#pragma once

#include "ir/graph.h"
#include "passes/pass_manager.h"

#include <string>
#include <vector>

namespace bitnet::passes {

// The users (node indices) of every value, in node order.
class Uses {
 public:
  explicit Uses(const ir::Graph& graph);
  const std::vector<int32_t>& of(ir::ValueId v) const { return users_[static_cast<size_t>(v)]; }
  // True when exactly one node reads `v`, once (the value can be absorbed by a fusion).
  bool single(ir::ValueId v) const { return of(v).size() == 1; }

 private:
  std::vector<std::vector<int32_t>> users_;
};

// An operand of a fused node: a value of the old graph, or the result of an earlier node of
// the same fusion (fresh(i)).
using FusedOperand = ir::ValueId;
inline FusedOperand fresh(int i) {
  return -1 - i;
}

struct FusedNode {
  ir::OpKind op;
  std::vector<FusedOperand> operands;
  std::vector<ir::Attr> attrs;
  std::string name;
};

// One match: `nodes` are emitted in order where node `root` was; the last one takes over the
// root's result (its users read it from then on). `absorbed` nodes are dropped: the pass has
// checked that nothing outside the pattern reads them.
struct Fusion {
  int32_t root = -1;
  std::vector<int32_t> absorbed;
  std::vector<FusedNode> nodes;
};

// The graph with every fusion applied (same name and properties). Fails when a fused node
// does not type-check or changes the root's type (a pass bug, reported rather than hidden).
Expected<ir::Graph> apply_fusions(const ir::Graph& graph, const std::vector<Fusion>& fusions);

// A pass that replaces the graph with `find(graph)`'s result (the fusion passes' shape).
Pass fusion_pass(std::string_view name, std::string_view summary, Expected<ir::Graph> (*find)(const ir::Graph&));

// Helpers for matching.
const ir::Node* def_if(const ir::Graph& graph, ir::ValueId v, ir::OpKind op);  // the def of v when it is `op`
bool is_weight(const ir::Graph& graph, ir::ValueId v);
// "blk0.attn" -> "blk0.qkv": a name beside `sibling` in its dotted prefix.
std::string sibling_name(const std::string& sibling, const std::string& leaf);

}  // namespace bitnet::passes
