// config.json -> HfModel (see hf_model.h).
#include "convert/hf_model.h"

#include <cmath>

namespace bitnet::convert {
namespace {

using nlohmann::json;

Expected<uint64_t> read_size(const json& c, const char* key, std::optional<uint64_t> fallback = std::nullopt) {
  if (!c.contains(key) || c[key].is_null()) {
    if (fallback) return *fallback;
    return make_error("config.json has no \"{}\"", key);
  }
  const json& v = c[key];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (int64_t{1} << 24))
    return make_error("config.json \"{}\" is {}, not a positive integer up to 2^24", key, v.dump());
  return static_cast<uint64_t>(v.get<int64_t>());
}

Expected<float> read_positive(const json& c, const char* key, float fallback) {
  if (!c.contains(key) || c[key].is_null()) return fallback;
  const json& v = c[key];
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0)
    return make_error("config.json \"{}\" is {}, not a positive number", key, v.dump());
  return static_cast<float>(v.get<double>());
}

}  // namespace

Expected<HfModel> read_hf_model(const json& c) {
  HfModel m;
  if (!c.contains("architectures") || !c["architectures"].is_array() || c["architectures"].empty() ||
      !c["architectures"][0].is_string())
    return make_error("config.json has no \"architectures\" list");
  m.hf_architecture = c["architectures"][0].get<std::string>();
  std::string want_act;
  if (m.hf_architecture == "BitNetForCausalLM") {
    // The 2B4T graph: bitnet.cpp's build_bitnet_158 (spec 2), published as "bitnet-b1.58".
    m.family = HfFamily::kBitNet2B, m.gguf_arch = "bitnet-b1.58", want_act = "relu2";
    m.attn_sub_norm = "self_attn.attn_sub_norm.weight", m.ffn_sub_norm = "mlp.ffn_sub_norm.weight";
    m.ternary = true;
  } else if (m.hf_architecture == "BitnetForCausalLM") {
    m.family = HfFamily::kBitnet1bitLLM, m.gguf_arch = "bitnet", want_act = "silu";
    m.attn_sub_norm = "self_attn.inner_attn_ln.weight", m.ffn_sub_norm = "mlp.ffn_layernorm.weight";
    m.ternary = true;
  } else if (m.hf_architecture == "LlamaForCausalLM") {
    m.family = HfFamily::kLlama, m.gguf_arch = "llama", want_act = "silu";
    m.permute_qk = true;
  } else {
    return make_error("architecture '{}' is not supported (BitNetForCausalLM, BitnetForCausalLM, LlamaForCausalLM)",
                      m.hf_architecture);
  }
  BITNET_ASSIGN_OR_RETURN(m.n_embd, read_size(c, "hidden_size"));
  BITNET_ASSIGN_OR_RETURN(m.n_ff, read_size(c, "intermediate_size"));
  BITNET_ASSIGN_OR_RETURN(m.n_layer, read_size(c, "num_hidden_layers"));
  BITNET_ASSIGN_OR_RETURN(m.n_head, read_size(c, "num_attention_heads"));
  BITNET_ASSIGN_OR_RETURN(m.n_head_kv, read_size(c, "num_key_value_heads", m.n_head));
  BITNET_ASSIGN_OR_RETURN(m.n_vocab, read_size(c, "vocab_size"));
  BITNET_ASSIGN_OR_RETURN(m.n_ctx, read_size(c, "max_position_embeddings", 2048));
  if (m.n_layer > 4096 || m.n_head > 4096) return make_error("config.json: more than 4096 layers or heads");
  if (m.n_embd % m.n_head != 0 || m.n_head % m.n_head_kv != 0 || m.head_dim() % 2 != 0) {
    return make_error("config.json: {} heads ({} KV heads) do not split hidden_size {} into even heads", m.n_head,
                      m.n_head_kv, m.n_embd);
  }
  if (c.contains("head_dim") && !c["head_dim"].is_null() &&
      (!c["head_dim"].is_number_integer() || c["head_dim"].get<int64_t>() != static_cast<int64_t>(m.head_dim())))
    return make_error("config.json head_dim {} is not hidden_size / num_attention_heads = {}", c["head_dim"].dump(),
                      m.head_dim());
  BITNET_ASSIGN_OR_RETURN(m.rms_eps, read_positive(c, "rms_norm_eps", 1e-6f));
  BITNET_ASSIGN_OR_RETURN(m.rope_theta, read_positive(c, "rope_theta", 10000.0f));
  const std::string act = c.value("hidden_act", want_act);
  if (act != want_act) {
    return make_error("config.json hidden_act '{}': the {} graph uses {}", act, m.gguf_arch, want_act);
  }
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    if (c.contains(bias) && c[bias].is_boolean() && c[bias].get<bool>())
      return make_error("config.json {} is true: biases are not supported", bias);
  }
  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null()) {
    const json& s = c["rope_scaling"];
    const std::string type = s.is_object() ? s.value("rope_type", s.value("type", std::string())) : std::string();
    if (type != "linear" || !s.contains("factor") || !s["factor"].is_number() || s["factor"].get<double>() <= 0)
      return make_error("config.json rope_scaling {} is not supported (linear only)", s.dump());
    m.rope_linear_factor = static_cast<float>(s["factor"].get<double>());
  }
  // A llama checkpoint saved by transformers' BitNet quantizer carries packed ternary weights.
  if (m.family == HfFamily::kLlama && c.contains("quantization_config") && c["quantization_config"].is_object() &&
      c["quantization_config"].value("quant_method", std::string()) == "bitnet")
    m.ternary = true;
  return m;
}

}  // namespace bitnet::convert
