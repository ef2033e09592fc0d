// Small synthetic Hugging Face checkpoints for the convert tests, one per supported layout,
// with the ternary values each projection must become known by construction.
#pragma once

#include "convert/checkpoint_writer.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace bitnet::testing {

enum class HfLayout {
  kBitNetMaster,   // BitNetForCausalLM, BF16 master weights
  kBitNetPacked,   // BitNetForCausalLM, packed uint8 weights + weight_scale
  kBitnet1bitLLM,  // BitnetForCausalLM, F16 weights, SentencePiece tokenizer, untied lm_head
  kLlama,          // LlamaForCausalLM, F32 weights
};

struct ExpectedProjection {
  uint64_t rows = 0, cols = 0;
  std::vector<int8_t> codes;  // ternary layouts, in Hugging Face row order
  std::vector<float> values;  // llama: the dense values, Hugging Face row order
  float scale = 0;            // ternary: the GGUF scale the converter must write
};

struct SyntheticCheckpoint {
  uint64_t n_embd = 256, n_ff = 512, n_layer = 2, n_head = 4, n_head_kv = 2, n_vocab = 0;
  std::map<std::string, ExpectedProjection> projections;  // by Hugging Face name
  std::map<std::string, std::vector<float>> vectors;      // norms (and the embedding), by HF name
};

// Writes the checkpoint into `dir` (created); `shards` > 1 splits the weights with an index.
SyntheticCheckpoint write_synthetic_checkpoint(const std::filesystem::path& dir, HfLayout layout, int shards = 1);

// I2_S code (-1, 0, 1) of flat element j of tensor data laid out per spec 6.
int i2s_code(const uint8_t* data, uint64_t j);

}  // namespace bitnet::testing
