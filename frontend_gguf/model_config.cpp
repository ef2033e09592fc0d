// Architecture table and model hyper-parameter analysis (see model_config.h).
#include "frontend_gguf/model_config.h"

#include <functional>

namespace bitnet::gguf {
namespace {

constexpr ArchSpec kArchs[] = {
    // llama.cpp's llama graph: SiLU-gated FFN, normal (GPT-J style) RoPE, optional untied output.
    {"llama", FfnActivation::kSilu, RopeStyle::kNormal, false, true},
    // bitnet.cpp build_bitnet(): SubLN, SiLU, NEOX RoPE (spec 2, 7).
    {"bitnet", FfnActivation::kSilu, RopeStyle::kNeox, true, true},
    // build_bitnet_158(): SubLN, ReLU^2, NEOX RoPE, output.weight loaded but never used.
    {"bitnet-25", FfnActivation::kReluSquared, RopeStyle::kNeox, true, false},
    {"bitnet-b1.58", FfnActivation::kReluSquared, RopeStyle::kNeox, true, false},
};

constexpr GgmlType kWeightTypes[] = {GgmlType::F32,  GgmlType::F16,   GgmlType::BF16,  GgmlType::Q8_0, GgmlType::Q4_0,
                                     GgmlType::Q6_K, GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::I2_S};

// Reads an integer hyper-parameter; records a finding when it is missing (if required)
// or has a non-integer type.
// `derivable`: compat-fix can recompute the value from the tensor shapes.
std::optional<uint64_t> read_uint(const GgufFile& file, const std::string& key, bool required, Findings& f,
                                  bool derivable = false) {
  const Value* v = file.find(key);
  if (v == nullptr) {
    if (required) {
      f.add(Severity::kError, "missing-hparam", fmt::format("required key '{}' is missing", key),
            derivable ? "run `bitnet compat-fix` to derive it from the tensor shapes"
                      : "re-convert the model; this value cannot be derived from the tensors",
            derivable);
    }
    return std::nullopt;
  }
  auto u = v->as_uint();
  if (!u) {
    f.add(Severity::kError, "bad-hparam",
          fmt::format("key '{}' has type {} ({}), expected a non-negative integer", key, value_type_name(v->type()),
                      v->to_display()),
          "re-convert the model with a current converter");
  }
  return u;
}

std::optional<float> read_float(const GgufFile& file, const std::string& key, bool required, Findings& f) {
  const Value* v = file.find(key);
  if (v == nullptr) {
    if (required) {
      f.add(Severity::kError, "missing-hparam", fmt::format("required key '{}' is missing", key),
            "re-convert the model; this value cannot be derived from the tensors");
    }
    return std::nullopt;
  }
  auto d = v->as_float();
  if (!d) {
    f.add(Severity::kError, "bad-hparam",
          fmt::format("key '{}' has type {}, expected f32", key, value_type_name(v->type())),
          "re-convert the model with a current converter");
    return std::nullopt;
  }
  return static_cast<float>(*d);
}

std::string shape_string(std::span<const uint64_t> ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", ne[i]);
  return s + "]";
}

// Expects tensor `name` with ggml shape `want`; a 1-D norm must be F32, a matrix a
// supported weight type.
void expect_tensor(const GgufFile& file, const std::string& name, std::vector<uint64_t> want, bool required,
                   Findings& f) {
  const TensorInfo* t = file.find_tensor(name);
  if (t == nullptr) {
    if (required) {
      f.add(Severity::kError, "missing-tensor", fmt::format("required tensor '{}' is missing", name),
            "the file is incomplete or from an unsupported converter; re-convert the model");
    }
    return;
  }
  if (t->ne != want) {
    f.add(Severity::kError, "tensor-shape",
          fmt::format("tensor '{}' has shape {}, expected {} from the hyper-parameters", name, shape_string(t->ne),
                      shape_string(want)),
          "the hyper-parameters and the tensors disagree; re-convert the model");
    return;
  }
  if (want.size() == 1) {
    if (t->type != GgmlType::F32) {
      f.add(Severity::kError, "unsupported-type",
            fmt::format("norm tensor '{}' has type {}, expected F32", name, ggml_type_name(t->type)),
            "re-quantize keeping 1-D tensors in F32");
    }
  } else if (!is_supported_weight_type(t->type)) {
    f.add(Severity::kError, "unsupported-type",
          fmt::format("tensor '{}' has type {}, which this engine cannot multiply by", name, ggml_type_name(t->type)),
          "re-quantize to I2_S, TQ1_0, TQ2_0, Q8_0, Q4_0, Q6_K, F16, BF16 or F32");
  }
}

}  // namespace

std::span<const ArchSpec> supported_archs() { return kArchs; }

const ArchSpec* find_arch(std::string_view name) {
  for (const auto& a : kArchs) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::string supported_arch_list() {
  std::string s;
  for (const auto& a : kArchs) s += fmt::format("{}{}", s.empty() ? "" : ", ", a.name);
  return s;
}

bool is_supported_weight_type(GgmlType type) {
  for (GgmlType t : kWeightTypes) {
    if (t == type) return true;
  }
  return false;
}

std::optional<ModelConfig> analyze_model(const GgufFile& file, Findings& f) {
  const size_t errors_before = f.items.size();
  auto had_new_error = [&] {
    for (size_t i = errors_before; i < f.items.size(); ++i) {
      if (f.items[i].severity == Severity::kError) return true;
    }
    return false;
  };

  const Value* arch_value = file.find("general.architecture");
  if (arch_value == nullptr || arch_value->as_string() == nullptr) {
    f.add(Severity::kError, "unknown-arch",
          arch_value ? "general.architecture is not a string" : "general.architecture is missing",
          fmt::format("this engine runs: {}", supported_arch_list()));
    return std::nullopt;
  }
  const std::string& arch_name = *arch_value->as_string();
  ModelConfig c;
  c.arch = find_arch(arch_name);
  if (c.arch == nullptr) {
    f.add(Severity::kError, "unknown-arch", fmt::format("architecture '{}' is not supported", arch_name),
          fmt::format("this engine runs: {}", supported_arch_list()));
    return std::nullopt;
  }
  const std::string p = arch_name + ".";

  auto n_embd = read_uint(file, p + "embedding_length", true, f, true);
  auto n_layer = read_uint(file, p + "block_count", true, f, true);
  auto n_ff = read_uint(file, p + "feed_forward_length", true, f, true);
  auto n_head = read_uint(file, p + "attention.head_count", true, f);
  auto n_ctx = read_uint(file, p + "context_length", true, f);
  auto n_head_kv = read_uint(file, p + "attention.head_count_kv", false, f);
  auto n_rot = read_uint(file, p + "rope.dimension_count", false, f);
  auto eps = read_float(file, p + "attention.layer_norm_rms_epsilon", true, f);
  auto freq_base = read_float(file, p + "rope.freq_base", false, f);
  auto scaling_factor = read_float(file, p + "rope.scaling.factor", false, f);
  if (const std::string* scaling = file.get_string(p + "rope.scaling.type")) {
    if (*scaling != "none" && *scaling != "linear") {
      f.add(Severity::kError, "bad-hparam", fmt::format("RoPE scaling '{}' is not supported", *scaling),
            "only linear (or no) RoPE scaling is supported");
    }
  }
  if (had_new_error()) return std::nullopt;

  c.n_embd = *n_embd;
  c.n_layer = *n_layer;
  c.n_ff = *n_ff;
  c.n_head = *n_head;
  c.n_ctx_train = *n_ctx;
  c.n_head_kv = n_head_kv.value_or(c.n_head);
  c.rms_eps = *eps;
  c.rope_freq_base = freq_base.value_or(10000.0f);
  if (scaling_factor && *scaling_factor != 0.0f) c.rope_freq_scale = 1.0f / *scaling_factor;

  auto bad = [&](std::string msg) {
    f.add(Severity::kError, "bad-hparam", std::move(msg), "the hyper-parameters are inconsistent; re-convert the model");
  };
  if (c.n_embd == 0 || c.n_layer == 0 || c.n_ff == 0 || c.n_head == 0 || c.n_head_kv == 0) {
    bad(fmt::format("zero hyper-parameter: embedding_length {}, block_count {}, feed_forward_length {}, "
                    "head_count {}, head_count_kv {}", c.n_embd, c.n_layer, c.n_ff, c.n_head, c.n_head_kv));
    return std::nullopt;
  }
  constexpr uint64_t kMaxDim = 1u << 20;  // far beyond any real model; keeps derived sizes sane
  if (c.n_embd > kMaxDim || c.n_ff > kMaxDim || c.n_layer > 4096 || c.n_head > 4096) {
    bad(fmt::format("implausible hyper-parameters: embedding_length {}, feed_forward_length {}, block_count {}, "
                    "head_count {}", c.n_embd, c.n_ff, c.n_layer, c.n_head));
    return std::nullopt;
  }
  if (c.n_embd % c.n_head != 0) {
    bad(fmt::format("embedding_length {} is not a multiple of head_count {}", c.n_embd, c.n_head));
    return std::nullopt;
  }
  if (c.n_head_kv > c.n_head || c.n_head % c.n_head_kv != 0) {
    bad(fmt::format("head_count {} is not a multiple of head_count_kv {}", c.n_head, c.n_head_kv));
    return std::nullopt;
  }
  c.head_dim = c.n_embd / c.n_head;
  c.n_embd_kv = c.head_dim * c.n_head_kv;
  c.n_rot = n_rot.value_or(c.head_dim);
  if (c.n_rot != c.head_dim) {
    bad(fmt::format("rope.dimension_count {} differs from the head size {} (partial RoPE is not supported)", c.n_rot,
                    c.head_dim));
    return std::nullopt;
  }
  if (c.head_dim % 2 != 0) {
    bad(fmt::format("head size {} is odd; RoPE needs an even head size", c.head_dim));
    return std::nullopt;
  }
  if (!(c.rms_eps > 0.0f) || !(c.rope_freq_base > 0.0f)) {
    bad(fmt::format("layer_norm_rms_epsilon {} and rope.freq_base {} must be positive", c.rms_eps, c.rope_freq_base));
    return std::nullopt;
  }

  // Vocabulary size comes from the embedding (the loader's n_vocab is the token list length;
  // tokenizer checks compare the two).
  const TensorInfo* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr) {
    f.add(Severity::kError, "missing-tensor", "required tensor 'token_embd.weight' is missing",
          "the file is incomplete; re-convert the model");
    return std::nullopt;
  }
  if (embd->ne.size() != 2 || embd->ne[0] != c.n_embd) {
    f.add(Severity::kError, "tensor-shape",
          fmt::format("tensor 'token_embd.weight' has shape {}, expected [{}, n_vocab]", shape_string(embd->ne),
                      c.n_embd),
          "the hyper-parameters and the tensors disagree; re-convert the model");
    return std::nullopt;
  }
  c.n_vocab = embd->ne[1];
  if (!is_supported_weight_type(embd->type)) {
    f.add(Severity::kError, "unsupported-type",
          fmt::format("tensor 'token_embd.weight' has type {}, which this engine cannot read", ggml_type_name(embd->type)),
          "re-quantize the embedding to F16, Q8_0 or F32");
  }

  expect_tensor(file, "output_norm.weight", {c.n_embd}, true, f);
  if (c.arch->output_tensor_used && file.find_tensor("output.weight") != nullptr) {
    expect_tensor(file, "output.weight", {c.n_embd, c.n_vocab}, true, f);
    c.separate_output = true;
  }
  for (uint64_t i = 0; i < c.n_layer; ++i) {
    const std::string b = fmt::format("blk.{}.", i);
    expect_tensor(file, b + "attn_norm.weight", {c.n_embd}, true, f);
    expect_tensor(file, b + "attn_q.weight", {c.n_embd, c.n_embd}, true, f);
    expect_tensor(file, b + "attn_k.weight", {c.n_embd, c.n_embd_kv}, true, f);
    expect_tensor(file, b + "attn_v.weight", {c.n_embd, c.n_embd_kv}, true, f);
    expect_tensor(file, b + "attn_output.weight", {c.n_embd, c.n_embd}, true, f);
    expect_tensor(file, b + "ffn_norm.weight", {c.n_embd}, true, f);
    expect_tensor(file, b + "ffn_gate.weight", {c.n_embd, c.n_ff}, true, f);
    expect_tensor(file, b + "ffn_up.weight", {c.n_embd, c.n_ff}, true, f);
    expect_tensor(file, b + "ffn_down.weight", {c.n_ff, c.n_embd}, true, f);
    if (c.arch->sub_norms) {
      expect_tensor(file, b + "attn_sub_norm.weight", {c.n_embd}, true, f);
      expect_tensor(file, b + "ffn_sub_norm.weight", {c.n_ff}, true, f);
    }
  }
  if (had_new_error()) return std::nullopt;
  return c;
}

Expected<ModelConfig> read_model_config(const GgufFile& file) {
  Findings f;
  auto config = analyze_model(file, f);
  if (const Finding* e = f.first_error()) return make_error("{} ({})", e->message, e->hint);
  if (!config) return make_error("model configuration could not be read");
  return *config;
}

}  // namespace bitnet::gguf
