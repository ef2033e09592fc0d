// Dead-code elimination: removes nodes whose results nothing uses, unless the op table says
// the op has an effect (attention appends to the KV cache; outputs are what the graph is for).
#include "passes/pass_manager.h"

namespace bitnet::passes {

Pass dead_code_elimination() {
  return {"dce", "remove nodes whose results are never used", [](ir::Graph& g) -> Status {
            const auto& nodes = g.nodes();
            std::vector<bool> live(nodes.size(), false);
            std::vector<bool> used(g.values().size(), false);
            for (size_t i = nodes.size(); i-- > 0;) {
              const ir::Node& n = nodes[i];
              const bool effect = ir::op_info(n.op).effects != ir::OpEffects::kPure;
              if (!effect && !used[static_cast<size_t>(n.result)]) continue;
              live[i] = true;
              for (ir::ValueId v : n.operands) used[static_cast<size_t>(v)] = true;
            }
            g.retain_nodes(live);
            return Status::success();
          }};
}

}  // namespace bitnet::passes
