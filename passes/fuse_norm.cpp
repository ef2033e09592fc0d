// fuse-norm: rms_norm followed by a multiply with a 1-D f32 gain weight becomes one `norm`.
// Legal because `norm` is defined as exactly that composition (the interpreter runs the same
// two float steps), and the plain rms_norm result had no other reader.
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
    const ir::ValueId normed = mul.operands[0];
    const ir::ValueId gain = mul.operands[1];
    const ir::Node* rms = def_if(g, normed, ir::OpKind::RmsNorm);
    if (rms == nullptr || !uses.single(normed) || !is_weight(g, gain)) continue;
    // Only a per-feature gain f32[K]; a scalar f32[1] or a quantized row is not a `norm`.
    const ir::Type& gt = g.value(gain).type;
    if (gt.dtype != ir::DType::F32 || gt.rank() != 1 || gt.shape[0] != g.value(normed).type.shape[1]) continue;
    fusions.push_back({static_cast<int32_t>(i),
                       {g.value(normed).def},
                       {{ir::OpKind::Norm, {rms->operands[0], gain}, rms->attrs, g.value(mul.result).name}}});
  }
  return apply_fusions(g, fusions);
}

}  // namespace

Pass fuse_norm() {
  return fusion_pass("fuse-norm", "rms_norm then a mul by a per-feature f32 gain is one norm kernel (same float steps)",
                     fuse);
}

}  // namespace bitnet::passes
