// Tokenizer data carried in GGUF metadata (tokenizer.ggml.*): read, summarised and
// checked here; the tokenizers themselves live in runtime/.
#pragma once

#include "frontend_gguf/diagnostics.h"
#include "frontend_gguf/gguf_file.h"

#include <optional>
#include <string>
#include <vector>

namespace bitnet::gguf {

// llama.cpp token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

struct SpecialTokenIds {
  std::optional<int64_t> bos, eos, unk, sep, pad, eot;
};

// Counts and ids only (cheap: no copy of the vocabulary), for inspect and compat-check.
struct TokenizerSummary {
  bool present = false;             // tokenizer.ggml.model exists
  std::string model;                // "llama", "gpt2", ...
  std::optional<std::string> pre;   // tokenizer.ggml.pre
  uint64_t n_tokens = 0;
  uint64_t n_scores = 0;
  uint64_t n_token_types = 0;
  uint64_t n_merges = 0;
  SpecialTokenIds special;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  bool has_chat_template = false;
};

TokenizerSummary summarize_tokenizer(const GgufFile& file);

// Checks the tokenizer metadata for loading problems; `embedding_rows` (when known)
// is compared with the vocabulary size.
void check_tokenizer(const GgufFile& file, std::optional<uint64_t> embedding_rows, Findings& findings);

// The full vocabulary for building a tokenizer.
struct TokenizerData {
  std::string model;
  std::optional<std::string> pre;
  std::vector<std::string> tokens;
  std::vector<float> scores;         // empty when absent
  std::vector<int32_t> token_types;  // empty when absent
  std::vector<std::string> merges;   // BPE only
  SpecialTokenIds special;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  std::string chat_template;
};

Expected<TokenizerData> read_tokenizer_data(const GgufFile& file);

}  // namespace bitnet::gguf
