// fuse-rope-attention: the Q, K and V products of one input, rope on Q and K, and attention
// become `matmul_cat` (one pass over the input for the three weights, results side by side)
// and `rope_attention` on that row (split, rope, KV append, softmax.V in one kernel). This is
// also the matmul_cat fusion: concatenation needs no slicing op only because its one reader,
// rope_attention, knows where q, k and v sit in the row.
// Legal because every intermediate (q, k, v and the roped q, k) is read only inside the
// pattern, the products are independent of each other, and rope_attention is defined as the
// same rope and attention on the same values at the same position in the graph (the KV append
// stays where attention was).
#include "passes/pass_manager.h"
#include "passes/rewrite.h"

namespace bitnet::passes {
namespace {

// The rope of an attention operand when it matches the attention's heads and nothing else reads it.
const ir::Node* rope_of(const ir::Graph& g, const Uses& uses, ir::ValueId v, int64_t heads, int64_t head_dim) {
  const ir::Node* rope = def_if(g, v, ir::OpKind::Rope);
  if (rope == nullptr || !uses.single(v)) return nullptr;
  if (rope->attr_int("n_head") != heads || rope->attr_int("head_dim") != head_dim) return nullptr;
  return rope;
}

// The matmul defining v when nothing else reads its result.
const ir::Node* product_of(const ir::Graph& g, const Uses& uses, ir::ValueId v) {
  const ir::Node* mm = def_if(g, v, ir::OpKind::MatMul);
  return mm != nullptr && uses.single(v) ? mm : nullptr;
}

Expected<ir::Graph> fuse(const ir::Graph& g) {
  const Uses uses(g);
  std::vector<Fusion> fusions;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& attn = g.nodes()[i];
    if (attn.op != ir::OpKind::Attention) continue;
    const int64_t dim = attn.attr_int("head_dim");
    const ir::Node* rq = rope_of(g, uses, attn.operands[0], attn.attr_int("n_head"), dim);
    const ir::Node* rk = rope_of(g, uses, attn.operands[1], attn.attr_int("n_head_kv"), dim);
    if (rq == nullptr || rk == nullptr) continue;
    // One rope for both: same style and frequencies (rope_attention has one set).
    if (rq->attr_string("style") != rk->attr_string("style") ||
        rq->attr_float("freq_base") != rk->attr_float("freq_base") ||
        rq->attr_float("freq_scale") != rk->attr_float("freq_scale")) {
      continue;
    }
    const ir::Node* q = product_of(g, uses, rq->operands[0]);
    const ir::Node* k = product_of(g, uses, rk->operands[0]);
    const ir::Node* v = product_of(g, uses, attn.operands[2]);
    if (q == nullptr || k == nullptr || v == nullptr) continue;
    const ir::ValueId x = q->operands[0];
    if (k->operands[0] != x || v->operands[0] != x) continue;
    std::vector<ir::Attr> attrs = attn.attrs;  // layer, n_head, n_head_kv, head_dim
    for (const char* name : {"style", "freq_base", "freq_scale"}) attrs.push_back(*rq->attr(name));
    const std::string& attn_name = g.value(attn.result).name;
    fusions.push_back({static_cast<int32_t>(i),
                       {g.value(rq->result).def, g.value(rk->result).def, g.value(q->result).def,
                        g.value(k->result).def, g.value(v->result).def},
                       {{ir::OpKind::MatMulCat,
                         {x, q->operands[1], k->operands[1], v->operands[1]},
                         {},
                         sibling_name(attn_name, "qkv")},
                        {ir::OpKind::RopeAttention, {fresh(0)}, std::move(attrs), attn_name}}});
  }
  return apply_fusions(g, fusions);
}

}  // namespace

Pass fuse_rope_attention() {
  return fusion_pass("fuse-rope-attention",
                     "Q/K/V products of one input -> matmul_cat; rope(q), rope(k), attention -> rope_attention on it "
                     "(intermediates read only inside the pattern)",
                     fuse);
}

}  // namespace bitnet::passes
