// Constructors of the concrete tokenizers, used by the public factories (internal to runtime/).
#pragma once

#include "runtime/tokenizer.h"
#include "runtime/tokenizer_regex.h"

#include <memory>
#include <string_view>

namespace bitnet::runtime::detail {

// SentencePiece-style "llama" vocabulary (scores, byte fallback, space prefix).
Expected<std::unique_ptr<Tokenizer>> make_spm_tokenizer(const gguf::TokenizerData& data, std::string_view model_name);

// Byte-level BPE "gpt2" vocabulary with the given pre-tokenizer.
Expected<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(const gguf::TokenizerData& data, const PreTokenizerConfig& pre,
                                                        std::string_view model_name);

// A tokenizer.json converted to GGUF-style data plus its pre-tokenizer (tokenizer_hf.cpp).
struct HfTokenizer {
  gguf::TokenizerData data;
  PreTokenizerConfig pre;
};
Expected<HfTokenizer> read_hf_tokenizer(const std::string& path);

}  // namespace bitnet::runtime::detail
