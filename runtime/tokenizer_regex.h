// Byte-level BPE pre-tokenization: llama.cpp's regex sets per tokenizer.ggml.pre value, and
// a PCRE2 splitter that applies a sequence of regexes the way llama.cpp's
// unicode_regex_split does (internal to runtime/).
#pragma once

#include "ir/support/expected.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::runtime::detail {

// What a pre-tokenizer type implies for a byte-level BPE vocabulary.
struct PreTokenizerConfig {
  std::string name;                   // the pre value it was resolved from ("default" when missing)
  std::vector<std::string> patterns;  // applied in sequence, each splitting the previous pieces
  bool clean_spaces = true;           // detokenizer removes spaces before punctuation (HF clean_up_tokenization_spaces)
  bool ignore_merges = false;         // a word that is already a token is emitted whole (llama3)
  std::optional<bool> add_bos;        // default for add_bos when the metadata does not say (llama3: true)
};

// The configuration llama.cpp (as pinned by bitnet.cpp) uses for `pre`; a missing value
// falls back to the "default" regex sequence (spec section 9). Unknown values are errors.
Expected<PreTokenizerConfig> bpe_pre_tokenizer(const std::optional<std::string>& pre);

// Splits text with a sequence of PCRE2 regexes (UTF, UCP, JIT). Each regex runs on every
// piece produced by the previous one on its own (lookarounds and `$` stop at the piece's
// edges); matches and the text between matches both become pieces, so the pieces always
// concatenate back to the input. Invalid UTF-8 bytes are matched as U+FFFD but returned as
// the original bytes.
class RegexSplitter {
 public:
  static Expected<std::shared_ptr<const RegexSplitter>> create(const std::vector<std::string>& patterns);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Impl;
  explicit RegexSplitter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet::runtime::detail
