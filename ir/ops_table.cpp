// Type rules of the op table (ops.h): one small function per op, each saying what
// operand types it accepts and what it produces.
#include "ir/graph.h"

namespace bitnet::ir {
namespace {

Error bad(const Node& n, std::string why) {
  return make_error("{}: {}", op_name(n.op), why);
}

// Checks a row-major activation [T, N] (or [R, N] after select_rows).
Status expect_activation(const Node& n, const Type& t, const char* what, DType dtype = DType::F32) {
  if (t.dtype != dtype || t.rank() != 2 || t.shape[1].is_tokens()) {
    return bad(n, fmt::format("{} must be {}[T, N], got {}", what, dtype_name(dtype), to_string(t)));
  }
  return Status::success();
}

Expected<Type> same_as_first(const Node& n, std::span<const Type> ops) {
  BITNET_RETURN_IF_ERROR(expect_activation(n, ops[0], "x"));
  return ops[0];
}

Expected<Type> infer_input_tokens(const Node&, std::span<const Type>) {
  return Type::of(DType::I32, {Dim::tokens()});
}

Expected<Type> infer_embed(const Node& n, std::span<const Type> ops) {
  const Type& table = ops[0];
  const Type& ids = ops[1];
  if (!is_weight_dtype(table.dtype) || table.rank() != 2) {
    return bad(n, fmt::format("table must be a weight matrix, got {}", to_string(table)));
  }
  if (ids.dtype != DType::I32 || ids.rank() != 1)
    return bad(n, fmt::format("ids must be i32[T], got {}", to_string(ids)));
  return Type::of(DType::F32, {ids.shape[0], table.shape[1]});
}

Expected<Type> infer_broadcast_binary(const Node& n, std::span<const Type> ops) {
  BITNET_RETURN_IF_ERROR(expect_activation(n, ops[0], "a"));
  const Type& b = ops[1];
  // b is a row broadcast over tokens, a scalar f32[1] (per-projection scales), or a's shape.
  const bool row = b.dtype == DType::F32 && b.rank() == 1 && (b.shape[0] == ops[0].shape[1] || b.shape[0] == Dim{1});
  if (!row && b != ops[0]) {
    return bad(n, fmt::format("b must be f32[{0}], f32[1] or {1}, got {2}", to_string(ops[0].shape[1]),
                              to_string(ops[0]), to_string(b)));
  }
  return ops[0];
}

Expected<Type> infer_quantize(const Node& n, std::span<const Type> ops) {
  BITNET_RETURN_IF_ERROR(expect_activation(n, ops[0], "x"));
  return Type::of(DType::I8Q, ops[0].shape);
}

Expected<Type> infer_matmul(const Node& n, std::span<const Type> ops) {
  const Type& x = ops[0];
  const Type& w = ops[1];
  if ((x.dtype != DType::F32 && x.dtype != DType::I8Q) || x.rank() != 2) {
    return bad(n, fmt::format("x must be f32[T, K] or i8q[T, K], got {}", to_string(x)));
  }
  if (!is_weight_dtype(w.dtype) || w.rank() != 2 || w.shape[0].is_tokens() || w.shape[1].is_tokens()) {
    return bad(n, fmt::format("w must be a weight matrix [M, K], got {}", to_string(w)));
  }
  if (x.shape[1] != w.shape[1]) {
    return bad(n, fmt::format("inner dims differ: x {} and w {}", to_string(x), to_string(w)));
  }
  if (x.dtype == DType::I8Q && w.dtype != DType::I2_S && w.dtype != DType::TQ1_0 && w.dtype != DType::TQ2_0) {
    return bad(n, fmt::format("i8q activations multiply only ternary (i2_s, tq1_0, tq2_0) weights, got {}",
                              dtype_name(w.dtype)));
  }
  return Type::of(DType::F32, {x.shape[0], w.shape[0]});
}

Expected<Type> infer_rope(const Node& n, std::span<const Type> ops) {
  BITNET_RETURN_IF_ERROR(expect_activation(n, ops[0], "x"));
  const std::string& style = n.attr_string("style");
  if (style != "neox" && style != "normal") return bad(n, fmt::format("unknown style '{}'", style));
  const int64_t heads = n.attr_int("n_head");
  const int64_t dim = n.attr_int("head_dim");
  if (heads <= 0 || dim <= 0 || dim % 2 != 0 || ops[0].shape[1].size != heads * dim) {
    return bad(n, fmt::format("{} heads of {} do not tile {}", heads, dim, to_string(ops[0])));
  }
  return ops[0];
}

Expected<Type> infer_attention(const Node& n, std::span<const Type> ops) {
  const int64_t heads = n.attr_int("n_head");
  const int64_t kv_heads = n.attr_int("n_head_kv");
  const int64_t dim = n.attr_int("head_dim");
  if (heads <= 0 || kv_heads <= 0 || dim <= 0 || heads % kv_heads != 0 || n.attr_int("layer") < 0) {
    return bad(n, fmt::format("bad heads: n_head {}, n_head_kv {}, head_dim {}", heads, kv_heads, dim));
  }
  for (int i = 0; i < 3; ++i) BITNET_RETURN_IF_ERROR(expect_activation(n, ops[i], i == 0 ? "q" : i == 1 ? "k" : "v"));
  if (ops[0].shape[1].size != heads * dim)
    return bad(n, fmt::format("q {} is not {} x {}", to_string(ops[0]), heads, dim));
  for (int i = 1; i < 3; ++i) {
    if (ops[i].shape[1].size != kv_heads * dim || ops[i].shape[0] != ops[0].shape[0]) {
      return bad(
          n, fmt::format("k/v {} is not [{}, {} x {}]", to_string(ops[i]), to_string(ops[0].shape[0]), kv_heads, dim));
    }
  }
  return ops[0];
}

Expected<Type> infer_select_rows(const Node& n, std::span<const Type> ops) {
  BITNET_RETURN_IF_ERROR(expect_activation(n, ops[0], "x"));
  if (!ops[0].shape[0].is_tokens())
    return bad(n, fmt::format("selects rows of {}, not of the tokens", to_string(ops[0])));
  return Type::of(DType::F32, {Dim::selected(), ops[0].shape[1]});
}

Expected<Type> infer_output(const Node& n, std::span<const Type> ops) {
  if (n.attr_string("name").empty()) return bad(n, "empty output name");
  return ops[0];
}

// norm / norm_quantize: x [T, K] and a gain [K].
Expected<Type> infer_norm(const Node& n, std::span<const Type> ops) {
  BITNET_RETURN_IF_ERROR(expect_activation(n, ops[0], "x"));
  const Type& g = ops[1];
  if (g.dtype != DType::F32 || g.rank() != 1 || g.shape[0] != ops[0].shape[1]) {
    return bad(n, fmt::format("gain must be f32[{}], got {}", to_string(ops[0].shape[1]), to_string(g)));
  }
  if (n.op == OpKind::NormQuantize) return Type::of(DType::I8Q, ops[0].shape);
  return ops[0];
}

// The type of matmul(x, w) for the fused matmul ops.
Expected<Type> product_type(const Node& n, const Type& x, const Type& w) {
  Node plain = n;
  plain.op = OpKind::MatMul;
  const Type pair[] = {x, w};
  auto t = infer_matmul(plain, pair);
  if (!t.ok()) return bad(n, t.error().message);
  return t;
}

Expected<Type> infer_matmul_cat(const Node& n, std::span<const Type> ops) {
  int64_t total = 0;
  Type result;
  for (size_t i = 1; i < ops.size(); ++i) {
    BITNET_ASSIGN_OR_RETURN(result, product_type(n, ops[0], ops[i]));
    total += result.shape[1].size;
  }
  result.shape[1] = Dim{total};
  return result;
}

Expected<Type> infer_matmul_add(const Node& n, std::span<const Type> ops) {
  BITNET_ASSIGN_OR_RETURN(Type y, product_type(n, ops[0], ops[1]));
  if (ops[2] != y)
    return bad(n, fmt::format("residual {} does not match the product {}", to_string(ops[2]), to_string(y)));
  return y;
}

Expected<Type> infer_gated_ffn(const Node& n, std::span<const Type> ops) {
  const std::string& act = n.attr_string("act");
  if (act != "silu" && act != "relu2") return bad(n, fmt::format("unknown activation '{}'", act));
  BITNET_ASSIGN_OR_RETURN(Type g, product_type(n, ops[0], ops[1]));
  BITNET_ASSIGN_OR_RETURN(Type u, product_type(n, ops[0], ops[2]));
  if (g != u) return bad(n, "gate and up weights have different shapes");
  return g;
}

Expected<Type> infer_rope_attention(const Node& n, std::span<const Type> ops) {
  BITNET_RETURN_IF_ERROR(expect_activation(n, ops[0], "qkv"));
  const std::string& style = n.attr_string("style");
  if (style != "neox" && style != "normal") return bad(n, fmt::format("unknown style '{}'", style));
  const int64_t heads = n.attr_int("n_head");
  const int64_t kv_heads = n.attr_int("n_head_kv");
  const int64_t dim = n.attr_int("head_dim");
  if (heads <= 0 || kv_heads <= 0 || dim <= 0 || dim % 2 != 0 || heads % kv_heads != 0 || n.attr_int("layer") < 0) {
    return bad(n, fmt::format("bad heads: n_head {}, n_head_kv {}, head_dim {}", heads, kv_heads, dim));
  }
  if (ops[0].shape[1].size != (heads + 2 * kv_heads) * dim) {
    return bad(n, fmt::format("qkv {} is not [T, ({} + 2 x {}) x {}]", to_string(ops[0]), heads, kv_heads, dim));
  }
  return Type::of(DType::F32, {ops[0].shape[0], Dim{heads * dim}});
}

constexpr AttrSpec kWeightAttrs[] = {{"tensor", AttrKind::kString}};
constexpr AttrSpec kEpsAttrs[] = {{"eps", AttrKind::kFloat}};
constexpr AttrSpec kRopeAttrs[] = {{"style", AttrKind::kString},
                                   {"n_head", AttrKind::kInt},
                                   {"head_dim", AttrKind::kInt},
                                   {"freq_base", AttrKind::kFloat},
                                   {"freq_scale", AttrKind::kFloat}};
constexpr AttrSpec kAttentionAttrs[] = {
    {"layer", AttrKind::kInt}, {"n_head", AttrKind::kInt}, {"n_head_kv", AttrKind::kInt}, {"head_dim", AttrKind::kInt}};
constexpr AttrSpec kScaleAttrs[] = {{"scale", AttrKind::kFloat}};
constexpr AttrSpec kNameAttrs[] = {{"name", AttrKind::kString}};
constexpr AttrSpec kActAttrs[] = {{"act", AttrKind::kString}};
constexpr AttrSpec kRopeAttentionAttrs[] = {{"layer", AttrKind::kInt},       {"n_head", AttrKind::kInt},
                                            {"n_head_kv", AttrKind::kInt},   {"head_dim", AttrKind::kInt},
                                            {"style", AttrKind::kString},    {"freq_base", AttrKind::kFloat},
                                            {"freq_scale", AttrKind::kFloat}};

struct Rule {
  std::span<const AttrSpec> attrs;
  Expected<Type> (*infer)(const Node&, std::span<const Type>);
};

Rule rule_for(OpKind kind) {
  switch (kind) {
    case OpKind::InputTokens:
      return {{}, infer_input_tokens};
    case OpKind::Weight:
      return {kWeightAttrs, nullptr};
    case OpKind::Embed:
      return {{}, infer_embed};
    case OpKind::RmsNorm:
      return {kEpsAttrs, same_as_first};
    case OpKind::Mul:
    case OpKind::Add:
      return {{}, infer_broadcast_binary};
    case OpKind::QuantizeI8:
      return {{}, infer_quantize};
    case OpKind::MatMul:
      return {{}, infer_matmul};
    case OpKind::Rope:
      return {kRopeAttrs, infer_rope};
    case OpKind::Attention:
      return {kAttentionAttrs, infer_attention};
    case OpKind::Softmax:
      return {kScaleAttrs, same_as_first};
    case OpKind::Silu:
    case OpKind::Relu2:
    case OpKind::Gelu:
      return {{}, same_as_first};
    case OpKind::SelectRows:
      return {{}, infer_select_rows};
    case OpKind::Output:
      return {kNameAttrs, infer_output};
    case OpKind::Norm:
    case OpKind::NormQuantize:
      return {kEpsAttrs, infer_norm};
    case OpKind::MatMulCat:
      return {{}, infer_matmul_cat};
    case OpKind::MatMulAdd:
      return {{}, infer_matmul_add};
    case OpKind::GatedFfn:
      return {kActAttrs, infer_gated_ffn};
    case OpKind::RopeAttention:
      return {kRopeAttentionAttrs, infer_rope_attention};
  }
  return {{}, nullptr};
}

#define BITNET_OP_COUNT(id, name, min_ops, max_ops, split, effects, rows) +1
constexpr size_t kOpCount = 0 BITNET_IR_OPS(BITNET_OP_COUNT);
#undef BITNET_OP_COUNT

std::vector<OpInfo> build_table() {
  std::vector<OpInfo> table;
  constexpr bool kKernel_None = false, kKernel_Rows = true, kKernel_Tokens = true, kKernel_Heads = true;
  constexpr auto kSplit_None = abi::WorkSplit::kTokens, kSplit_Rows = abi::WorkSplit::kRows,
                 kSplit_Tokens = abi::WorkSplit::kTokens, kSplit_Heads = abi::WorkSplit::kHeads;
#define BITNET_OP_ROW(id, name, min_ops, max_ops, split, effects, rows)                                              \
  table.push_back(OpInfo{OpKind::id, name, min_ops, max_ops, kKernel_##split, kSplit_##split, OpEffects::k##effects, \
                         OpRows::k##rows, rule_for(OpKind::id).attrs, rule_for(OpKind::id).infer});
  BITNET_IR_OPS(BITNET_OP_ROW)
#undef BITNET_OP_ROW
  return table;
}

}  // namespace

const OpInfo& op_info(OpKind kind) {
  static const std::vector<OpInfo> table = build_table();
  return table[static_cast<size_t>(kind)];
}

std::optional<abi::WorkSplit> kernel_split(OpKind kind) {
  const OpInfo& info = op_info(kind);
  if (!info.kernel) return std::nullopt;
  return info.split;
}

bool runs_per_sequence(const Graph& graph, const Node& node) {
  switch (op_info(node.op).rows) {
    case OpRows::kIndependent:
      return false;
    case OpRows::kSequence:
      return true;
    case OpRows::kArithmetic:
      break;
  }
  // Products on int8 activations (the ternary weights) are exact integer sums, the same for
  // any batch; float products follow the reference's prompt/decode numerics.
  if (!node.operands.empty() && graph.value(node.operands[0]).type.dtype == DType::I8Q) return false;
  for (ValueId v : node.operands) {
    if (graph.def(v).op == OpKind::Weight && graph.value(v).type.dtype != DType::I2_S) return true;
  }
  return false;
}

std::optional<KeyRope> key_rope(const Graph& graph, const Node& attention) {
  const Node* rope = nullptr;
  if (attention.op == OpKind::RopeAttention) rope = &attention;
  if (attention.op == OpKind::Attention && attention.operands.size() > 1) {
    const Node& k = graph.def(attention.operands[1]);
    if (k.op == OpKind::Rope) rope = &k;
  }
  if (rope == nullptr) return std::nullopt;
  return KeyRope{rope->attr_string("style") == "neox", static_cast<float>(rope->attr_float("freq_base")),
                 static_cast<float>(rope->attr_float("freq_scale"))};
}

std::optional<OpKind> op_from_name(std::string_view name) {
  for (size_t i = 0; i < kOpCount; ++i) {
    if (op_info(static_cast<OpKind>(i)).name == name) return static_cast<OpKind>(i);
  }
  return std::nullopt;
}

std::string_view op_name(OpKind kind) {
  return op_info(kind).name;
}

}  // namespace bitnet::ir
