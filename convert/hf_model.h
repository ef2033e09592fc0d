// What a Hugging Face config.json describes, checked: the GGUF architecture it becomes, the
// hyper-parameters, and the Hugging Face name of each tensor the GGUF model needs.
#pragma once

#include "ir/support/expected.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace bitnet::convert {

enum class HfFamily {
  kBitNet2B,       // BitNetForCausalLM, model_type "bitnet" (BitNet b1.58 2B4T): ReLU², SubLN
  kBitnet1bitLLM,  // BitnetForCausalLM (1bitLLM bitnet_b1_58-*): SiLU, SubLN
  kLlama,          // LlamaForCausalLM
};

struct HfModel {
  HfFamily family = HfFamily::kLlama;
  std::string hf_architecture;  // config "architectures"[0]
  std::string gguf_arch;        // general.architecture written
  uint64_t n_vocab = 0, n_ctx = 0, n_embd = 0, n_ff = 0, n_layer = 0, n_head = 0, n_head_kv = 0;
  float rms_eps = 1e-5f, rope_theta = 10000.0f;
  std::optional<float> rope_linear_factor;  // rope_scaling {"type": "linear", "factor": F}
  bool ternary = false;                     // the projections are ternary (BitNet families, or quant_method "bitnet")
  bool permute_qk = false;                  // llama: Q/K rows to GGUF's interleaved RoPE order
  // Per-layer Hugging Face suffixes of the sub-norms (empty for llama).
  std::string attn_sub_norm, ffn_sub_norm;

  uint64_t head_dim() const { return n_embd / n_head; }
  uint64_t n_embd_kv() const { return head_dim() * n_head_kv; }
};

// Reads and checks config.json: a supported architecture, every size present, positive and
// consistent (heads dividing the embedding, KV heads dividing the heads, an even head size),
// the activation the GGUF architecture's graph uses, no biases, no rope scaling but linear.
Expected<HfModel> read_hf_model(const nlohmann::json& config);

}  // namespace bitnet::convert
