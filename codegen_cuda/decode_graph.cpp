#include "codegen_cuda/decode_graph.h"

#include <cmath>
#include <string>
#include <vector>

namespace bitnet::codegen_cuda {
namespace {

using ir::OpKind;

// A weight operand: its GGUF tensor and type.
struct WeightRef {
  std::string tensor;
  ir::Type type;
  int64_t dim(size_t i) const { return type.shape[i].size; }
};

// Walks the graph's compute nodes (weights and the token input are read through them) in order.
class Walk {
 public:
  explicit Walk(const ir::Graph& g) : g_(g) {
    for (const ir::Node& n : g.nodes()) {
      if (n.op != OpKind::Weight && n.op != OpKind::InputTokens) ops_.push_back(&n);
    }
  }

  bool done() const { return at_ >= ops_.size(); }
  const ir::Node* peek() const { return done() ? nullptr : ops_[at_]; }
  bool next_is(OpKind op) const { return !done() && ops_[at_]->op == op; }

  // The next node, which must be `op` (`role`: what it is in a BitNet step) reading `inputs` as
  // its first operands (-1: any).
  Expected<const ir::Node*> expect(OpKind op, const std::string& role, std::vector<ir::ValueId> inputs = {}) {
    if (done()) return fail(nullptr, "expected " + std::string(ir::op_name(op)) + " (" + role + ")");
    const ir::Node* n = ops_[at_++];
    if (n->op != op) return fail(n, "expected " + std::string(ir::op_name(op)) + " (" + role + ")");
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i] >= 0 && (i >= n->operands.size() || n->operands[i] != inputs[i])) {
        return fail(n, role + " must read " + value_name(inputs[i]) + " as operand " + std::to_string(i));
      }
    }
    return n;
  }

  // Operand `i` of `n`, a weight of one of `dtypes`.
  Expected<WeightRef> weight(const ir::Node& n, size_t i, std::initializer_list<ir::DType> dtypes, const char* what) {
    if (i >= n.operands.size() || g_.def(n.operands[i]).op != OpKind::Weight) {
      return fail(&n, std::string("operand ") + std::to_string(i) + " must be a weight (" + what + ")");
    }
    const WeightRef w{g_.def(n.operands[i]).attr_string("tensor"), g_.value(n.operands[i]).type};
    for (ir::DType d : dtypes) {
      if (w.type.dtype == d && w.type.rank() == (d == ir::DType::F32 ? 1 : 2)) return w;
    }
    std::string allowed;
    for (ir::DType d : dtypes) allowed += std::string(allowed.empty() ? "" : " or ") + std::string(ir::dtype_name(d));
    return fail(&n, w.tensor + " (" + what + ") is " + ir::to_string(w.type) + "; the kernels read " + allowed);
  }

  Error fail(const ir::Node* n, const std::string& what) const {
    const std::string where =
        n == nullptr ? "the end of the graph" : value_name(n->result) + " (" + std::string(ir::op_name(n->op)) + ")";
    return Error{"the CUDA kernels do not run " + where + ": " + what};
  }

  std::string value_name(ir::ValueId id) const { return "%" + g_.value(id).name; }
  const ir::Graph& graph() const { return g_; }

 private:
  const ir::Graph& g_;
  std::vector<const ir::Node*> ops_;
  size_t at_ = 0;
};

}  // namespace

Expected<DecodeModelConfig> decode_config_from_graph(const ir::Graph& graph, int64_t n_ctx) {
  Walk w(graph);
  DecodeModelConfig c;
  c.n_ctx = (n_ctx + 31) / 32 * 32;
  using ir::DType;
  // The ternary matrices: I2_S as the kernels read it, or TQ2_0 / TQ1_0, which the caller of
  // decode_weight_bytes hands over as I2_S (TensorBytes).
  const std::initializer_list<DType> kTernary = {DType::I2_S, DType::TQ2_0, DType::TQ1_0};

  BITNET_ASSIGN_OR_RETURN(const ir::Node* embed, w.expect(OpKind::Embed, "the token embedding"));
  BITNET_ASSIGN_OR_RETURN(const WeightRef table, w.weight(*embed, 0, {DType::F16, DType::Q8_0}, "the token table"));
  c.embd_tensor = table.tensor;
  c.embd_type = table.type.dtype == DType::Q8_0 ? TableType::kQ8_0 : TableType::kF16;
  c.n_vocab = table.dim(0);
  c.n_embd = table.dim(1);
  ir::ValueId x = embed->result;

  // Every layer's ops; its hyper-parameters must be the first layer's (the kernels are planned once).
  bool have_eps = false;
  auto same_eps = [&](const ir::Node& n) -> Status {
    const auto eps = static_cast<float>(n.attr_float("eps"));
    if (have_eps && eps != c.eps) return w.fail(&n, "eps differs from the first norm's (one eps for every norm)");
    c.eps = eps;
    have_eps = true;
    return Status::success();
  };
  for (int64_t layer = 0; !w.next_is(OpKind::SelectRows); ++layer) {
    const std::string blk = "layer " + std::to_string(layer) + ": ";
    DecodeLayerTensors t;
    BITNET_ASSIGN_OR_RETURN(const ir::Node* attn_norm, w.expect(OpKind::NormQuantize, blk + "attn_norm", {x}));
    BITNET_RETURN_IF_ERROR(same_eps(*attn_norm));
    BITNET_ASSIGN_OR_RETURN(const WeightRef g_attn, w.weight(*attn_norm, 1, {DType::F32}, "attn_norm's gain"));
    t.attn_norm = g_attn.tensor;

    BITNET_ASSIGN_OR_RETURN(const ir::Node* qkv, w.expect(OpKind::MatMulCat, blk + "q|k|v", {attn_norm->result}));
    if (qkv->operands.size() != 4) return w.fail(qkv, "the q|k|v kernel takes 3 matrices");
    BITNET_ASSIGN_OR_RETURN(const WeightRef wq, w.weight(*qkv, 1, kTernary, "q"));
    BITNET_ASSIGN_OR_RETURN(const WeightRef wk, w.weight(*qkv, 2, kTernary, "k"));
    BITNET_ASSIGN_OR_RETURN(const WeightRef wv, w.weight(*qkv, 3, kTernary, "v"));
    t.q = wq.tensor, t.k = wk.tensor, t.v = wv.tensor;

    BITNET_ASSIGN_OR_RETURN(const ir::Node* attn, w.expect(OpKind::RopeAttention, blk + "attention", {qkv->result}));
    if (attn->attr_string("style") != "neox") return w.fail(attn, "the kernels rotate NEOX pairs only");
    if (attn->attr_int("layer") != layer) return w.fail(attn, "its KV cache layer is not the layer's index");
    const int64_t n_head = attn->attr_int("n_head"), n_head_kv = attn->attr_int("n_head_kv");
    const int64_t head_dim = attn->attr_int("head_dim");
    const auto freq_base = static_cast<float>(attn->attr_float("freq_base"));
    const auto freq_scale = static_cast<float>(attn->attr_float("freq_scale"));
    if (n_head * head_dim != c.n_embd || wq.dim(0) != c.n_embd || wk.dim(0) != n_head_kv * head_dim ||
        wv.dim(0) != n_head_kv * head_dim) {
      return w.fail(attn, "q must have n_embd rows and n_head heads of head_dim; k and v n_head_kv heads");
    }

    BITNET_ASSIGN_OR_RETURN(const ir::Node* sub_norm,
                            w.expect(OpKind::NormQuantize, blk + "attn_sub_norm", {attn->result}));
    BITNET_RETURN_IF_ERROR(same_eps(*sub_norm));
    BITNET_ASSIGN_OR_RETURN(const WeightRef g_sub, w.weight(*sub_norm, 1, {DType::F32}, "attn_sub_norm's gain"));
    t.attn_sub_norm = g_sub.tensor;
    BITNET_ASSIGN_OR_RETURN(const ir::Node* o,
                            w.expect(OpKind::MatMulAdd, blk + "o plus the residual", {sub_norm->result, -1, x}));
    BITNET_ASSIGN_OR_RETURN(const WeightRef wo, w.weight(*o, 1, kTernary, "o"));
    t.o = wo.tensor;

    BITNET_ASSIGN_OR_RETURN(const ir::Node* ffn_norm, w.expect(OpKind::NormQuantize, blk + "ffn_norm", {o->result}));
    BITNET_RETURN_IF_ERROR(same_eps(*ffn_norm));
    BITNET_ASSIGN_OR_RETURN(const WeightRef g_ffn, w.weight(*ffn_norm, 1, {DType::F32}, "ffn_norm's gain"));
    t.ffn_norm = g_ffn.tensor;
    BITNET_ASSIGN_OR_RETURN(const ir::Node* ffn, w.expect(OpKind::GatedFfn, blk + "gate|up", {ffn_norm->result}));
    BITNET_ASSIGN_OR_RETURN(const WeightRef wg, w.weight(*ffn, 1, kTernary, "gate"));
    BITNET_ASSIGN_OR_RETURN(const WeightRef wu, w.weight(*ffn, 2, kTernary, "up"));
    t.gate = wg.tensor, t.up = wu.tensor;
    const FfnActivation act = ffn->attr_string("act") == "silu" ? FfnActivation::kSilu : FfnActivation::kRelu2;

    BITNET_ASSIGN_OR_RETURN(const ir::Node* ffn_sub,
                            w.expect(OpKind::NormQuantize, blk + "ffn_sub_norm", {ffn->result}));
    BITNET_RETURN_IF_ERROR(same_eps(*ffn_sub));
    BITNET_ASSIGN_OR_RETURN(const WeightRef g_ffn_sub, w.weight(*ffn_sub, 1, {DType::F32}, "ffn_sub_norm's gain"));
    t.ffn_sub_norm = g_ffn_sub.tensor;
    BITNET_ASSIGN_OR_RETURN(const ir::Node* down, w.expect(OpKind::MatMulAdd, blk + "down plus the residual",
                                                           {ffn_sub->result, -1, o->result}));
    BITNET_ASSIGN_OR_RETURN(const WeightRef wd, w.weight(*down, 1, kTernary, "down"));
    t.down = wd.tensor;
    const int64_t n_ff = wg.dim(0);
    if (wu.dim(0) != n_ff || wd.dim(1) != n_ff || wd.dim(0) != c.n_embd) {
      return w.fail(down, "gate and up must have n_ff rows, down n_ff columns and n_embd rows");
    }

    if (layer == 0) {
      c.n_head = n_head, c.n_head_kv = n_head_kv, c.n_ff = n_ff, c.act = act;
      c.freq_base = freq_base, c.freq_scale = freq_scale;
    } else if (n_head != c.n_head || n_head_kv != c.n_head_kv || n_ff != c.n_ff || act != c.act ||
               freq_base != c.freq_base || freq_scale != c.freq_scale) {
      return w.fail(down,
                    "the layer's heads, n_ff, activation or RoPE differ from layer 0's (the kernels are "
                    "planned once for every layer)");
    }
    c.layer_tensors.push_back(std::move(t));
    x = down->result;
  }
  c.n_layer = static_cast<int64_t>(c.layer_tensors.size());
  if (c.n_layer == 0) return w.fail(nullptr, "a model without layers");

  BITNET_ASSIGN_OR_RETURN(const ir::Node* last, w.expect(OpKind::SelectRows, "the rows whose logits are wanted", {x}));
  BITNET_ASSIGN_OR_RETURN(const ir::Node* norm, w.expect(OpKind::Norm, "output_norm", {last->result}));
  BITNET_RETURN_IF_ERROR(same_eps(*norm));
  BITNET_ASSIGN_OR_RETURN(const WeightRef g_out, w.weight(*norm, 1, {DType::F32}, "output_norm's gain"));
  c.output_norm_tensor = g_out.tensor;
  BITNET_ASSIGN_OR_RETURN(const ir::Node* head, w.expect(OpKind::MatMul, "the LM head", {norm->result}));
  BITNET_ASSIGN_OR_RETURN(const WeightRef lm, w.weight(*head, 1, {DType::F16, DType::Q8_0}, "the LM head's matrix"));
  if (lm.dim(0) != c.n_vocab || lm.dim(1) != c.n_embd) {
    return w.fail(head, "the LM head's matrix must be n_vocab x n_embd, as the token table");
  }
  c.lm_head_tensor = lm.tensor;
  c.lm_head_type = lm.type.dtype == DType::Q8_0 ? TableType::kQ8_0 : TableType::kF16;
  BITNET_ASSIGN_OR_RETURN(const ir::Node* out, w.expect(OpKind::Output, "the logits", {head->result}));
  if (out->attr_string("name") != "logits") return w.fail(out, "the kernels make the logits only");
  if (!w.done()) return w.fail(w.peek(), "the kernels make the logits only, and nothing after them");
  return c;
}

}  // namespace bitnet::codegen_cuda
