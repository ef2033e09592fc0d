// A minimal reader of SentencePiece's tokenizer.model (a protobuf ModelProto): the pieces with
// their scores and types, the normalizer's add_dummy_prefix and the trainer's special ids.
// Only the fields a GGUF vocabulary needs are decoded; every length is checked.
#pragma once

#include "frontend_gguf/tokenizer_data.h"
#include "ir/support/expected.h"

#include <optional>
#include <string>
#include <vector>

namespace bitnet::convert {

struct SpmPiece {
  std::string text;
  float score = 0;
  gguf::TokenType type = gguf::TokenType::kNormal;
};

struct SpmSpecialIds {
  std::optional<int64_t> unk, bos, eos, pad;  // trainer_spec; -1 (disabled) becomes nullopt
};

struct SpmModel {
  std::vector<SpmPiece> pieces;
  bool add_dummy_prefix = true;
  SpmSpecialIds special;
};

Expected<SpmModel> parse_sentencepiece_model(std::string_view bytes);
Expected<SpmModel> read_sentencepiece_model(const std::string& path);

}  // namespace bitnet::convert
