// Architecture table and model hyper-parameter analysis (see model_config.h).
#include "frontend_gguf/model_config.h"

#include <charconv>
#include <climits>
#include <cmath>
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

// A tensor the graph would not use would be silently ignored; the lowering refuses such
// files, so they are errors here too (same rules and words as lowering.cpp's check).
void check_unexpected_tensors(const GgufFile& file, const ModelConfig& c, Findings& f) {
  static constexpr std::string_view kProjections[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                      "ffn_gate", "ffn_up", "ffn_down"};
  for (const auto& t : file.tensors()) {
    const std::string& name = t.name;
    if (name == "token_embd.weight" || name == "output_norm.weight" || name == "output.weight") continue;
    std::optional<uint64_t> layer;
    std::string_view rest;
    if (name.starts_with("blk.")) {
      const auto dot = name.find('.', 4);
      uint64_t idx = 0;
      const char* begin = name.data() + 4;
      const char* end = name.data() + (dot == std::string::npos ? name.size() : dot);
      if (dot != std::string::npos && begin != end && std::from_chars(begin, end, idx).ptr == end) {
        layer = idx;
        rest = std::string_view(name).substr(dot + 1);
      }
    }
    if (layer && *layer < c.n_layer) {
      if (rest == "attn_norm.weight" || rest == "ffn_norm.weight") continue;
      if (c.arch->sub_norms && (rest == "attn_sub_norm.weight" || rest == "ffn_sub_norm.weight")) continue;
      bool known = false;
      for (std::string_view proj : kProjections) {
        known |=
            rest.starts_with(proj) && (rest.substr(proj.size()) == ".weight" || rest.substr(proj.size()) == ".scale");
      }
      if (known) continue;
    }
    std::string message;
    if (name == "rope_freqs.weight" || name.ends_with(".bias")) {
      message = fmt::format("tensor '{}' is not supported by this engine (it would change the model's output)", name);
    } else if (layer && *layer >= c.n_layer) {
      message = fmt::format("tensor '{}' belongs to layer {} but block_count is {}", name, *layer, c.n_layer);
    } else {
      message = fmt::format("tensor '{}' is not part of the {} graph; refusing to ignore it", name, c.arch->name);
    }
    f.add(Severity::kError, "unexpected-tensor", std::move(message),
          "the file holds tensors this engine's graph for the architecture does not use; re-convert the model");
  }
}

}  // namespace

std::span<const ArchSpec> supported_archs() {
  return kArchs;
}

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
  if (const Value* scaling = file.find(p + "rope.scaling.type")) {
    if (scaling->as_string() == nullptr) {
      f.add(Severity::kError, "bad-hparam",
            fmt::format("key '{}' has type {}, expected a string", p + "rope.scaling.type",
                        value_type_name(scaling->type())),
            "re-convert the model with a current converter");
    } else if (*scaling->as_string() != "none" && *scaling->as_string() != "linear") {
      f.add(Severity::kError, "bad-hparam", fmt::format("RoPE scaling '{}' is not supported", *scaling->as_string()),
            "only linear (or no) RoPE scaling is supported");
    }
  }

  // Every value the engine cannot run with is its own finding (compat-check lists them all;
  // loaders refuse with the first).
  auto bad = [&](std::string msg) {
    f.add(Severity::kError, "bad-hparam", std::move(msg),
          "the hyper-parameters are impossible or inconsistent; "
          "re-convert the model");
  };
  // Far beyond any real model; keeps derived sizes (and int64 arithmetic on them) sane.
  constexpr uint64_t kMaxDim = uint64_t{1} << 20;
  constexpr uint64_t kMaxLayers = 4096;
  constexpr uint64_t kMaxHeads = 4096;
  // Positions are exact in the f32 RoPE arithmetic only up to 2^24.
  constexpr uint64_t kMaxContext = uint64_t{1} << 24;
  auto in_range = [&](const std::optional<uint64_t>& v, const std::string& key, uint64_t max) {
    if (!v) return false;
    if (*v == 0) {
      bad(fmt::format("{}{} is 0", p, key));
      return false;
    }
    if (*v > max) {
      bad(fmt::format("{}{} is {}, above the largest value this engine accepts ({})", p, key, *v, max));
      return false;
    }
    return true;
  };
  const bool embd_ok = in_range(n_embd, "embedding_length", kMaxDim);
  in_range(n_layer, "block_count", kMaxLayers);
  in_range(n_ff, "feed_forward_length", kMaxDim);
  const bool head_ok = in_range(n_head, "attention.head_count", kMaxHeads);
  in_range(n_ctx, "context_length", kMaxContext);
  const bool kv_ok = !n_head_kv || in_range(n_head_kv, "attention.head_count_kv", kMaxHeads);
  if (eps && !(std::isfinite(*eps) && *eps > 0.0f)) {
    bad(fmt::format("{}attention.layer_norm_rms_epsilon is {}: it must be a finite positive number", p, *eps));
  }
  if (freq_base && !(std::isfinite(*freq_base) && *freq_base > 0.0f)) {
    bad(fmt::format("{}rope.freq_base is {}: it must be a finite positive number", p, *freq_base));
  }
  if (scaling_factor && !(std::isfinite(*scaling_factor) && *scaling_factor >= 0.0f)) {
    bad(fmt::format("{}rope.scaling.factor is {}: it must be a finite positive number (or 0 for none)", p,
                    *scaling_factor));
  }
  if (embd_ok && head_ok) {
    if (*n_embd % *n_head != 0) {
      bad(fmt::format("{}embedding_length {} is not a multiple of attention.head_count {}", p, *n_embd, *n_head));
    } else {
      const uint64_t head_dim = *n_embd / *n_head;
      if (head_dim % 2 != 0) bad(fmt::format("head size {} is odd; RoPE needs an even head size", head_dim));
      if (n_rot && *n_rot != head_dim) {
        bad(
            fmt::format("{}rope.dimension_count {} differs from the head size {} (embedding_length / head_count); "
                        "partial RoPE is not supported",
                        p, *n_rot, head_dim));
      }
    }
    if (kv_ok && n_head_kv && (*n_head_kv > *n_head || *n_head % *n_head_kv != 0)) {
      bad(fmt::format("{}attention.head_count {} is not a multiple of attention.head_count_kv {}", p, *n_head,
                      *n_head_kv));
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
  c.head_dim = c.n_embd / c.n_head;
  c.n_embd_kv = c.head_dim * c.n_head_kv;
  c.n_rot = n_rot.value_or(c.head_dim);

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
  if (c.n_vocab > static_cast<uint64_t>(INT32_MAX)) {
    bad(fmt::format("token_embd.weight has {} rows: token ids are 32-bit, so at most {} tokens", c.n_vocab, INT32_MAX));
    return std::nullopt;
  }
  if (!is_supported_weight_type(embd->type)) {
    f.add(Severity::kError, "unsupported-type",
          fmt::format("tensor 'token_embd.weight' has type {}, which this engine cannot read",
                      ggml_type_name(embd->type)),
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
  check_unexpected_tensors(file, c, f);
  if (had_new_error()) return std::nullopt;
  return c;
}

Expected<ModelConfig> read_model_config(const GgufFile& file) {
  Findings f;
  auto config = analyze_model(file, f);
  if (const Finding* e = f.first_error()) return make_error("{}", format_finding(*e));
  if (!config) return make_error("model configuration could not be read");
  return *config;
}

}  // namespace bitnet::gguf
