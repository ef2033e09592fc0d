// fuse-gated-ffn: the gate and up products of one input, the activation of the gate (silu or
// relu2) and their product become one `gated_ffn`. Legal because the gate, up and activated
// values are read only inside the pattern and gated_ffn computes act(gate) * up with the same
// kernels in the same order (the mul keeps the activation as its first operand, as lowered).
#include "passes/pass_manager.h"
#include "passes/rewrite.h"

namespace bitnet::passes {
namespace {

Expected<ir::Graph> fuse(const ir::Graph& g) {
  const Uses uses(g);
  std::vector<Fusion> fusions;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& mul = g.nodes()[i];
    if (mul.op != ir::OpKind::Mul) continue;
    const ir::ValueId activated = mul.operands[0];
    const ir::ValueId up_value = mul.operands[1];
    const ir::Node& act = g.def(activated);
    if ((act.op != ir::OpKind::Silu && act.op != ir::OpKind::Relu2) || !uses.single(activated)) continue;
    const ir::Node* gate = def_if(g, act.operands[0], ir::OpKind::MatMul);
    const ir::Node* up = def_if(g, up_value, ir::OpKind::MatMul);
    if (gate == nullptr || up == nullptr || !uses.single(act.operands[0]) || !uses.single(up_value)) continue;
    if (gate->operands[0] != up->operands[0]) continue;
    if (g.value(gate->operands[1]).type.shape != g.value(up->operands[1]).type.shape) continue;
    fusions.push_back({static_cast<int32_t>(i),
                       {g.value(activated).def, g.value(gate->result).def, g.value(up->result).def},
                       {{ir::OpKind::GatedFfn,
                         {gate->operands[0], gate->operands[1], up->operands[1]},
                         {{"act", std::string(act.op == ir::OpKind::Silu ? "silu" : "relu2")}},
                         g.value(mul.result).name}}});
  }
  return apply_fusions(g, fusions);
}

}  // namespace

Pass fuse_gated_ffn() {
  return fusion_pass("fuse-gated-ffn",
                     "act(x w_gate) * (x w_up) of one input is one gated_ffn kernel (intermediates read only here)",
                     fuse);
}

}  // namespace bitnet::passes
