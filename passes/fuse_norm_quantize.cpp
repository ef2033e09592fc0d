// fuse-norm-quantize: a `norm` whose only reader is quantize_i8 becomes one `norm_quantize`
// (BitNet's attn_norm, attn_sub_norm, ffn_norm and ffn_sub_norm feed the int8 quantization of
// the next ternary product). Legal because the float row is never needed on its own, and
// norm_quantize quantizes exactly the row `norm` would have produced. The result keeps the
// norm's name (blk0.attn_norm), which says more than the quantize's (blk0.q.q8).
#include "passes/pass_manager.h"
#include "passes/rewrite.h"

namespace bitnet::passes {
namespace {

Expected<ir::Graph> fuse(const ir::Graph& g) {
  const Uses uses(g);
  std::vector<Fusion> fusions;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& quantize = g.nodes()[i];
    if (quantize.op != ir::OpKind::QuantizeI8) continue;
    const ir::ValueId normed = quantize.operands[0];
    const ir::Node* norm = def_if(g, normed, ir::OpKind::Norm);
    if (norm == nullptr || !uses.single(normed)) continue;
    fusions.push_back({static_cast<int32_t>(i),
                       {g.value(normed).def},
                       {{ir::OpKind::NormQuantize, norm->operands, norm->attrs, g.value(normed).name}}});
  }
  return apply_fusions(g, fusions);
}

}  // namespace

Pass fuse_norm_quantize() {
  return fusion_pass("fuse-norm-quantize",
                     "a norm read only by quantize_i8 is one norm_quantize kernel (the float row is never kept)", fuse);
}

}  // namespace bitnet::passes
