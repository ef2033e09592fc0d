// fuse-residual: add(r, matmul(x, w)) becomes `matmul_add(x, w, r)`, the residual added in the
// product's epilogue instead of a separate pass over [T, M]. Legal because the product is read
// only by the add, and matmul_add is defined as r + product with r first, exactly the add's
// float operation (only that operand order is matched).
#include "passes/pass_manager.h"
#include "passes/rewrite.h"

namespace bitnet::passes {
namespace {

Expected<ir::Graph> fuse(const ir::Graph& g) {
  const Uses uses(g);
  std::vector<Fusion> fusions;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& add = g.nodes()[i];
    if (add.op != ir::OpKind::Add) continue;
    const ir::ValueId r = add.operands[0];
    const ir::ValueId product = add.operands[1];
    const ir::Node* mm = def_if(g, product, ir::OpKind::MatMul);
    // Same types: no broadcast, and r is an activation (weights broadcast as rows).
    if (mm == nullptr || !uses.single(product) || is_weight(g, r) || g.value(r).type != g.value(product).type) continue;
    fusions.push_back({static_cast<int32_t>(i),
                       {g.value(product).def},
                       {{ir::OpKind::MatMulAdd, {mm->operands[0], mm->operands[1], r}, {}, g.value(add.result).name}}});
  }
  return apply_fusions(g, fusions);
}

}  // namespace

Pass fuse_residual() {
  return fusion_pass("fuse-residual",
                     "add(r, matmul(x, w)) is one matmul_add kernel: r + product, the add's own float step", fuse);
}

}  // namespace bitnet::passes
