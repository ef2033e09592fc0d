// Test helpers that write Hugging Face checkpoints: a safetensors writer following the
// format's spec (8-byte little-endian header length, JSON header, data aligned to 8 bytes by
// padding the header with spaces), and small tokenizer files.
#pragma once

#include "test_support.h"  // write_file

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bitnet::testing {

struct StEntry {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "U8", ...
  std::vector<uint64_t> shape;
  std::vector<uint8_t> data;
};

std::vector<uint8_t> f32_bytes(const std::vector<float>& v);
std::vector<uint8_t> bf16_bytes(const std::vector<float>& v);  // truncating: exact for bf16-representable values
std::vector<uint8_t> f16_bytes(const std::vector<float>& v);

// A whole .safetensors file's bytes; `header_patch` (when set) replaces the generated JSON.
std::vector<uint8_t> safetensors_bytes(const std::vector<StEntry>& entries, const std::string* header_patch = nullptr);
void write_text(const std::filesystem::path& path, const std::string& text);

// A byte-level BPE tokenizer.json (GPT-2 pre-tokenizer) holding the 256 byte tokens, the
// merges' results and the given special tokens after them; its size is 256 + merges + specials.
nlohmann::json bpe_tokenizer_json(const std::vector<std::pair<std::string, std::string>>& merges,
                                  const std::vector<std::string>& specials);

// A SentencePiece tokenizer.model protobuf with these pieces (text, score, type 1..6).
struct SpmPieceSpec {
  std::string text;
  float score;
  int type;
};
std::vector<uint8_t> sentencepiece_model_bytes(const std::vector<SpmPieceSpec>& pieces, bool add_dummy_prefix);

}  // namespace bitnet::testing
