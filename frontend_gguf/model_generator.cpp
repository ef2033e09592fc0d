// Synthetic model generation (see model_generator.h).
#include "frontend_gguf/model_generator.h"

#include "frontend_gguf/gguf_writer.h"
#include "frontend_gguf/model_config.h"
#include "ir/support/half.h"
#include "ir/support/splitmix64.h"

#include <cmath>
#include <cstring>

namespace bitnet::gguf {
namespace {

struct Rng : SplitMix64 {
  // Standard normal (Box-Muller).
  float normal() {
    const double u1 = std::max(uniform(), 1e-300);
    const double u2 = uniform();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
};

// Ternary I2_S data (spec 6) for `rows` x `cols` weights drawn as the converters make
// them: w ~ N(0, 1), s = mean|w|, code = round(w / s) clamped to [-1, 1]. For a normal
// distribution the zero code has probability P(|w| < s/2) = erf(sqrt(1/pi) / 2); codes are
// drawn directly with these probabilities (drawing billions of normals for the 2B shape
// would take a minute), and the stored scale is E|w| = sqrt(2/pi).
std::vector<uint8_t> ternary_i2s(uint64_t rows, uint64_t cols, Rng& rng) {
  const uint64_t n = rows * cols;
  std::vector<uint8_t> data(n / 4 + 32, 0);
  const double p_zero = std::erf(std::sqrt(1.0 / M_PI) / 2.0);
  const auto zero_threshold = static_cast<uint32_t>(p_zero * 65536.0);
  for (uint64_t block = 0; block < n / 128; ++block) {
    uint8_t* out = data.data() + block * 32;
    for (int group = 0; group < 4; ++group) {  // weights 32*group + i of the block
      for (int i = 0; i < 32; i += 4) {
        const uint64_t r = rng.next();
        for (int k = 0; k < 4; ++k) {
          const auto u = static_cast<uint32_t>((r >> (16 * k)) & 0xffff);
          const uint8_t code = u < zero_threshold ? 1 : ((u & 1) ? 2 : 0);  // 0 => -1, 1 => 0, 2 => +1
          out[i + k] |= static_cast<uint8_t>(code << (6 - 2 * group));
        }
      }
    }
  }
  const auto scale = static_cast<float>(std::sqrt(2.0 / M_PI));
  std::memcpy(data.data() + n / 4, &scale, sizeof scale);
  return data;
}

std::vector<uint8_t> f32_normal(uint64_t n, Rng& rng) {
  std::vector<uint8_t> data(n * 4);
  for (uint64_t i = 0; i < n; ++i) {
    const float v = rng.normal();
    std::memcpy(data.data() + i * 4, &v, 4);
  }
  return data;
}

std::vector<uint8_t> f16_normal(uint64_t n, Rng& rng) {
  std::vector<uint8_t> data(n * 2);
  for (uint64_t i = 0; i < n; ++i) {
    const uint16_t h = half::from_float(rng.normal());
    std::memcpy(data.data() + i * 2, &h, 2);
  }
  return data;
}

std::vector<uint8_t> bf16_normal(uint64_t n, Rng& rng) {
  std::vector<uint8_t> data(n * 2);
  for (uint64_t i = 0; i < n; ++i) {
    const float v = rng.normal();
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    const auto upper = static_cast<uint16_t>(bits >> 16);  // truncated: any finite bf16 will do
    std::memcpy(data.data() + i * 2, &upper, 2);
  }
  return data;
}

// Data for a `rows` x `cols` weight of `type`.
Expected<std::vector<uint8_t>> weight_data(GgmlType type, uint64_t rows, uint64_t cols, Rng& rng) {
  switch (type) {
    case GgmlType::I2_S:
      return ternary_i2s(rows, cols, rng);
    case GgmlType::F32:
      return f32_normal(rows * cols, rng);
    case GgmlType::F16:
      return f16_normal(rows * cols, rng);
    case GgmlType::BF16:
      return bf16_normal(rows * cols, rng);
    default:
      break;
  }
  const uint64_t ne[2] = {cols, rows};
  BITNET_ASSIGN_OR_RETURN(const uint64_t bytes, ggml_tensor_nbytes(type, ne));
  std::vector<uint8_t> data(bytes);
  for (auto& b : data) b = static_cast<uint8_t>(rng.next());
  return data;
}

// A SentencePiece-style vocabulary as the reference's dummy models carry: <unk> <s> </s>,
// 256 byte-fallback tokens, a few hundred real pieces, then [PADn] fillers.
void add_synthetic_vocab(GgufWriter& w, uint32_t n_vocab, const std::string& model) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    scores.push_back(0);
    types.push_back(6);
  }
  const std::string letters = "etaoinshrdlcumwfgypbvkjxqzETAOINSHRDLCUMWFGYPBVKJXQZ0123456789.,!?'-";
  float score = -1;
  auto piece = [&](std::string s) {
    if (tokens.size() >= n_vocab) return;
    tokens.push_back(std::move(s));
    scores.push_back(score);
    score -= 1;
    types.push_back(1);
  };
  piece("\xE2\x96\x81");  // "▁"
  for (char c : letters) piece(std::string(1, c));
  for (char c : letters) piece("\xE2\x96\x81" + std::string(1, c));
  for (char a : letters.substr(0, 26)) {
    for (char b : letters.substr(0, 26)) piece(std::string{a, b});
  }
  for (uint32_t i = 0; tokens.size() < n_vocab; ++i) {
    tokens.push_back(fmt::format("[PAD{}]", i));
    scores.push_back(-1000);
    types.push_back(5);
  }
  tokens.resize(n_vocab);
  scores.resize(n_vocab);
  types.resize(n_vocab);
  w.set("tokenizer.ggml.model", model);
  w.set("tokenizer.ggml.pre", std::string("default"));
  if (model == "gpt2") w.set("tokenizer.ggml.merges", Array::of_strings({"e t", "t h", "h e"}));
  w.set("tokenizer.ggml.tokens", Array::of_strings(std::move(tokens)));
  w.set("tokenizer.ggml.scores", Array::of(scores));
  w.set("tokenizer.ggml.token_type", Array::of(types));
  w.set("tokenizer.ggml.bos_token_id", uint32_t{1});
  w.set("tokenizer.ggml.eos_token_id", uint32_t{2});
}

constexpr std::string_view kPresetNames[] = {"2b4t", "tiny", "small", "tiny-mha", "test"};

}  // namespace

std::span<const std::string_view> model_preset_names() {
  return kPresetNames;
}

std::optional<GeneratedModelSpec> model_preset(std::string_view name) {
  GeneratedModelSpec s;
  if (name == "2b4t") {
    s.name = "bitnet-2b4t-shape";
    s.n_embd = 2560, s.n_ff = 6912, s.n_layer = 30, s.n_head = 20, s.n_head_kv = 5, s.n_vocab = 128256;
    s.n_ctx = 4096;
  } else if (name == "tiny") {
    s.name = "b158-tiny";
  } else if (name == "small") {
    s.name = "b158-small";
    s.n_embd = 384, s.n_ff = 1152, s.n_head = 6, s.n_head_kv = 2;
  } else if (name == "tiny-mha") {
    s.arch = "bitnet", s.name = "bitnet-tiny-mha";
    s.n_head = 4, s.n_head_kv = 4, s.rope_freq_base = 10000.0f;
  } else if (name == "test") {
    s.name = "test";
    s.n_embd = 128, s.n_ff = 256, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_vocab = 512, s.n_ctx = 256;
  } else {
    return std::nullopt;
  }
  return s;
}

std::span<uint8_t> GeneratedModel::data(std::string_view name) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return buffers[i];
  }
  return {};
}

Expected<GeneratedModel> build_model(const GeneratedModelSpec& spec) {
  const ArchSpec* arch = find_arch(spec.arch);
  if (arch == nullptr) return make_error("unknown architecture '{}' (supported: {})", spec.arch, supported_arch_list());
  if (spec.n_head == 0 || spec.n_head_kv == 0 || spec.n_embd % spec.n_head != 0 || spec.n_head % spec.n_head_kv != 0) {
    return make_error("heads {} / kv heads {} do not divide the embedding {}", spec.n_head, spec.n_head_kv,
                      spec.n_embd);
  }
  if (spec.tokenizer_model != "llama" && spec.tokenizer_model != "gpt2")
    return make_error("the synthetic vocabulary is 'llama' or 'gpt2', not '{}'", spec.tokenizer_model);
  if (spec.n_layer == 0 || spec.n_layer > 1024) return make_error("layer count {} is out of range", spec.n_layer);
  const uint64_t head_dim = spec.n_embd / spec.n_head;
  const uint64_t n_embd_kv = head_dim * spec.n_head_kv;

  GeneratedModel m;
  GgufWriter& w = m.writer;
  const std::string p = spec.arch + ".";
  w.set("general.architecture", spec.arch);
  w.set("general.name", spec.name);
  w.set(p + "block_count", spec.n_layer);
  w.set(p + "context_length", spec.n_ctx);
  w.set(p + "embedding_length", spec.n_embd);
  w.set(p + "feed_forward_length", spec.n_ff);
  w.set(p + "attention.head_count", spec.n_head);
  w.set(p + "attention.head_count_kv", spec.n_head_kv);
  w.set(p + "rope.freq_base", spec.rope_freq_base);
  w.set(p + "attention.layer_norm_rms_epsilon", spec.rms_eps);
  if (spec.weight_type == GgmlType::I2_S) w.set("general.file_type", uint32_t{40});  // MOSTLY_I2_S
  uint32_t n_vocab = spec.n_vocab;
  if (spec.vocab_from != nullptr) {
    const Array* tokens = spec.vocab_from->get_array("tokenizer.ggml.tokens");
    if (tokens == nullptr || tokens->size() == 0) return make_error("--vocab-from file has no tokenizer.ggml.tokens");
    n_vocab = static_cast<uint32_t>(tokens->size());
  }
  w.set(p + "vocab_size", n_vocab);
  w.set(p + "rope.scaling.type", std::string("linear"));
  w.set(p + "rope.scaling.factor", 1.0f);
  if (spec.vocab_from != nullptr) {
    for (const auto& kv : spec.vocab_from->metadata()) {
      if (kv.key.starts_with("tokenizer.")) w.set(kv.key, kv.value);
    }
  } else {
    add_synthetic_vocab(w, n_vocab, spec.tokenizer_model);
  }
  w.set("general.quantization_version", uint32_t{2});

  Rng rng{spec.seed * 0x2545f4914f6cdd1dull + 1};
  // The writer keeps spans into the buffers: no reallocation of the outer vector.
  m.buffers.reserve(2 + 11 * static_cast<size_t>(spec.n_layer));
  auto add = [&](const std::string& name, GgmlType type, std::vector<uint64_t> ne, std::vector<uint8_t> data) {
    m.names.push_back(name);
    m.buffers.push_back(std::move(data));
    return w.add_tensor({name, type, std::move(ne), m.buffers.back()});
  };
  // A projection of `rows` outputs over `cols` inputs.
  auto projection = [&](const std::string& name, uint64_t cols, uint64_t rows) -> Status {
    BITNET_ASSIGN_OR_RETURN(auto data, weight_data(spec.weight_type, rows, cols, rng));
    return add(name, spec.weight_type, {cols, rows}, std::move(data));
  };
  // Tensor order of llama-quantize output for these models (see the shared b158 files).
  BITNET_RETURN_IF_ERROR(add("token_embd.weight", GgmlType::F16, {spec.n_embd, n_vocab},
                             f16_normal(uint64_t{spec.n_embd} * n_vocab, rng)));
  for (uint32_t i = 0; i < spec.n_layer; ++i) {
    const std::string b = fmt::format("blk.{}.", i);
    BITNET_RETURN_IF_ERROR(add(b + "attn_norm.weight", GgmlType::F32, {spec.n_embd}, f32_normal(spec.n_embd, rng)));
    BITNET_RETURN_IF_ERROR(projection(b + "ffn_down.weight", spec.n_ff, spec.n_embd));
    if (arch->sub_norms) {
      BITNET_RETURN_IF_ERROR(add(b + "ffn_sub_norm.weight", GgmlType::F32, {spec.n_ff}, f32_normal(spec.n_ff, rng)));
    }
    BITNET_RETURN_IF_ERROR(projection(b + "ffn_gate.weight", spec.n_embd, spec.n_ff));
    BITNET_RETURN_IF_ERROR(projection(b + "ffn_up.weight", spec.n_embd, spec.n_ff));
    BITNET_RETURN_IF_ERROR(add(b + "ffn_norm.weight", GgmlType::F32, {spec.n_embd}, f32_normal(spec.n_embd, rng)));
    if (arch->sub_norms) {
      BITNET_RETURN_IF_ERROR(
          add(b + "attn_sub_norm.weight", GgmlType::F32, {spec.n_embd}, f32_normal(spec.n_embd, rng)));
    }
    BITNET_RETURN_IF_ERROR(projection(b + "attn_k.weight", spec.n_embd, n_embd_kv));
    BITNET_RETURN_IF_ERROR(projection(b + "attn_output.weight", spec.n_embd, spec.n_embd));
    BITNET_RETURN_IF_ERROR(projection(b + "attn_q.weight", spec.n_embd, spec.n_embd));
    BITNET_RETURN_IF_ERROR(projection(b + "attn_v.weight", spec.n_embd, n_embd_kv));
  }
  BITNET_RETURN_IF_ERROR(add("output_norm.weight", GgmlType::F32, {spec.n_embd}, f32_normal(spec.n_embd, rng)));
  return m;
}

Status generate_model(const GeneratedModelSpec& spec, const std::string& path) {
  // build_model also makes models the engine refuses (tests of the checks); a file is for running.
  if (spec.weight_type == GgmlType::I2_S && (spec.n_embd % 128 != 0 || spec.n_ff % 128 != 0)) {
    return make_error("I2_S needs embedding and feed-forward sizes that are multiples of 128 (got {} and {})",
                      spec.n_embd, spec.n_ff);
  }
  BITNET_ASSIGN_OR_RETURN(GeneratedModel m, build_model(spec));
  return m.writer.write_file_atomic(path);
}

}  // namespace bitnet::gguf
