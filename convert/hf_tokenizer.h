// A Hugging Face tokenizer (tokenizer.json with a byte-level BPE model, or a SentencePiece
// tokenizer.model) plus tokenizer_config.json / config.json / generation_config.json, written
// as the tokenizer.ggml.* and tokenizer.chat_template keys the way llama.cpp's converter
// writes them (docs/convert-hf.md lists each key and its source).
#pragma once

#include "frontend_gguf/gguf_writer.h"
#include "ir/support/expected.h"

#include <cstdint>
#include <string>
#include <vector>

namespace bitnet::convert {

struct TokenizerReport {
  std::string source;  // "tokenizer.json" or "tokenizer.model"
  std::string model;   // "gpt2" or "llama"
  std::string pre;     // gpt2 only
  uint64_t n_tokens = 0;
  std::vector<std::string> notes;  // what the user should know (a guessed pre-tokenizer, ...)
};

// Adds the tokenizer keys of model directory `dir` to `w`, with exactly `n_vocab` tokens (the
// embedding's rows: ids the tokenizer lacks become "[PADn]" unused tokens, as in llama.cpp; a
// tokenizer with more tokens is an error). tokenizer.json is preferred when both exist.
Expected<TokenizerReport> add_hf_tokenizer(const std::string& dir, uint64_t n_vocab, gguf::GgufWriter& w);

}  // namespace bitnet::convert
