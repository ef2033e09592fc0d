// Hugging Face checkpoint -> GGUF (see hf_convert.h; the conventions are in docs/convert-hf.md).
#include "convert/hf_convert.h"

#include "convert/checkpoint.h"
#include "convert/hf_model.h"
#include "convert/weights.h"
#include "frontend_gguf/gguf_writer.h"
#include "frontend_gguf/output_file.h"
#include "frontend_gguf/retype_ternary.h"
#include "frontend_gguf/ternary_codec.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

namespace bitnet::convert {
namespace {

namespace fs = std::filesystem;
using gguf::GgmlType;

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return s + "]";
}

std::optional<GgmlType> dense_type(std::string_view name) {
  if (name == "f32") return GgmlType::F32;
  if (name == "f16") return GgmlType::F16;
  if (name == "bf16") return GgmlType::BF16;
  if (name == "q8_0") return GgmlType::Q8_0;
  return std::nullopt;
}

// llama_ftype numbers for general.file_type (llama.h; MOSTLY_I2_S = 40 in bitnet.cpp, spec 3).
uint32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::BF16:
      return 32;
    default:
      return 40;  // I2_S
  }
}

// The GGUF tensors being built: the writer holds spans into `buffers`, which never reallocate.
class TensorSink {
 public:
  explicit TensorSink(size_t capacity) { buffers_.reserve(capacity); }
  gguf::GgufWriter& writer() { return writer_; }
  Status add(const std::string& name, GgmlType type, std::vector<uint64_t> ne, std::vector<uint8_t> data) {
    if (buffers_.size() == buffers_.capacity()) return make_error("internal: more tensors than planned");
    buffers_.push_back(std::move(data));
    return writer_.add_tensor({name, type, std::move(ne), buffers_.back()});
  }
  size_t count() const { return buffers_.size(); }

 private:
  gguf::GgufWriter writer_;
  std::vector<std::vector<uint8_t>> buffers_;
};

class Converter {
 public:
  Converter(const HfCheckpoint& ckpt, const HfModel& model) : ckpt_(ckpt), m_(model) {}

  // The checkpoint tensor `name`, marked as used, with its shape checked.
  Expected<const StTensor*> take(const std::string& name, const std::vector<uint64_t>& shape) {
    const StTensor* t = ckpt_.find(name);
    if (t == nullptr) return make_error("tensor '{}' is missing from the checkpoint", name);
    if (t->shape != shape)
      return make_error("tensor '{}' has shape {}, expected {} from config.json", name, shape_text(t->shape),
                        shape_text(shape));
    used_.insert(name);
    return t;
  }

  Expected<std::vector<float>> vector(const std::string& name, uint64_t n) {
    BITNET_ASSIGN_OR_RETURN(const StTensor* t, take(name, {n}));
    return read_floats(*t);
  }

  // A projection of `rows` outputs over `cols` inputs: packed (weight + weight_scale), or dense
  // and ternarized when the model is ternary.
  Expected<Matrix> projection(const std::string& name, uint64_t rows, uint64_t cols) {
    const std::string scale_name = name + "_scale";  // "...weight" -> "...weight_scale"
    if (const StTensor* scale = ckpt_.find(scale_name)) {
      if (!m_.ternary) return make_error("'{}' exists but config.json declares no bitnet quantization", scale_name);
      if (rows % 4 != 0) return make_error("packed weight '{}': {} rows are not a multiple of 4", name, rows);
      if (scale->elements() != 1)
        return make_error("'{}' holds {} values, expected one", scale_name, scale->elements());
      BITNET_ASSIGN_OR_RETURN(auto scale_value, read_floats(*scale));
      used_.insert(scale_name);
      BITNET_ASSIGN_OR_RETURN(const StTensor* packed, take(name, {rows / 4, cols}));
      packed_ = true;
      return unpack_hf_ternary(*packed, scale_value[0]);
    }
    BITNET_ASSIGN_OR_RETURN(const StTensor* t, take(name, {rows, cols}));
    BITNET_ASSIGN_OR_RETURN(auto values, read_floats(*t));
    if (m_.ternary) {
      master_ = true;
      return ternarize_absmean(values, rows, cols);
    }
    Matrix dense;
    dense.rows = rows, dense.cols = cols, dense.values = std::move(values);
    return dense;
  }

  // Names in the checkpoint that no GGUF tensor used (refused: the engine never drops weights).
  Status check_all_used() const {
    for (const StTensor* t : ckpt_.tensors()) {
      if (used_.count(t->name) || t->name.ends_with("rotary_emb.inv_freq")) continue;
      return make_error("tensor '{}' has no place in the {} model (bias or unknown tensor)", t->name, m_.gguf_arch);
    }
    return Status::success();
  }
  void mark_used(const std::string& name) { used_.insert(name); }
  bool saw_packed() const { return packed_; }
  bool saw_master() const { return master_; }

 private:
  const HfCheckpoint& ckpt_;
  const HfModel& m_;
  std::set<std::string> used_;
  bool packed_ = false, master_ = false;
};

void write_hparams(gguf::GgufWriter& w, const HfModel& m, uint64_t n_vocab, const std::string& name) {
  const std::string p = m.gguf_arch + ".";
  w.set("general.architecture", m.gguf_arch);
  w.set("general.name", name);
  w.set(p + "vocab_size", static_cast<uint32_t>(n_vocab));
  w.set(p + "context_length", static_cast<uint32_t>(m.n_ctx));
  w.set(p + "embedding_length", static_cast<uint32_t>(m.n_embd));
  w.set(p + "block_count", static_cast<uint32_t>(m.n_layer));
  w.set(p + "feed_forward_length", static_cast<uint32_t>(m.n_ff));
  w.set(p + "rope.dimension_count", static_cast<uint32_t>(m.head_dim()));
  w.set(p + "attention.head_count", static_cast<uint32_t>(m.n_head));
  w.set(p + "attention.head_count_kv", static_cast<uint32_t>(m.n_head_kv));
  w.set(p + "attention.layer_norm_rms_epsilon", m.rms_eps);
  w.set(p + "rope.freq_base", m.rope_theta);
  if (m.rope_linear_factor) {
    w.set(p + "rope.scaling.type", std::string("linear"));
    w.set(p + "rope.scaling.factor", *m.rope_linear_factor);
  } else if (m.family == HfFamily::kBitnet1bitLLM) {
    // What the bitnet converters write (no effect).
    w.set(p + "rope.scaling.type", std::string("linear"));
    w.set(p + "rope.scaling.factor", 1.0f);
  }
}

Status convert_to(const HfCheckpoint& ckpt, const HfModel& m, const std::string& output, GgmlType weight_type,
                  GgmlType embd_type, const std::string& name, ConvertReport& report) {
  Converter c(ckpt, m);
  const StTensor* embd = ckpt.find("model.embed_tokens.weight");
  if (embd == nullptr) return make_error("tensor 'model.embed_tokens.weight' is missing from the checkpoint");
  const uint64_t n_vocab = embd->shape.size() == 2 ? embd->shape[0] : 0;
  if (n_vocab != m.n_vocab)
    return make_error("model.embed_tokens.weight has shape {}, expected [{}, {}] from config.json",
                      shape_text(embd->shape), m.n_vocab, m.n_embd);
  report.n_vocab = n_vocab;

  // Untied output: lm_head present, not declared tied and, for 1bitLLM's family, not a
  // byte-for-byte copy of the embedding (a checkpoint saved with tie_word_embeddings false may
  // hold the same matrix twice; bitnet.cpp's `bitnet` graph refuses a file with output.weight, so
  // a copy is dropped there; llama files keep it, as llama.cpp's converter writes them).
  // The bitnet-b1.58 graph always uses the embedding, so a real untied head there is refused.
  const StTensor* lm_head = ckpt.find("lm_head.weight");
  const bool same_as_embedding = m.family == HfFamily::kBitnet1bitLLM && lm_head != nullptr &&
                                 lm_head->dtype == embd->dtype && lm_head->shape == embd->shape &&
                                 lm_head->data.size() == embd->data.size() &&
                                 std::equal(lm_head->data.begin(), lm_head->data.end(), embd->data.begin());
  const bool tied = ckpt.config().value("tie_word_embeddings", lm_head == nullptr) || same_as_embedding;
  const bool write_output = lm_head != nullptr && !tied;
  if (lm_head != nullptr && tied) c.mark_used("lm_head.weight");
  if (write_output && m.family == HfFamily::kBitNet2B)
    return make_error("lm_head.weight is not tied to the embedding, which the bitnet-b1.58 graph requires");

  const size_t n_tensors = 2 + (write_output ? 1 : 0) + m.n_layer * (m.attn_sub_norm.empty() ? 9 : 11);
  TensorSink sink(n_tensors);
  gguf::GgufWriter& w = sink.writer();
  write_hparams(w, m, n_vocab, name);
  w.set("general.file_type", file_type_of(weight_type));
  BITNET_ASSIGN_OR_RETURN(report.tokenizer, add_hf_tokenizer(ckpt.dir(), n_vocab, w));
  if (weight_type != GgmlType::F32 && weight_type != GgmlType::F16 && weight_type != GgmlType::BF16)
    w.set("general.quantization_version", uint32_t{2});

  auto add_norm = [&](const std::string& hf, const std::string& gguf, uint64_t n) -> Status {
    BITNET_ASSIGN_OR_RETURN(auto v, c.vector(hf, n));
    Matrix vec;
    vec.rows = 1, vec.cols = n, vec.values = std::move(v);
    BITNET_ASSIGN_OR_RETURN(auto data, encode_dense(vec, GgmlType::F32));
    return sink.add(gguf, GgmlType::F32, {n}, std::move(data));
  };
  auto add_dense = [&](Matrix mat, const std::string& gguf, GgmlType type) -> Status {
    BITNET_ASSIGN_OR_RETURN(auto data, encode_dense(mat, type));
    return sink.add(gguf, type, {mat.cols, mat.rows}, std::move(data));
  };
  auto add_projection = [&](const std::string& hf, const std::string& gguf, uint64_t rows, uint64_t cols,
                            uint64_t rope_heads) -> Status {
    BITNET_ASSIGN_OR_RETURN(Matrix mat, c.projection(hf, rows, cols));
    if (rope_heads != 0 && m.permute_qk) BITNET_RETURN_IF_ERROR(permute_rows_for_rope(mat, rope_heads));
    if (weight_type == GgmlType::I2_S) {
      if (!mat.ternary) return make_error("'{}' is not ternary: I2_S needs a BitNet checkpoint", hf);
      // I2_S blocks of 128 never straddle rows (spec 6): bitnet.cpp's kernels need whole blocks per row.
      if (cols % gguf::ternary::kI2SBlock != 0)
        return make_error("'{}' has rows of {} weights; I2_S needs a multiple of 128", hf, cols);
      return sink.add(gguf, GgmlType::I2_S, {cols, rows}, gguf::ternary::encode_i2s(mat.codes, mat.scale));
    }
    return add_dense(std::move(mat), gguf, weight_type);
  };

  {
    BITNET_ASSIGN_OR_RETURN(const StTensor* t, c.take("model.embed_tokens.weight", {n_vocab, m.n_embd}));
    Matrix e;
    e.rows = n_vocab, e.cols = m.n_embd;
    BITNET_ASSIGN_OR_RETURN(e.values, read_floats(*t));
    BITNET_RETURN_IF_ERROR(add_dense(std::move(e), "token_embd.weight", embd_type));
  }
  const uint64_t kv = m.n_embd_kv();
  for (uint64_t i = 0; i < m.n_layer; ++i) {
    const std::string h = fmt::format("model.layers.{}.", i), g = fmt::format("blk.{}.", i);
    BITNET_RETURN_IF_ERROR(add_norm(h + "input_layernorm.weight", g + "attn_norm.weight", m.n_embd));
    BITNET_RETURN_IF_ERROR(
        add_projection(h + "self_attn.q_proj.weight", g + "attn_q.weight", m.n_embd, m.n_embd, m.n_head));
    BITNET_RETURN_IF_ERROR(
        add_projection(h + "self_attn.k_proj.weight", g + "attn_k.weight", kv, m.n_embd, m.n_head_kv));
    BITNET_RETURN_IF_ERROR(add_projection(h + "self_attn.v_proj.weight", g + "attn_v.weight", kv, m.n_embd, 0));
    if (!m.attn_sub_norm.empty())
      BITNET_RETURN_IF_ERROR(add_norm(h + m.attn_sub_norm, g + "attn_sub_norm.weight", m.n_embd));
    BITNET_RETURN_IF_ERROR(
        add_projection(h + "self_attn.o_proj.weight", g + "attn_output.weight", m.n_embd, m.n_embd, 0));
    BITNET_RETURN_IF_ERROR(add_norm(h + "post_attention_layernorm.weight", g + "ffn_norm.weight", m.n_embd));
    BITNET_RETURN_IF_ERROR(add_projection(h + "mlp.gate_proj.weight", g + "ffn_gate.weight", m.n_ff, m.n_embd, 0));
    BITNET_RETURN_IF_ERROR(add_projection(h + "mlp.up_proj.weight", g + "ffn_up.weight", m.n_ff, m.n_embd, 0));
    if (!m.ffn_sub_norm.empty())
      BITNET_RETURN_IF_ERROR(add_norm(h + m.ffn_sub_norm, g + "ffn_sub_norm.weight", m.n_ff));
    BITNET_RETURN_IF_ERROR(add_projection(h + "mlp.down_proj.weight", g + "ffn_down.weight", m.n_embd, m.n_ff, 0));
  }
  BITNET_RETURN_IF_ERROR(add_norm("model.norm.weight", "output_norm.weight", m.n_embd));
  if (write_output) {
    BITNET_ASSIGN_OR_RETURN(const StTensor* t, c.take("lm_head.weight", {n_vocab, m.n_embd}));
    Matrix o;
    o.rows = n_vocab, o.cols = m.n_embd;
    BITNET_ASSIGN_OR_RETURN(o.values, read_floats(*t));
    BITNET_RETURN_IF_ERROR(add_dense(std::move(o), "output.weight", embd_type));
  }
  BITNET_RETURN_IF_ERROR(c.check_all_used());
  if (c.saw_packed() && c.saw_master()) return make_error("the checkpoint mixes packed and unpacked projections");
  report.layout = c.saw_packed() ? "packed 1.58-bit weights (2 bits per weight + weight_scale)"
                  : m.ternary    ? "full-precision master weights, ternarized with the absmean rule"
                                 : "dense weights";
  report.n_tensors = sink.count();
  return w.write_file_atomic(output);
}

Expected<ConvertReport> convert_checked(const std::string& dir, const std::string& output,
                                        const ConvertOptions& options) {
  BITNET_ASSIGN_OR_RETURN(HfCheckpoint ckpt, HfCheckpoint::open(dir));
  BITNET_ASSIGN_OR_RETURN(HfModel m, read_hf_model(ckpt.config()));
  ConvertReport report;
  report.hf_architecture = m.hf_architecture, report.gguf_arch = m.gguf_arch, report.n_layer = m.n_layer;

  const std::string type = options.type.empty() ? (m.ternary ? "i2_s" : "f16") : options.type;
  const auto ternary_target = gguf::parse_ternary_type(type);
  const auto dense = dense_type(type);
  if (!ternary_target && !dense)
    return make_error("unknown --type '{}' (i2_s, tq2_0, tq1_0, f16, bf16, f32, q8_0)", type);
  if (ternary_target && !m.ternary)
    return make_error("--type {} needs ternary weights; {} holds full-precision weights (use f16, bf16, f32 or q8_0)",
                      type, m.hf_architecture);
  const std::string embd_name = options.embedding_type.empty() ? "f16" : options.embedding_type;
  const auto embd_type = dense_type(embd_name);
  if (!embd_type) return make_error("unknown --embedding-type '{}' (f16, bf16, f32, q8_0)", embd_name);
  report.weight_type = type, report.embedding_type = embd_name;
  std::string name = options.name;
  if (name.empty()) name = fs::path(dir).lexically_normal().filename().string();
  if (name.empty() || name == ".") name = fs::path(dir).lexically_normal().parent_path().filename().string();

  if (!ternary_target || *ternary_target == gguf::TernaryType::I2_S) {
    BITNET_RETURN_IF_ERROR(convert_to(ckpt, m, output, dense ? *dense : GgmlType::I2_S, *embd_type, name, report));
    return report;
  }
  // TQ2_0 / TQ1_0: I2_S first (a temp file beside the output), then the ternary retyper.
  const std::string temp =
      (fs::path(gguf::dir_of(output)) / fmt::format(".{}.i2s.{}.tmp", gguf::file_name_of(output), getpid())).string();
  Status status = convert_to(ckpt, m, temp, GgmlType::I2_S, *embd_type, name, report);
  if (status.ok()) {
    auto retyped = gguf::retype_ternary(temp, output, *ternary_target);
    if (!retyped.ok()) status = retyped.error();
  }
  std::error_code ec;
  fs::remove(temp, ec);
  if (!status.ok()) return status.error();
  return report;
}

}  // namespace

Expected<ConvertReport> convert_hf_checkpoint(const std::string& dir, const std::string& output,
                                              const ConvertOptions& options) {
  // The JSON readers check what they index; a value of an unexpected type that slips through
  // (nlohmann's value() throws on one) is still an error value, never an exception.
  try {
    return convert_checked(dir, output, options);
  } catch (const nlohmann::json::exception& e) {
    return make_error("{}: unexpected JSON structure: {}", dir, e.what());
  }
}

}  // namespace bitnet::convert
