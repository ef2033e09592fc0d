// Synthetic Hugging Face checkpoints (see synthetic_checkpoint.h).
#include "convert/synthetic_checkpoint.h"

#include "ir/support/half.h"
#include "ir/support/splitmix64.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

namespace bitnet::testing {
namespace {

namespace fs = std::filesystem;

struct Rng : SplitMix64 {
  float uniform() { return static_cast<float>(next() >> 40) * 0x1.0p-24f; }  // [0, 1), 24 bits
};

float to_bf16_value(float x) {  // the value a bf16 store keeps (truncation)
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits &= 0xffff0000u;
  std::memcpy(&x, &bits, 4);
  return x;
}

// Ternary codes (about 2/3 non-zero) and master weights that round to them without doubt:
// non-zero codes get |w| in alpha*[0.9, 1.1], zeros |w| < 0.1*alpha, so |w| * (1/mean|w|) is
// about 1.5 +- 0.2 or below 0.2.
void master_weights(uint64_t n, Rng& rng, std::vector<int8_t>& codes, std::vector<float>& w) {
  const float alpha = 0.02f;
  codes.resize(n);
  w.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t r = rng.next() % 3;
    codes[i] = static_cast<int8_t>(static_cast<int>(r) - 1);
    const float u = rng.uniform() * 2 - 1;
    w[i] = to_bf16_value(codes[i] != 0 ? codes[i] * alpha * (1.0f + 0.1f * u) : 0.1f * alpha * u);
  }
}

std::vector<float> norm_values(uint64_t n, Rng& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = to_bf16_value(0.5f + rng.uniform());
  return v;
}

// transformers' pack_weights: row i*(rows/4) + r goes to byte row r, bits 2i..2i+1, as code + 1.
std::vector<uint8_t> pack_hf(const std::vector<int8_t>& codes, uint64_t rows, uint64_t cols) {
  std::vector<uint8_t> out(rows / 4 * cols, 0);
  for (uint64_t row = 0; row < rows; ++row) {
    const uint64_t i = row / (rows / 4), r = row % (rows / 4);
    for (uint64_t c = 0; c < cols; ++c)
      out[r * cols + c] |= static_cast<uint8_t>((codes[row * cols + c] + 1) << (2 * i));
  }
  return out;
}

const std::vector<std::pair<std::string, std::string>> kMerges = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"o", "!"}};

}  // namespace

int i2s_code(const uint8_t* data, uint64_t j) {
  const uint64_t block = j / 128, p = j % 128;
  return ((data[block * 32 + p % 32] >> (6 - 2 * (p / 32))) & 3) - 1;
}

SyntheticCheckpoint write_synthetic_checkpoint(const fs::path& dir, HfLayout layout, int shards) {
  fs::create_directories(dir);
  SyntheticCheckpoint s;
  Rng rng{0x5eed + static_cast<uint64_t>(layout)};
  const bool spm = layout == HfLayout::kBitnet1bitLLM;
  std::vector<SpmPieceSpec> pieces;
  if (spm) {
    pieces = {{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}};
    for (int b = 0; b < 256; ++b) pieces.push_back({fmt::format("<0x{:02X}>", b), 0, 6});
    float score = -1;
    for (const char* p : {"\xE2\x96\x81", "h", "e", "l", "o", "\xE2\x96\x81h", "ll", "he", "hell", "hello"})
      pieces.push_back({p, score--, 1});
    s.n_vocab = pieces.size() + 3;  // three ids the tokenizer does not use: [PADn]
  } else {
    s.n_vocab = 256 + kMerges.size() + 2;
  }
  const uint64_t head_dim = s.n_embd / s.n_head, kv = head_dim * s.n_head_kv;

  std::vector<StEntry> entries;
  auto add_vector = [&](const std::string& name, uint64_t n) {
    auto v = norm_values(n, rng);
    s.vectors[name] = v;
    entries.push_back({name,
                       layout == HfLayout::kLlama ? "F32" : "BF16",
                       {n},
                       layout == HfLayout::kLlama ? f32_bytes(v) : bf16_bytes(v)});
  };
  auto add_matrix_dense = [&](const std::string& name, uint64_t rows, uint64_t cols) {
    std::vector<float> v(rows * cols);
    for (auto& x : v) x = to_bf16_value((rng.uniform() * 2 - 1) * 0.5f);
    s.vectors[name] = v;
    const std::string dtype = layout == HfLayout::kLlama ? "F32" : layout == HfLayout::kBitnet1bitLLM ? "F16" : "BF16";
    entries.push_back({name,
                       dtype,
                       {rows, cols},
                       dtype == "F32"   ? f32_bytes(v)
                       : dtype == "F16" ? f16_bytes(v)
                                        : bf16_bytes(v)});
  };
  auto add_projection = [&](const std::string& name, uint64_t rows, uint64_t cols) {
    ExpectedProjection p;
    p.rows = rows, p.cols = cols;
    if (layout == HfLayout::kLlama) {
      p.values.resize(rows * cols);
      for (auto& x : p.values) x = (rng.uniform() * 2 - 1) * 0.1f;
      entries.push_back({name, "F32", {rows, cols}, f32_bytes(p.values)});
    } else if (layout == HfLayout::kBitNetPacked) {
      std::vector<float> unused;
      master_weights(rows * cols, rng, p.codes, unused);
      const float weight_scale = 0.5f + static_cast<float>(rng.next() % 4);  // exact in bf16; scale = 1/ws
      p.scale = 1.0f / weight_scale;
      entries.push_back({name, "U8", {rows / 4, cols}, pack_hf(p.codes, rows, cols)});
      entries.push_back({name + "_scale", "BF16", {1}, bf16_bytes({weight_scale})});
    } else {
      std::vector<float> w;
      master_weights(rows * cols, rng, p.codes, w);
      const bool f16 = layout == HfLayout::kBitnet1bitLLM;
      if (f16) {  // F16 storage: the values the file keeps decide the scale
        for (auto& x : w) x = half::to_float(half::from_float(x));
      }
      double sum = 0;
      for (float x : w) sum += std::fabs(x);
      p.scale = 1.0f / (1.0f / static_cast<float>(sum / static_cast<double>(w.size())));
      entries.push_back({name, f16 ? "F16" : "BF16", {rows, cols}, f16 ? f16_bytes(w) : bf16_bytes(w)});
    }
    s.projections[name] = std::move(p);
  };

  add_matrix_dense("model.embed_tokens.weight", s.n_vocab, s.n_embd);
  for (uint64_t i = 0; i < s.n_layer; ++i) {
    const std::string h = fmt::format("model.layers.{}.", i);
    add_vector(h + "input_layernorm.weight", s.n_embd);
    add_projection(h + "self_attn.q_proj.weight", s.n_embd, s.n_embd);
    add_projection(h + "self_attn.k_proj.weight", kv, s.n_embd);
    add_projection(h + "self_attn.v_proj.weight", kv, s.n_embd);
    add_projection(h + "self_attn.o_proj.weight", s.n_embd, s.n_embd);
    add_vector(h + "post_attention_layernorm.weight", s.n_embd);
    add_projection(h + "mlp.gate_proj.weight", s.n_ff, s.n_embd);
    add_projection(h + "mlp.up_proj.weight", s.n_ff, s.n_embd);
    add_projection(h + "mlp.down_proj.weight", s.n_embd, s.n_ff);
    if (layout == HfLayout::kBitNetMaster || layout == HfLayout::kBitNetPacked) {
      add_vector(h + "self_attn.attn_sub_norm.weight", s.n_embd);
      add_vector(h + "mlp.ffn_sub_norm.weight", s.n_ff);
    } else if (layout == HfLayout::kBitnet1bitLLM) {
      add_vector(h + "self_attn.inner_attn_ln.weight", s.n_embd);
      add_vector(h + "mlp.ffn_layernorm.weight", s.n_ff);
    }
  }
  add_vector("model.norm.weight", s.n_embd);
  const bool untied = layout == HfLayout::kBitnet1bitLLM || layout == HfLayout::kLlama;
  if (untied) add_matrix_dense("lm_head.weight", s.n_vocab, s.n_embd);

  // Weights: one file, or `shards` files and an index.
  if (shards <= 1) {
    write_file(dir / "model.safetensors", safetensors_bytes(entries));
  } else {
    nlohmann::json map = nlohmann::json::object();
    const size_t per = (entries.size() + shards - 1) / shards;
    for (int k = 0; k < shards; ++k) {
      const std::string file = fmt::format("model-{:05}-of-{:05}.safetensors", k + 1, shards);
      std::vector<StEntry> part;
      for (size_t i = k * per; i < std::min(entries.size(), (k + 1) * per); ++i) {
        part.push_back(entries[i]);
        map[entries[i].name] = file;
      }
      write_file(dir / file, safetensors_bytes(part));
    }
    write_text(dir / "model.safetensors.index.json", nlohmann::json{{"metadata", {}}, {"weight_map", map}}.dump(1));
  }

  nlohmann::json config = {{"hidden_size", s.n_embd},
                           {"intermediate_size", s.n_ff},
                           {"num_hidden_layers", s.n_layer},
                           {"num_attention_heads", s.n_head},
                           {"num_key_value_heads", s.n_head_kv},
                           {"vocab_size", s.n_vocab},
                           {"max_position_embeddings", 256},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 500000.0},
                           {"tie_word_embeddings", !untied}};
  switch (layout) {
    case HfLayout::kBitNetMaster:
    case HfLayout::kBitNetPacked:
      config["architectures"] = {"BitNetForCausalLM"};
      config["model_type"] = "bitnet";
      config["hidden_act"] = "relu2";
      config["quantization_config"] = {{"quant_method", "bitnet"},
                                       {"linear_class", "autobitlinear"},
                                       {"quantization_mode", layout == HfLayout::kBitNetPacked ? "offline" : "online"}};
      break;
    case HfLayout::kBitnet1bitLLM:
      config["architectures"] = {"BitnetForCausalLM"};
      config["model_type"] = "llama";
      config["hidden_act"] = "silu";
      break;
    case HfLayout::kLlama:
      config["architectures"] = {"LlamaForCausalLM"};
      config["model_type"] = "llama";
      config["hidden_act"] = "silu";
      break;
  }
  write_text(dir / "config.json", config.dump(2));
  if (spm) {
    write_file(dir / "tokenizer.model", sentencepiece_model_bytes(pieces, true));
    write_text(dir / "tokenizer_config.json", R"({"bos_token":"<s>","eos_token":"</s>","add_bos_token":true})");
  } else {
    write_text(dir / "tokenizer.json", bpe_tokenizer_json(kMerges, {"<|begin_of_text|>", "<|eot_id|>"}).dump());
    write_text(
        dir / "tokenizer_config.json",
        nlohmann::json{{"bos_token", "<|begin_of_text|>"},
                       {"eos_token", "<|eot_id|>"},
                       {"add_bos_token", true},
                       {"chat_template",
                        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '<|eot_id|>' }}{% endfor %}"}}
            .dump());
    write_text(dir / "generation_config.json", R"({"bos_token_id": 260, "eos_token_id": [261]})");
  }
  return s;
}

}  // namespace bitnet::testing
