// Reference interpreter (see interpreter.h). One function per op kind; values live in
// plain vectors and are freed after their last use.
#include "reference/interpreter.h"

#include <limits>

#include "passes/memory_plan.h"
#include "runtime/kv_shift.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace bitnet::reference {
namespace {

using ir::DType;
using ir::OpKind;

float relu2(float x) {
  const float r = x > 0.0f ? x : 0.0f;  // as ggml_relu: -0 and NaN become 0
  return r * r;
}

// The storage of one IR value during a run.
struct Buffer {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> f32;          // F32 values
  std::vector<int32_t> i32;        // token ids
  std::vector<int8_t> i8;          // I8Q values
  std::vector<ref::I8Row> scales;  // I8Q per-row scale and sum
};

struct KvCache {
  std::vector<uint16_t> k;
  std::vector<uint16_t> v;
  int64_t n_ctx = 0;
  ref::KvLayerView view() { return {k.data(), v.data(), n_ctx}; }
};

// The file type of a weight's IR type (ir/dtype.h's one map).
std::optional<gguf::GgmlType> ggml_type_of(DType dtype) {
  const int32_t id = ir::dtype_info(dtype).ggml_type;
  if (id < 0 || !ir::is_weight_dtype(dtype)) return std::nullopt;
  return static_cast<gguf::GgmlType>(id);
}

}  // namespace

struct Interpreter::Impl {
  const ir::Graph& graph;
  runtime::ThreadPool pool;
  std::vector<ref::WeightView> weights;            // by value id (only weight values are set)
  std::vector<int32_t> last_use;                   // node index of each value's last use
  std::map<int64_t, std::vector<KvCache>> kv;      // by layer, then by sequence
  int32_t seq = 0;                                 // the sequence being run (its KV region)
  const std::vector<int64_t>* selected = nullptr;  // select_rows: the rows wanted (null: the last)
  std::vector<Buffer> values;

  Impl(const ir::Graph& g, int threads) : graph(g), pool(threads) {}

  Status bind_weights(const gguf::GgufFile& file) {
    weights.resize(graph.values().size());
    for (const ir::Node& node : graph.nodes()) {
      if (node.op != OpKind::Weight) continue;
      const std::string& name = node.attr_string("tensor");
      const ir::Type& type = graph.value(node.result).type;
      const gguf::TensorInfo* t = file.find_tensor(name);
      if (t == nullptr) return make_error("weight '{}' is not in the model file", name);
      if (ggml_type_of(type.dtype) != t->type) {
        return make_error("weight '{}' is {} in the file but {} in the graph", name, gguf::ggml_type_name(t->type),
                          ir::dtype_name(type.dtype));
      }
      std::vector<int64_t> want;
      for (auto it = t->ne.rbegin(); it != t->ne.rend(); ++it) want.push_back(static_cast<int64_t>(*it));
      std::vector<int64_t> have;
      for (const ir::Dim& d : type.shape) have.push_back(d.size);
      if (want != have) return make_error("weight '{}' has another shape in the file than in the graph", name);
      const int64_t cols = have.back();
      const int64_t rows = have.size() == 2 ? have[0] : 1;
      weights[static_cast<size_t>(node.result)] = ref::WeightView{t->type, t->data.data(), rows, cols};
    }
    return Status::success();
  }

  void plan_lifetimes() {
    last_use.assign(graph.values().size(), -1);
    for (size_t i = 0; i < graph.nodes().size(); ++i) {
      for (ir::ValueId v : graph.nodes()[i].operands) last_use[static_cast<size_t>(v)] = static_cast<int32_t>(i);
    }
  }

  void allocate_kv(int64_t n_ctx_seq, int32_t n_seq) {
    // The reference pads the attended window to a multiple of 32 cells; keep that many
    // cells allocated so padded reads stay in bounds (they are masked).
    const int64_t cells = (n_ctx_seq + 31) / 32 * 32;
    for (const ir::Node& node : graph.nodes()) {
      if (node.op != OpKind::Attention && node.op != OpKind::RopeAttention) continue;
      const int64_t width = node.attr_int("n_head_kv") * node.attr_int("head_dim");
      auto& regions = kv[node.attr_int("layer")];
      regions.resize(static_cast<size_t>(n_seq));
      for (KvCache& c : regions) {
        c.n_ctx = cells;
        c.k.assign(static_cast<size_t>(cells * width), 0);
        c.v.assign(static_cast<size_t>(cells * width), 0);
      }
    }
  }

  // Arena mode (InterpreterOptions::arena_t_max): values are moved into their planned slot
  // after the node that defines them and copied back out for each reader.
  std::optional<passes::MemoryPlan> plan;
  std::vector<uint8_t> arena;

  bool in_arena(ir::ValueId v) const { return graph.def(v).op != OpKind::Weight; }

  void store(ir::ValueId id) {
    Buffer& b = values[static_cast<size_t>(id)];
    uint8_t* p = arena.data() + plan->slots[static_cast<size_t>(id)].offset;
    const auto put = [](uint8_t* at, const auto& vec) {
      if (!vec.empty()) std::memcpy(at, vec.data(), vec.size() * sizeof(vec[0]));
    };
    put(p, b.f32);
    put(p, b.i32);
    put(p, b.i8);
    for (size_t r = 0; r < b.scales.size(); ++r) {  // i8q: the scale array, then the sum array
      const auto row = static_cast<int64_t>(r);
      std::memcpy(p + abi::i8q_scales_offset(b.rows, b.cols) + 4 * row, &b.scales[r].scale, 4);
      std::memcpy(p + abi::i8q_sums_offset(b.rows, b.cols) + 4 * row, &b.scales[r].sum, 4);
    }
    b = Buffer{b.rows, b.cols};
  }

  void load(ir::ValueId id) {
    Buffer& b = values[static_cast<size_t>(id)];
    const uint8_t* p = arena.data() + plan->slots[static_cast<size_t>(id)].offset;
    const auto get = [](const uint8_t* at, auto& vec, int64_t n) {
      vec.resize(static_cast<size_t>(n));
      if (n > 0) std::memcpy(vec.data(), at, vec.size() * sizeof(vec[0]));
    };
    switch (graph.value(id).type.dtype) {
      case DType::I32:
        return get(p, b.i32, b.rows);
      case DType::I8Q:
        get(p, b.i8, b.rows * b.cols);
        b.scales.resize(static_cast<size_t>(b.rows));
        for (int64_t r = 0; r < b.rows; ++r) {
          std::memcpy(&b.scales[static_cast<size_t>(r)].scale, p + abi::i8q_scales_offset(b.rows, b.cols) + 4 * r, 4);
          std::memcpy(&b.scales[static_cast<size_t>(r)].sum, p + abi::i8q_sums_offset(b.rows, b.cols) + 4 * r, 4);
        }
        return;
      default:
        return get(p, b.f32, b.rows * b.cols);
    }
  }

  Buffer& out_f32(const ir::Node& node, int64_t rows, int64_t cols) {
    Buffer& b = values[static_cast<size_t>(node.result)];
    b.rows = rows;
    b.cols = cols;
    b.f32.assign(static_cast<size_t>(rows * cols), 0.0f);
    return b;
  }
  const Buffer& in(const ir::Node& node, int i) const { return values[static_cast<size_t>(node.operands[i])]; }
  const ref::WeightView& weight(const ir::Node& node, int i) const {
    return weights[static_cast<size_t>(node.operands[i])];
  }

  void embed(const ir::Node& node) {
    const ref::WeightView& table = weight(node, 0);
    const Buffer& ids = in(node, 1);
    Buffer& out = out_f32(node, ids.rows, table.cols);
    for (int64_t t = 0; t < ids.rows; ++t) ref::dequantize_row(table, ids.i32[t], out.f32.data() + t * table.cols);
  }

  void rms_norm(const ir::Node& node) {
    const Buffer& x = in(node, 0);
    Buffer& out = out_f32(node, x.rows, x.cols);
    const auto eps = static_cast<float>(node.attr_float("eps"));
    for (int64_t t = 0; t < x.rows; ++t)
      ref::rms_norm(x.f32.data() + t * x.cols, x.cols, eps, out.f32.data() + t * x.cols);
  }

  // b: a weight row/scalar, or an activation of a's shape.
  template <class Op>
  void binary(const ir::Node& node, Op op) {
    const Buffer& a = in(node, 0);
    Buffer& out = out_f32(node, a.rows, a.cols);
    const bool b_is_weight = graph.def(node.operands[1]).op == OpKind::Weight;
    std::vector<float> row;
    const float* b_data;
    int64_t b_stride;
    int64_t b_cols;
    if (b_is_weight) {
      const ref::WeightView& w = weight(node, 1);
      row.resize(static_cast<size_t>(w.cols));
      ref::dequantize_row(w, 0, row.data());
      b_data = row.data();
      b_stride = 0;
      b_cols = w.cols;
    } else {
      const Buffer& b = in(node, 1);
      b_data = b.f32.data();
      b_stride = b.cols;
      b_cols = b.cols;
    }
    for (int64_t t = 0; t < a.rows; ++t) {
      const float* x = a.f32.data() + t * a.cols;
      const float* y = b_data + t * b_stride;
      float* o = out.f32.data() + t * a.cols;
      for (int64_t i = 0; i < a.cols; ++i) o[i] = op(x[i], y[b_cols == 1 ? 0 : i]);
    }
  }

  Buffer& out_i8q(const ir::Node& node, int64_t rows, int64_t cols) {
    Buffer& b = values[static_cast<size_t>(node.result)];
    b.rows = rows;
    b.cols = cols;
    b.i8.assign(static_cast<size_t>(rows * cols), 0);
    b.scales.assign(static_cast<size_t>(rows), {});
    return b;
  }

  void quantize(const ir::Node& node) {
    const Buffer& x = in(node, 0);
    Buffer& out = out_i8q(node, x.rows, x.cols);
    for (int64_t t = 0; t < x.rows; ++t) {
      out.scales[t] = ref::quantize_row_i8(x.f32.data() + t * x.cols, x.cols, out.i8.data() + t * x.cols);
    }
  }

  // x (operand 0) times w into y [x.rows, w.rows], with the kernel the reference picks for
  // the call's batch size (spec 8.4, 8.6). Every op of the matmul family goes through here.
  void product(const ir::Node& node, const ref::WeightView& w, float* y) {
    const Buffer& x = in(node, 0);
    const ref::Mode mode = x.rows == 1 ? ref::Mode::kDecode : ref::Mode::kPrompt;
    const bool quantized = graph.value(node.operands[0]).type.dtype == DType::I8Q;
    pool.parallel_for(w.rows, [&](int64_t r0, int64_t r1) {
      if (quantized) {
        ref::matmul_i8q_rows(x.i8.data(), x.scales.data(), x.rows, w, r0, r1, y);
      } else {
        ref::matmul_rows(x.f32.data(), x.rows, w, r0, r1, mode, y);
      }
    });
  }

  void matmul(const ir::Node& node) {
    const ref::WeightView& w = weight(node, 1);
    product(node, w, out_f32(node, in(node, 0).rows, w.rows).f32.data());
  }

  // RoPE in place on `rows` rows of `heads` heads (style, head_dim and frequencies from the
  // node: rope and rope_attention name them alike).
  static void rope_rows(const ir::Node& node, float* data, int64_t rows, int64_t heads, int64_t pos0) {
    const int64_t dim = node.attr_int("head_dim");
    const auto base = static_cast<float>(node.attr_float("freq_base"));
    const auto scale = static_cast<float>(node.attr_float("freq_scale"));
    const bool neox = node.attr_string("style") == "neox";
    for (int64_t t = 0; t < rows; ++t) {
      float* row = data + t * heads * dim;
      if (neox) {
        ref::rope_neox(row, dim, heads, pos0 + t, base, scale);
      } else {
        ref::rope_normal(row, dim, heads, pos0 + t, base, scale);
      }
    }
  }

  void rope(const ir::Node& node, int64_t pos0) {
    const Buffer& x = in(node, 0);
    Buffer& out = out_f32(node, x.rows, x.cols);
    out.f32 = x.f32;
    rope_rows(node, out.f32.data(), x.rows, node.attr_int("n_head"), pos0);
  }

  // KV append then causal attention (attention and rope_attention share the attributes).
  void attend(const ir::Node& node, const float* q, const float* k, const float* v, int64_t rows, int64_t pos0,
              float* out) {
    const ref::AttentionShape shape{node.attr_int("n_head"), node.attr_int("n_head_kv"), node.attr_int("head_dim")};
    KvCache& cache = kv[node.attr_int("layer")][static_cast<size_t>(seq)];
    ref::kv_store(k, v, rows, pos0, shape, cache.view());
    const ref::Mode mode = rows == 1 ? ref::Mode::kDecode : ref::Mode::kPrompt;
    ref::attention(q, rows, pos0, shape, cache.view(), mode, out);
  }

  void attention(const ir::Node& node, int64_t pos0) {
    const Buffer& q = in(node, 0);
    Buffer& out = out_f32(node, q.rows, q.cols);
    attend(node, q.f32.data(), in(node, 1).f32.data(), in(node, 2).f32.data(), q.rows, pos0, out.f32.data());
  }

  void softmax(const ir::Node& node) {
    const Buffer& x = in(node, 0);
    Buffer& out = out_f32(node, x.rows, x.cols);
    const auto scale = static_cast<float>(node.attr_float("scale"));
    for (int64_t t = 0; t < x.rows; ++t) {
      ref::softmax(x.f32.data() + t * x.cols, nullptr, x.cols, scale, out.f32.data() + t * x.cols);
    }
  }

  template <class Fn>
  void unary(const ir::Node& node, Fn fn) {
    const Buffer& x = in(node, 0);
    Buffer& out = out_f32(node, x.rows, x.cols);
    for (size_t i = 0; i < x.f32.size(); ++i) out.f32[i] = fn(x.f32[i]);
  }

  // Row by row: ggml's vectorised SiLU handles the last width % 16 values with libm expf.
  void silu(const ir::Node& node) {
    const Buffer& x = in(node, 0);
    Buffer& out = out_f32(node, x.rows, x.cols);
    for (int64_t t = 0; t < x.rows; ++t) ref::silu_row(x.f32.data() + t * x.cols, x.cols, out.f32.data() + t * x.cols);
  }

  void select_rows(const ir::Node& node) {
    const Buffer& x = in(node, 0);
    if (selected == nullptr) {  // one sequence alone: its last row
      Buffer& out = out_f32(node, 1, x.cols);
      std::copy(x.f32.end() - x.cols, x.f32.end(), out.f32.begin());
      return;
    }
    Buffer& out = out_f32(node, static_cast<int64_t>(selected->size()), x.cols);
    for (size_t r = 0; r < selected->size(); ++r) {
      std::copy_n(x.f32.begin() + (*selected)[r] * x.cols, x.cols, out.f32.begin() + static_cast<int64_t>(r) * x.cols);
    }
  }

  // ---- fused ops: each is the exact composition of the ops it replaces (same kernels, same
  // order, same float operations), so fusing never changes a result bit.

  // norm = rms_norm then mul by the gain; norm_quantize adds quantize_i8 on each row.
  void norm(const ir::Node& node, bool quantize_rows) {
    const Buffer& x = in(node, 0);
    std::vector<float> gain(static_cast<size_t>(x.cols));
    ref::dequantize_row(weight(node, 1), 0, gain.data());
    const auto eps = static_cast<float>(node.attr_float("eps"));
    Buffer& out = quantize_rows ? out_i8q(node, x.rows, x.cols) : out_f32(node, x.rows, x.cols);
    std::vector<float> row(static_cast<size_t>(x.cols));
    for (int64_t t = 0; t < x.rows; ++t) {
      ref::rms_norm(x.f32.data() + t * x.cols, x.cols, eps, row.data());
      for (int64_t i = 0; i < x.cols; ++i) row[i] = row[i] * gain[i];
      if (quantize_rows) {
        out.scales[t] = ref::quantize_row_i8(row.data(), x.cols, out.i8.data() + t * x.cols);
      } else {
        std::copy(row.begin(), row.end(), out.f32.begin() + t * x.cols);
      }
    }
  }

  // Each product on its own, then placed side by side in every token row.
  void matmul_cat(const ir::Node& node) {
    const int64_t rows = in(node, 0).rows;
    const int64_t total = graph.value(node.result).type.shape[1].size;
    Buffer& out = out_f32(node, rows, total);
    std::vector<float> part;
    int64_t col = 0;
    for (int i = 1; i < static_cast<int>(node.operands.size()); ++i) {
      const ref::WeightView& w = weight(node, i);
      part.assign(static_cast<size_t>(rows * w.rows), 0.0f);
      product(node, w, part.data());
      for (int64_t t = 0; t < rows; ++t) {
        std::copy_n(part.begin() + t * w.rows, w.rows, out.f32.begin() + t * total + col);
      }
      col += w.rows;
    }
  }

  // r + x w^T with r first, as the lowering's `add r, matmul` computed it.
  void matmul_add(const ir::Node& node) {
    const ref::WeightView& w = weight(node, 1);
    const Buffer& r = in(node, 2);
    std::vector<float> y(r.f32.size());
    product(node, w, y.data());
    Buffer& out = out_f32(node, r.rows, r.cols);
    for (size_t i = 0; i < y.size(); ++i) out.f32[i] = r.f32[i] + y[i];
  }

  // act(x w_gate^T) * (x w_up^T), the activation row by row as the silu / relu2 ops do.
  void gated_ffn(const ir::Node& node) {
    const ref::WeightView& wg = weight(node, 1);
    const int64_t rows = in(node, 0).rows;
    std::vector<float> gate(static_cast<size_t>(rows * wg.rows));
    std::vector<float> up(gate.size());
    product(node, wg, gate.data());
    product(node, weight(node, 2), up.data());
    Buffer& out = out_f32(node, rows, wg.rows);
    if (node.attr_string("act") == "silu") {
      for (int64_t t = 0; t < rows; ++t)
        ref::silu_row(gate.data() + t * wg.rows, wg.rows, out.f32.data() + t * wg.rows);
    } else {
      for (size_t i = 0; i < gate.size(); ++i) out.f32[i] = relu2(gate[i]);
    }
    for (size_t i = 0; i < up.size(); ++i) out.f32[i] = out.f32[i] * up[i];
  }

  // The qkv row is q [H*D] | k [HKV*D] | v [HKV*D]; split, rope q and k, then attention.
  void rope_attention(const ir::Node& node, int64_t pos0) {
    const Buffer& qkv = in(node, 0);
    const int64_t heads = node.attr_int("n_head");
    const int64_t kv_heads = node.attr_int("n_head_kv");
    const int64_t dim = node.attr_int("head_dim");
    const int64_t nq = heads * dim;
    const int64_t nkv = kv_heads * dim;
    std::vector<float> q(static_cast<size_t>(qkv.rows * nq));
    std::vector<float> k(static_cast<size_t>(qkv.rows * nkv));
    std::vector<float> v(k.size());
    for (int64_t t = 0; t < qkv.rows; ++t) {
      const float* row = qkv.f32.data() + t * qkv.cols;
      std::copy_n(row, nq, q.begin() + t * nq);
      std::copy_n(row + nq, nkv, k.begin() + t * nkv);
      std::copy_n(row + nq + nkv, nkv, v.begin() + t * nkv);
    }
    rope_rows(node, q.data(), qkv.rows, heads, pos0);
    rope_rows(node, k.data(), qkv.rows, kv_heads, pos0);
    Buffer& out = out_f32(node, qkv.rows, nq);
    attend(node, q.data(), k.data(), v.data(), qkv.rows, pos0, out.f32.data());
  }

  void execute(const ir::Node& node, std::span<const int32_t> tokens, int64_t pos0) {
    switch (node.op) {
      case OpKind::InputTokens: {
        Buffer& b = values[static_cast<size_t>(node.result)];
        b.rows = static_cast<int64_t>(tokens.size());
        b.cols = 1;
        b.i32.assign(tokens.begin(), tokens.end());
        return;
      }
      case OpKind::Weight:
        return;  // bound once, in `weights`
      case OpKind::Embed:
        return embed(node);
      case OpKind::RmsNorm:
        return rms_norm(node);
      case OpKind::Mul:
        return binary(node, [](float a, float b) { return a * b; });
      case OpKind::Add:
        return binary(node, [](float a, float b) { return a + b; });
      case OpKind::QuantizeI8:
        return quantize(node);
      case OpKind::MatMul:
        return matmul(node);
      case OpKind::Rope:
        return rope(node, pos0);
      case OpKind::Attention:
        return attention(node, pos0);
      case OpKind::Softmax:
        return softmax(node);
      case OpKind::Silu:
        return silu(node);
      case OpKind::Relu2:
        return unary(node, relu2);
      case OpKind::Gelu:
        return unary(node, [](float x) {
          constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
          return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
        });
      case OpKind::SelectRows:
        return select_rows(node);
      case OpKind::Output:
        values[static_cast<size_t>(node.result)] = in(node, 0);
        return;
      case OpKind::Norm:
        return norm(node, false);
      case OpKind::NormQuantize:
        return norm(node, true);
      case OpKind::MatMulCat:
        return matmul_cat(node);
      case OpKind::MatMulAdd:
        return matmul_add(node);
      case OpKind::GatedFfn:
        return gated_ffn(node);
      case OpKind::RopeAttention:
        return rope_attention(node, pos0);
    }
  }
};

Interpreter::Interpreter(std::unique_ptr<Impl> impl, const InterpreterOptions& options, int64_t n_vocab)
    : SequenceSession(options.n_seq_max, options.n_ctx,
                      options.arena_t_max > 0 ? options.arena_t_max : std::numeric_limits<int32_t>::max(), n_vocab),
      impl_(std::move(impl)) {}
Interpreter::~Interpreter() = default;

Expected<std::unique_ptr<Interpreter>> Interpreter::create(const ir::Graph& graph, const gguf::GgufFile& file,
                                                           const InterpreterOptions& options) {
  if (options.n_ctx <= 0) return make_error("context size must be positive, got {}", options.n_ctx);
  if (options.threads <= 0) return make_error("thread count must be positive, got {}", options.threads);
  if (options.n_seq_max <= 0 || options.n_seq_max > options.n_ctx) {
    return make_error("cannot hold {} sequences in a context of {}", options.n_seq_max, options.n_ctx);
  }
  auto impl = std::make_unique<Impl>(graph, options.threads);
  BITNET_RETURN_IF_ERROR(impl->bind_weights(file));
  impl->plan_lifetimes();
  impl->allocate_kv(options.n_ctx / options.n_seq_max, options.n_seq_max);
  if (options.arena_t_max > 0) {
    BITNET_ASSIGN_OR_RETURN(impl->plan, passes::plan_memory(graph, options.arena_t_max));
    impl->arena.assign(static_cast<size_t>(impl->plan->arena_bytes), 0);
  }
  int64_t n_vocab = 0;
  for (const ir::Node& node : graph.nodes()) {
    if (node.op == OpKind::Embed) n_vocab = impl->weight(node, 0).rows;
  }
  return std::unique_ptr<Interpreter>(new Interpreter(std::move(impl), options, n_vocab));
}

Status Interpreter::run_observed(std::span<const int32_t> tokens, const NodeObserver& observe) {
  BITNET_RETURN_IF_ERROR(check_tokens(tokens));
  auto outputs = run_rows(tokens, pos(), 0, nullptr, &observe);
  if (!outputs.ok()) return outputs.error();
  return Status::success();
}

Status Interpreter::run_layout(const runtime::BatchLayout& layout, runtime::Outputs& all) {
  all.clear();
  for (const runtime::SequenceRows& g : layout.groups) {
    std::vector<int64_t> selected;  // the group's wanted rows, relative to its first row
    for (int64_t row : layout.selected) {
      if (row >= g.row0 && row < g.row0 + g.n) selected.push_back(row - g.row0);
    }
    const std::span<const int32_t> tokens(layout.tokens.data() + g.row0, static_cast<size_t>(g.n));
    BITNET_ASSIGN_OR_RETURN(runtime::Outputs out, run_rows(tokens, g.pos0, g.seq, &selected, nullptr));
    for (auto& [name, m] : out) {
      runtime::Matrix& into = all[name];
      into.cols = m.cols;
      into.rows += m.rows;
      into.data.insert(into.data.end(), m.data.begin(), m.data.end());
    }
  }
  return Status::success();
}

void Interpreter::copy_cells(int32_t from_seq, int32_t to_seq, int64_t p0, int64_t p1) {
  // The reference layout (ref::KvLayerView): K [cell][width], V transposed [width][cell].
  for (auto& [layer, regions] : impl_->kv) {
    const KvCache& from = regions[static_cast<size_t>(from_seq)];
    KvCache& to = regions[static_cast<size_t>(to_seq)];
    const int64_t width = static_cast<int64_t>(from.k.size()) / from.n_ctx;
    std::copy(from.k.begin() + p0 * width, from.k.begin() + p1 * width, to.k.begin() + p0 * width);
    for (int64_t c = 0; c < width; ++c) {
      std::copy(from.v.begin() + c * from.n_ctx + p0, from.v.begin() + c * from.n_ctx + p1,
                to.v.begin() + c * to.n_ctx + p0);
    }
  }
}

void Interpreter::move_cells(int32_t seq, int64_t from, int64_t to, int64_t n) {
  for (const ir::Node& node : impl_->graph.nodes()) {
    if (node.op != OpKind::Attention && node.op != OpKind::RopeAttention) continue;
    const auto rope = ir::key_rope(impl_->graph, node);
    const int64_t hd = node.attr_int("head_dim");
    const runtime::KeyRotation rotation{rope.has_value(), rope && rope->neox, rope ? rope->freq_base : 0.0f,
                                        rope ? rope->freq_scale : 0.0f, hd};
    KvCache& c = impl_->kv[node.attr_int("layer")][static_cast<size_t>(seq)];
    const int64_t width = static_cast<int64_t>(c.k.size()) / c.n_ctx;
    for (int64_t i = 0; i < n; ++i) {
      std::copy_n(c.k.begin() + (from + i) * width, width, c.k.begin() + (to + i) * width);
      for (int64_t h = 0; h < width / hd; ++h)
        runtime::rotate_key(c.k.data() + (to + i) * width + h * hd, rotation, to - from);
      for (int64_t e = 0; e < width; ++e) c.v[e * c.n_ctx + to + i] = c.v[e * c.n_ctx + from + i];
    }
  }
}

Expected<runtime::Outputs> Interpreter::run_rows(std::span<const int32_t> tokens, int64_t pos0, int32_t seq,
                                                 const std::vector<int64_t>* selected, const NodeObserver* observe) {
  const auto n = static_cast<int64_t>(tokens.size());
  Impl& m = *impl_;
  if (m.plan && n > m.plan->t_max) {
    return make_error("a batch of {} tokens exceeds the memory plan's {} tokens", n, m.plan->t_max);
  }
  m.seq = seq;
  m.selected = selected;
  m.values.assign(m.graph.values().size(), Buffer{});
  runtime::Outputs outputs;
  for (size_t i = 0; i < m.graph.nodes().size(); ++i) {
    const ir::Node& node = m.graph.nodes()[i];
    if (m.plan) {
      for (ir::ValueId v : node.operands) {
        if (m.in_arena(v)) m.load(v);
      }
    }
    m.execute(node, tokens, pos0);
    if (observe && node.op != OpKind::Weight && node.op != OpKind::Output &&
        !(*observe)(i, m.values[static_cast<size_t>(node.result)].f32)) {
      return outputs;
    }
    if (node.op == OpKind::Output) {
      Buffer& b = m.values[static_cast<size_t>(node.result)];
      outputs[node.attr_string("name")] = runtime::Matrix{b.rows, b.cols, std::move(b.f32)};
    }
    for (ir::ValueId v : node.operands) {
      Buffer& b = m.values[static_cast<size_t>(v)];
      if (m.plan || m.last_use[static_cast<size_t>(v)] == static_cast<int32_t>(i)) b = Buffer{b.rows, b.cols};
    }
    if (m.plan && node.op != OpKind::Weight && node.op != OpKind::Output) m.store(node.result);
  }
  return outputs;
}

}  // namespace bitnet::reference
