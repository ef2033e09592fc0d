// The vocabulary shared by both tokenizer models (token attributes, special ids, the
// special-token partition of the input, pieces and detokenization) and the base class the
// SentencePiece and BPE tokenizers derive from (internal to runtime/).
#pragma once

#include "runtime/string_index.h"
#include "runtime/tokenizer.h"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::runtime::detail {

// llama.cpp's llama_token_attr bits.
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrLstrip = 1u << 7,
  kAttrRstrip = 1u << 8,
};

enum class VocabKind { kSpm, kBpe };

// Model-type defaults, overridden by the metadata where it says otherwise.
struct VocabDefaults {
  TokenId bos = -1, eos = -1, unk = -1;
  bool add_bos = false;
  bool add_space_prefix = false;
  bool clean_spaces = false;
};

// A piece of the input after the special-token partition: a token (token >= 0) or raw text.
struct Fragment {
  TokenId token = -1;
  size_t offset = 0;
  size_t length = 0;
};

struct Vocab {
  VocabKind kind = VocabKind::kSpm;
  std::vector<std::string> text;
  std::vector<float> score;
  std::vector<uint32_t> attr;
  StringIndex ids;  // text -> id, over `text`
  TokenId bos = -1, eos = -1, unk = -1, eot = -1, eom = -1, pad = -1, sep = -1, newline = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false, clean_spaces = false;
  std::vector<TokenId> special_tokens;     // control, user-defined and unknown tokens, longest text first
  std::vector<TokenId> end_of_generation;  // sorted

  bool valid(TokenId id) const { return id >= 0 && static_cast<size_t>(id) < text.size(); }
  TokenId find(std::string_view s) const { return ids.find(text, s); }
  // llama.cpp's tokenizer_st_partition: user-defined tokens always, control and unknown
  // tokens only with parse_special, are cut out of the text before the model runs.
  std::vector<Fragment> partition(std::string_view input, bool parse_special) const;
};

// Builds the vocabulary as llama.cpp's llama_vocab::load does. `model_name` is
// general.name (empty when unknown): llama.cpp sets per-model token attributes from it.
Expected<Vocab> build_vocab(const gguf::TokenizerData& data, VocabKind kind, const VocabDefaults& defaults,
                            std::string_view model_name);

// The detokenizer's clean_up_tokenization_spaces passes, in place.
void clean_up_spaces(std::string& text);

class VocabTokenizer : public Tokenizer {
 public:
  explicit VocabTokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options) const override;
  std::string token_to_piece(TokenId id, bool render_special) const override;
  std::string decode(std::span<const TokenId> ids, bool render_special) const override;

  size_t vocab_size() const override { return vocab_.text.size(); }
  std::string_view token_text(TokenId id) const override;
  TokenId bos() const override { return vocab_.bos; }
  TokenId eos() const override { return vocab_.eos; }
  bool adds_bos() const override { return vocab_.add_bos && vocab_.bos >= 0; }
  bool is_end_of_generation(TokenId id) const override;
  VocabularyFacts facts() const override;
  float token_score(TokenId id) const override { return vocab_.valid(id) ? vocab_.score[id] : 0.0f; }
  uint32_t token_attributes(TokenId id) const override { return vocab_.valid(id) ? vocab_.attr[id] : 0; }

 protected:
  // Encodes one raw-text fragment; `after_special` is true at the start and after a token
  // fragment (SentencePiece adds its space prefix there).
  virtual void encode_text(std::string_view text, bool after_special, std::vector<TokenId>& out) const = 0;
  // The text of a normal token.
  virtual std::string normal_piece(const std::string& token) const = 0;
  virtual bool has_byte_tokens() const = 0;

  Vocab vocab_;
};

}  // namespace bitnet::runtime::detail
