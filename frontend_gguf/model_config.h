// What the engine knows about each supported architecture, and the hyper-parameters
// of a model read from its GGUF metadata and checked against its tensors.
#pragma once

#include "frontend_gguf/diagnostics.h"
#include "frontend_gguf/gguf_file.h"

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace bitnet::gguf {

enum class FfnActivation { kSilu, kReluSquared };
enum class RopeStyle { kNormal, kNeox };  // llama.cpp LLAMA_ROPE_TYPE_NORM / _NEOX

struct ArchSpec {
  std::string_view name;  // general.architecture
  FfnActivation ffn_activation;
  RopeStyle rope_style;
  bool sub_norms;           // attn_sub_norm before attn_output, ffn_sub_norm before ffn_down
  bool output_tensor_used;  // output.weight is used when present (else the embedding is tied)
};

std::span<const ArchSpec> supported_archs();
const ArchSpec* find_arch(std::string_view name);
std::string supported_arch_list();  // "llama, bitnet, ..." for messages

struct ModelConfig {
  const ArchSpec* arch = nullptr;
  uint64_t n_vocab = 0;      // rows of token_embd (= number of tokens)
  uint64_t n_ctx_train = 0;  // {arch}.context_length
  uint64_t n_embd = 0;
  uint64_t n_layer = 0;
  uint64_t n_ff = 0;
  uint64_t n_head = 0;
  uint64_t n_head_kv = 0;
  uint64_t head_dim = 0;   // n_embd / n_head
  uint64_t n_embd_kv = 0;  // head_dim * n_head_kv
  uint64_t n_rot = 0;      // rotary dims (= head_dim for every supported arch)
  float rms_eps = 0;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor for linear scaling
  bool separate_output = false;  // output.weight present and used by the graph
};

// Checks hyper-parameters, tensor presence, shapes and types. Appends findings;
// returns the config when the model can run (no errors).
std::optional<ModelConfig> analyze_model(const GgufFile& file, Findings& findings);

// Strict form for loaders: the first error (naming the key or tensor) or the config.
Expected<ModelConfig> read_model_config(const GgufFile& file);

// Whether this engine can multiply by a weight of this type.
bool is_supported_weight_type(GgmlType type);

}  // namespace bitnet::gguf
