// The op vocabulary, declared once. Each row names the op, its operand count and its
// attributes; ops_table.cpp gives each a type rule. The enum, the generic builder,
// the verifier and the printer all follow from this table (as ggml's type_traits and
// MLIR's ODS do). Semantics of each op are documented in the row's comment and
// implemented once, in the reference interpreter (reference/interpreter.cpp).
#pragma once

#include "ir/support/expected.h"
#include "ir/type.h"
#include "schema/abi.h"

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bitnet::ir {

// X(Id, "name", min_operands, max_operands, split, effects, rows)
//   split: how the node's kernel divides its work over threads (abi::WorkSplit: Rows, Tokens,
//          Heads), or None for nodes the executor handles itself (no kernel).
//   effects: Pure, WritesKv (appends to the KV cache: never removed as dead), IsOutput.
//   rows: how a call over the tokens of many sequences runs (runtime/batch.h):
//          Independent: each result row depends on its own row only: once over all rows;
//          Sequence: depends on positions or the KV cache: once per sequence;
//          Arithmetic: matmuls; independent for integer weights (I2_S: exact integer dot
//          products), per sequence otherwise (float arithmetic follows the row count, as the
//          reference's prompt and decode modes) - see runs_per_sequence.
#define BITNET_IR_OPS(X)                                                                          \
  /* () -> i32[T]: the token ids of this call */                                                  \
  X(InputTokens, "input.tokens", 0, 0, None, Pure, Independent)                                   \
  /* () -> dtype[shape] {tensor}: a weight tensor of the model file, mapped, never copied */      \
  X(Weight, "weight", 0, 0, None, Pure, Independent)                                              \
  /* (table[V, E], ids i32[T]) -> f32[T, E]: rows of the table, dequantized */                    \
  X(Embed, "embed", 2, 2, Tokens, Pure, Independent)                                              \
  /* (x f32[T, N]) -> f32[T, N] {eps}: x / sqrt(mean(x^2) + eps), no gain */                      \
  X(RmsNorm, "rms_norm", 1, 1, Tokens, Pure, Independent)                                         \
  /* (a f32[T, N], b f32[N] | f32[1] | f32[T, N]) -> f32[T, N]: elementwise, b broadcast */       \
  X(Mul, "mul", 2, 2, Tokens, Pure, Independent)                                                  \
  X(Add, "add", 2, 2, Tokens, Pure, Independent)                                                  \
  /* (x f32[T, K]) -> i8q[T, K]: per-token absmax int8 quantization (spec 8.2) */                 \
  X(QuantizeI8, "quantize_i8", 1, 1, Tokens, Pure, Independent)                                   \
  /* (x f32[T, K] | i8q[T, K], w[M, K]) -> f32[T, M]: x times w transposed */                     \
  X(MatMul, "matmul", 2, 2, Rows, Pure, Arithmetic)                                               \
  /* (x f32[T, H * D]) -> f32[T, H * D] {style, n_head, head_dim, freq_base, freq_scale}:         \
     rotary embedding at positions pos..pos+T-1 */                                                \
  X(Rope, "rope", 1, 1, Tokens, Pure, Sequence)                                                   \
  /* (q f32[T, H * D], k f32[T, HKV * D], v f32[T, HKV * D]) -> f32[T, H * D]                     \
     {layer, n_head, n_head_kv, head_dim}: append k, v to the layer's KV cache at positions       \
     pos.., then causal softmax(q k^T / sqrt(D)) v per head, GQA head groups */                   \
  X(Attention, "attention", 3, 3, Heads, WritesKv, Sequence)                                      \
  /* (x f32[T, N]) -> f32[T, N] {scale}: row softmax of x * scale */                              \
  X(Softmax, "softmax", 1, 1, Tokens, Pure, Independent)                                          \
  /* elementwise activations: x * sigmoid(x); max(x, 0)^2; tanh-approximated gelu */              \
  X(Silu, "silu", 1, 1, Tokens, Pure, Independent)                                                \
  X(Relu2, "relu2", 1, 1, Tokens, Pure, Independent)                                              \
  X(Gelu, "gelu", 1, 1, Tokens, Pure, Independent)                                                \
  /* (x f32[T, N]) -> f32[R, N]: the rows whose logits are wanted (a run-time list, ascending;    \
     the last token's when one sequence runs alone) */                                            \
  X(SelectRows, "select_rows", 1, 1, None, Pure, Independent)                                     \
  /* (x) -> x {name}: marks a graph output */                                                     \
  X(Output, "output", 1, 1, None, IsOutput, Independent)                                          \
  /* ---- fused ops (produced by passes; each is one kernel; the interpreter runs them as         \
     the exact composition of the ops they replace) ---- */                                       \
  /* (x f32[T, K], gain f32[K]) -> f32[T, K] {eps}: rms_norm then mul by the gain */              \
  X(Norm, "norm", 2, 2, Tokens, Pure, Independent)                                                \
  /* (x f32[T, K], gain f32[K]) -> i8q[T, K] {eps}: norm then quantize_i8 */                      \
  X(NormQuantize, "norm_quantize", 2, 2, Tokens, Pure, Independent)                               \
  /* (x, w1[M1, K], w2[M2, K], ...) -> f32[T, M1 + M2 + ...]: matmuls of one input by several     \
     weights, results side by side (QKV concatenation without copying weights) */                 \
  X(MatMulCat, "matmul_cat", 3, 9, Rows, Pure, Arithmetic)                                        \
  /* (x, w[M, K], r f32[T, M]) -> f32[T, M]: r + matmul(x, w) (residual add epilogue) */          \
  X(MatMulAdd, "matmul_add", 3, 3, Rows, Pure, Arithmetic)                                        \
  /* (x, w_gate[F, K], w_up[F, K]) -> f32[T, F] {act}: act(matmul(x, w_gate)) *                   \
     matmul(x, w_up), act = "silu" | "relu2" */                                                   \
  X(GatedFfn, "gated_ffn", 3, 3, Rows, Pure, Arithmetic)                                          \
  /* (qkv f32[T, (H + 2 HKV) * D]) -> f32[T, H * D] {layer, n_head, n_head_kv, head_dim,          \
     style, freq_base, freq_scale}: each row is q [H * D] | k [HKV * D] | v [HKV * D] (the        \
     matmul_cat of the Q, K, V products); rope on q and k, then attention (KV append included) */ \
  X(RopeAttention, "rope_attention", 1, 1, Heads, WritesKv, Sequence)

enum class OpKind : uint8_t {
#define BITNET_OP_ENUM(id, name, min_ops, max_ops, split, effects, rows) id,
  BITNET_IR_OPS(BITNET_OP_ENUM)
#undef BITNET_OP_ENUM
};

// Attribute values: integers, floats (f32 hyper-parameters are stored exactly) or strings.
using AttrValue = std::variant<int64_t, double, std::string>;
enum class AttrKind : uint8_t { kInt, kFloat, kString };

struct Attr {
  std::string name;
  AttrValue value;
  bool operator==(const Attr&) const = default;
};

struct AttrSpec {
  std::string_view name;
  AttrKind kind;
};

struct Node;

enum class OpEffects : uint8_t { kPure, kWritesKv, kIsOutput };
enum class OpRows : uint8_t { kIndependent, kSequence, kArithmetic };

struct OpInfo {
  OpKind kind;
  std::string_view name;
  int min_operands;
  int max_operands;
  bool kernel;                      // runs a compiled kernel (else the executor handles it)
  abi::WorkSplit split;             // how a kernel's work divides (meaningful only when `kernel`)
  OpEffects effects;                // kPure nodes whose results nobody reads may be removed
  OpRows rows;                      // how it runs over the rows of many sequences
  std::span<const AttrSpec> attrs;  // all required, printed in this order
  // Result type from the node's attributes and operand types (null: the builder supplies
  // the result type explicitly, as for weights).
  Expected<Type> (*infer)(const Node& node, std::span<const Type> operands);
};

const OpInfo& op_info(OpKind kind);
// The work split of a node's kernel; nullopt for nodes that run none.
std::optional<abi::WorkSplit> kernel_split(OpKind kind);
std::string_view op_name(OpKind kind);
std::optional<OpKind> op_from_name(std::string_view name);

class Graph;
// Whether a batch of many sequences runs `node` once per sequence (the op table's rows column,
// with the weights' types for matmuls) rather than once over all rows.
bool runs_per_sequence(const Graph& graph, const Node& node);

// How the keys an attention node caches were rotated (its own attributes for rope_attention,
// the rope node that feeds its keys for attention); nullopt when they were not. Shifting
// cached positions (a KV edit) rotates the keys again by the shift.
struct KeyRope {
  bool neox = false;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
};
std::optional<KeyRope> key_rope(const Graph& graph, const Node& attention);

}  // namespace bitnet::ir
