// Synthetic models in the exact layout the reference tools write (metadata keys and
// tensor order of llama-quantize output, I2_S per spec 6, F16 tied embedding), with
// random ternary weights. The one model generator: `bitnet gen-model`, benchmarks and tests
// (which build a model in memory, break it on purpose, then write it).
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/gguf_writer.h"
#include "ir/support/expected.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace bitnet::gguf {

struct GeneratedModelSpec {
  std::string arch = "bitnet-b1.58";  // bitnet | bitnet-b1.58 | bitnet-25 | llama
  std::string name = "synthetic";
  uint32_t n_embd = 256;
  uint32_t n_ff = 768;
  uint32_t n_layer = 4;
  uint32_t n_head = 8;
  uint32_t n_head_kv = 2;
  uint32_t n_vocab = 32000;
  uint32_t n_ctx = 2048;
  float rope_freq_base = 500000.0f;
  float rms_eps = 1e-5f;
  uint64_t seed = 1;
  // Copy the tokenizer (tokenizer.* keys) of this GGUF instead of a synthetic
  // SentencePiece-style vocabulary; n_vocab then follows it.
  const GgufFile* vocab_from = nullptr;
  // The synthetic vocabulary's tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (BPE:
  // the same pieces plus merges).
  std::string tokenizer_model = "llama";
  // The type of every projection (attention and feed-forward matrices). I2_S gets ternary
  // codes, F32/F16/BF16 N(0, 1) values, any other GGUF type random bytes (for tests of files
  // the engine cannot or must not run).
  GgmlType weight_type = GgmlType::I2_S;
};

// A model built in memory: the writer's tensors point into `buffers`.
struct GeneratedModel {
  GgufWriter writer;
  std::vector<std::string> names;             // tensor names, in writer order
  std::vector<std::vector<uint8_t>> buffers;  // their data
  // The data of tensor `name` (empty if there is none), to edit before writing.
  std::span<uint8_t> data(std::string_view name);
};

// Named presets: "2b4t" (BitNet b1.58 2B-4T shape), "tiny" / "small" (the shapes of the
// shared b158 models), "tiny-mha" (bitnet arch), "test" (a few hundred KB).
std::optional<GeneratedModelSpec> model_preset(std::string_view name);
std::span<const std::string_view> model_preset_names();

Expected<GeneratedModel> build_model(const GeneratedModelSpec& spec);
// Builds the model and writes it to `path` (temp file + rename).
Status generate_model(const GeneratedModelSpec& spec, const std::string& path);

}  // namespace bitnet::gguf
