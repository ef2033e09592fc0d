// Reference interpreter (see interpreter.h). One function per op kind; values live in
// plain vectors and are freed after their last use.
#include "runtime/interpreter.h"

#include <algorithm>
#include <cmath>

namespace bitnet::runtime {
namespace {

using ir::DType;
using ir::OpKind;

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

std::optional<gguf::GgmlType> ggml_type_of(DType dtype) {
  switch (dtype) {
    case DType::F32: return gguf::GgmlType::F32;
    case DType::F16: return gguf::GgmlType::F16;
    case DType::BF16: return gguf::GgmlType::BF16;
    case DType::Q8_0: return gguf::GgmlType::Q8_0;
    case DType::Q4_0: return gguf::GgmlType::Q4_0;
    case DType::Q6_K: return gguf::GgmlType::Q6_K;
    case DType::TQ1_0: return gguf::GgmlType::TQ1_0;
    case DType::TQ2_0: return gguf::GgmlType::TQ2_0;
    case DType::I2_S: return gguf::GgmlType::I2_S;
    default: return std::nullopt;
  }
}

}  // namespace

struct Interpreter::Impl {
  const ir::Graph& graph;
  ThreadPool pool;
  std::vector<ref::WeightView> weights;  // by value id (only weight values are set)
  std::vector<int32_t> last_use;         // node index of each value's last use
  std::map<int64_t, KvCache> kv;         // by layer
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

  void allocate_kv(int64_t n_ctx) {
    // The reference pads the attended window to a multiple of 32 cells; keep that many
    // cells allocated so padded reads stay in bounds (they are masked).
    const int64_t cells = (n_ctx + 31) / 32 * 32;
    for (const ir::Node& node : graph.nodes()) {
      if (node.op != OpKind::Attention) continue;
      const int64_t width = node.attr_int("n_head_kv") * node.attr_int("head_dim");
      KvCache& c = kv[node.attr_int("layer")];
      c.n_ctx = cells;
      c.k.assign(static_cast<size_t>(cells * width), 0);
      c.v.assign(static_cast<size_t>(cells * width), 0);
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
    for (int64_t t = 0; t < x.rows; ++t) ref::rms_norm(x.f32.data() + t * x.cols, x.cols, eps, out.f32.data() + t * x.cols);
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

  void quantize(const ir::Node& node) {
    const Buffer& x = in(node, 0);
    Buffer& out = values[static_cast<size_t>(node.result)];
    out.rows = x.rows;
    out.cols = x.cols;
    out.i8.assign(static_cast<size_t>(x.rows * x.cols), 0);
    out.scales.assign(static_cast<size_t>(x.rows), {});
    for (int64_t t = 0; t < x.rows; ++t) {
      out.scales[t] = ref::quantize_row_i8(x.f32.data() + t * x.cols, x.cols, out.i8.data() + t * x.cols);
    }
  }

  void matmul(const ir::Node& node) {
    const Buffer& x = in(node, 0);
    const ref::WeightView& w = weight(node, 1);
    Buffer& out = out_f32(node, x.rows, w.rows);
    // The reference picks its kernels by the batch size of the call (spec 8.4, 8.6).
    const ref::Mode mode = x.rows == 1 ? ref::Mode::kDecode : ref::Mode::kPrompt;
    const bool quantized = graph.value(node.operands[0]).type.dtype == DType::I8Q;
    pool.parallel_for(w.rows, [&](int64_t r0, int64_t r1) {
      if (quantized) {
        ref::matmul_i8q_rows(x.i8.data(), x.scales.data(), x.rows, w, r0, r1, out.f32.data());
      } else {
        ref::matmul_rows(x.f32.data(), x.rows, w, r0, r1, mode, out.f32.data());
      }
    });
  }

  void rope(const ir::Node& node, int64_t pos0) {
    const Buffer& x = in(node, 0);
    Buffer& out = out_f32(node, x.rows, x.cols);
    out.f32 = x.f32;
    const int64_t heads = node.attr_int("n_head");
    const int64_t dim = node.attr_int("head_dim");
    const auto base = static_cast<float>(node.attr_float("freq_base"));
    const auto scale = static_cast<float>(node.attr_float("freq_scale"));
    const bool neox = node.attr_string("style") == "neox";
    for (int64_t t = 0; t < x.rows; ++t) {
      float* row = out.f32.data() + t * x.cols;
      if (neox) {
        ref::rope_neox(row, dim, heads, pos0 + t, base, scale);
      } else {
        ref::rope_normal(row, dim, heads, pos0 + t, base, scale);
      }
    }
  }

  void attention(const ir::Node& node, int64_t pos0) {
    const Buffer& q = in(node, 0);
    const Buffer& k = in(node, 1);
    const Buffer& v = in(node, 2);
    Buffer& out = out_f32(node, q.rows, q.cols);
    const ref::AttentionShape shape{node.attr_int("n_head"), node.attr_int("n_head_kv"), node.attr_int("head_dim")};
    KvCache& cache = kv[node.attr_int("layer")];
    ref::kv_store(k.f32.data(), v.f32.data(), q.rows, pos0, shape, cache.view());
    const ref::Mode mode = q.rows == 1 ? ref::Mode::kDecode : ref::Mode::kPrompt;
    ref::attention(q.f32.data(), q.rows, pos0, shape, cache.view(), mode, out.f32.data());
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

  void select_last(const ir::Node& node) {
    const Buffer& x = in(node, 0);
    Buffer& out = out_f32(node, 1, x.cols);
    std::copy(x.f32.end() - x.cols, x.f32.end(), out.f32.begin());
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
      case OpKind::Weight: return;  // bound once, in `weights`
      case OpKind::Embed: return embed(node);
      case OpKind::RmsNorm: return rms_norm(node);
      case OpKind::Mul: return binary(node, [](float a, float b) { return a * b; });
      case OpKind::Add: return binary(node, [](float a, float b) { return a + b; });
      case OpKind::QuantizeI8: return quantize(node);
      case OpKind::MatMul: return matmul(node);
      case OpKind::Rope: return rope(node, pos0);
      case OpKind::Attention: return attention(node, pos0);
      case OpKind::Softmax: return softmax(node);
      case OpKind::Silu: return silu(node);
      case OpKind::Relu2: return unary(node, [](float x) {
          const float r = x > 0.0f ? x : 0.0f;  // as ggml_relu: -0 and NaN become 0
          return r * r;
        });
      case OpKind::Gelu: return unary(node, [](float x) {
          constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
          return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
        });
      case OpKind::SelectLast: return select_last(node);
      case OpKind::Output: values[static_cast<size_t>(node.result)] = in(node, 0); return;
    }
  }
};

Interpreter::Interpreter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Interpreter::~Interpreter() = default;

Expected<std::unique_ptr<Interpreter>> Interpreter::create(const ir::Graph& graph, const gguf::GgufFile& file,
                                                           const InterpreterOptions& options) {
  if (options.n_ctx <= 0) return make_error("context size must be positive, got {}", options.n_ctx);
  if (options.threads <= 0) return make_error("thread count must be positive, got {}", options.threads);
  auto impl = std::make_unique<Impl>(graph, options.threads);
  BITNET_RETURN_IF_ERROR(impl->bind_weights(file));
  impl->plan_lifetimes();
  impl->allocate_kv(options.n_ctx);
  int64_t n_vocab = 0;
  for (const ir::Node& node : graph.nodes()) {
    if (node.op == OpKind::Embed) n_vocab = impl->weight(node, 0).rows;
  }
  auto interp = std::unique_ptr<Interpreter>(new Interpreter(std::move(impl)));
  interp->n_ctx_ = options.n_ctx;
  interp->n_vocab_ = n_vocab;
  return interp;
}

Expected<std::map<std::string, Matrix>> Interpreter::run(std::span<const int32_t> tokens) {
  if (tokens.empty()) return make_error("empty batch: nothing to evaluate");
  const auto n = static_cast<int64_t>(tokens.size());
  if (pos_ + n > n_ctx_) {
    return make_error("context is full: {} tokens in the cache + {} new exceed the context size {}", pos_, n, n_ctx_);
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= n_vocab_) return make_error("token id {} is outside the vocabulary [0, {})", id, n_vocab_);
  }
  Impl& m = *impl_;
  m.values.assign(m.graph.values().size(), Buffer{});
  std::map<std::string, Matrix> outputs;
  for (size_t i = 0; i < m.graph.nodes().size(); ++i) {
    const ir::Node& node = m.graph.nodes()[i];
    m.execute(node, tokens, pos_);
    if (node.op == OpKind::Output) {
      Buffer& b = m.values[static_cast<size_t>(node.result)];
      outputs[node.attr_string("name")] = Matrix{b.rows, b.cols, std::move(b.f32)};
    }
    for (ir::ValueId v : node.operands) {
      if (m.last_use[static_cast<size_t>(v)] == static_cast<int32_t>(i)) m.values[static_cast<size_t>(v)] = Buffer{};
    }
  }
  pos_ += n;
  return outputs;
}

}  // namespace bitnet::runtime
