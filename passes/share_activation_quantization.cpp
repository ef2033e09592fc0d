// Activation-quantize sharing: the reference quantizes the normed input once per I2_S
// product (three times for Q/K/V, twice for gate/up). Per-token absmax quantization is a
// pure function of its input, so one quantize_i8 per input value serves every product.
#include "passes/pass_manager.h"

#include <unordered_map>

namespace bitnet::passes {

Pass share_activation_quantization() {
  return {"share-quantize", "quantize each activation to int8 once and reuse it for every I2_S product",
          [](ir::Graph& g) -> Status {
            std::unordered_map<ir::ValueId, ir::ValueId> first_quantize;  // input -> first quantize_i8 result
            std::vector<ir::ValueId> replace(g.values().size());
            for (size_t v = 0; v < replace.size(); ++v) replace[v] = static_cast<ir::ValueId>(v);
            for (ir::Node& n : g.mutable_nodes()) {
              for (ir::ValueId& v : n.operands) v = replace[static_cast<size_t>(v)];
              if (n.op != ir::OpKind::QuantizeI8) continue;
              auto [it, inserted] = first_quantize.emplace(n.operands[0], n.result);
              if (!inserted) replace[static_cast<size_t>(n.result)] = it->second;
            }
            return Status::success();  // the duplicates are now unused; dce removes them
          }};
}

}  // namespace bitnet::passes
