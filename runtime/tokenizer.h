// Tokenizers built from GGUF tokenizer metadata (SentencePiece-style "llama" and
// byte-level BPE "gpt2" with llama.cpp's pre-tokenizers) or from a Hugging Face
// tokenizer.json. Behaviour matches llama.cpp's llama-vocab (the version pinned by
// bitnet.cpp) so token ids agree with the reference engine.
#pragma once

#include "frontend_gguf/tokenizer_data.h"
#include "ir/support/expected.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::runtime {

using TokenId = int32_t;

// Vocabulary facts beyond encoding and decoding, as llama.cpp's llama_vocab_* report them.
struct VocabularyFacts {
  bool byte_level_bpe = false;                         // "gpt2" (BPE); otherwise SentencePiece "llama"
  TokenId eot = -1, pad = -1, sep = -1, newline = -1;  // -1 when none
  bool adds_eos = false;
};

struct EncodeOptions {
  bool add_bos = true;         // prepend BOS when the vocabulary asks for it (add_bos_token, default per model type)
                               // (llama.cpp's add_special: also appends EOS where add_eos_token says so)
  bool parse_special = false;  // recognise control token texts such as "<|eot_id|>" in the input; user-defined
                               // tokens are always recognised, as in llama.cpp and Hugging Face
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // From GGUF metadata (tokenizer.ggml.*). Fails with a clear message for unsupported
  // models or inconsistent data.
  static Expected<std::unique_ptr<Tokenizer>> from_gguf(const gguf::TokenizerData& data);
  // As above, with general.name: llama.cpp sets some token attributes by model name (e.g.
  // phi-3's special tokens strip the whitespace after them).
  static Expected<std::unique_ptr<Tokenizer>> from_gguf(const gguf::TokenizerData& data, std::string_view model_name);
  // Reads the tokenizer data and general.name from an opened GGUF (vocab-only files are fine).
  static Expected<std::unique_ptr<Tokenizer>> from_gguf_file(const gguf::GgufFile& file);
  // From a Hugging Face tokenizer.json (BPE models with a ByteLevel pre-tokenizer). A
  // tokenizer_config.json next to it, when present, supplies bos/eos/unk tokens,
  // add_bos_token/add_eos_token and clean_up_tokenization_spaces; a TemplateProcessing
  // post-processor that starts with a special token also makes that token BOS.
  static Expected<std::unique_ptr<Tokenizer>> from_hf_json(const std::string& path);

  // Text -> ids. BOS is added when options.add_bos and the model adds BOS.
  virtual std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const = 0;
  // The text of one token as llama.cpp's llama_token_to_piece renders it (control tokens
  // render as empty unless `render_special`).
  virtual std::string token_to_piece(TokenId id, bool render_special = false) const = 0;
  // Ids -> text, concatenating pieces (with the SentencePiece leading-space rule: the first
  // token loses one leading space, so decode(encode(s, no BOS)) == s; as in llama.cpp a BOS in
  // front keeps the space). Vocabularies with clean_up_tokenization_spaces (most BPE ones)
  // then drop the spaces before . , ! ? and some contractions, as llama.cpp does.
  // Ids outside the vocabulary render as nothing; check_ids reports them.
  virtual std::string decode(std::span<const TokenId> ids, bool render_special = false) const = 0;
  // An error naming the first id outside the vocabulary, if any.
  Status check_ids(std::span<const TokenId> ids) const;

  virtual size_t vocab_size() const = 0;
  virtual std::string_view token_text(TokenId id) const = 0;  // raw vocabulary string
  virtual TokenId bos() const = 0;                            // -1 when none
  virtual TokenId eos() const = 0;                            // -1 when none
  virtual bool adds_bos() const = 0;                          // model default for add_bos
  // End of generation: EOS, EOT and other end-of-turn control tokens.
  virtual bool is_end_of_generation(TokenId id) const = 0;
  virtual VocabularyFacts facts() const = 0;
  virtual float token_score(TokenId id) const = 0;          // 0 outside the vocabulary
  virtual uint32_t token_attributes(TokenId id) const = 0;  // llama_token_attr bits; 0 outside
};

}  // namespace bitnet::runtime
