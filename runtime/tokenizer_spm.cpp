// SentencePiece-style tokenizer ("llama" vocabularies): llama.cpp's llm_tokenizer_spm
// semantics — merge the best-scoring adjacent pair first, then resegment and fall back to
// byte tokens for anything the vocabulary lacks.
#include "runtime/tokenizer_internal.h"
#include "runtime/tokenizer_unicode.h"
#include "runtime/tokenizer_vocab.h"

#include <map>
#include <queue>

namespace bitnet::runtime::detail {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

struct Symbol {
  int prev = -1;
  int next = -1;
  size_t offset = 0;  // into the escaped text
  size_t n = 0;       // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  int left = 0;
  int right = 0;
  float score = 0;
  size_t size = 0;
};

// Highest score first; among equal scores the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

class SpmSession {
 public:
  SpmSession(const Vocab& vocab, std::string_view text) : vocab_(vocab), text_(text) {}

  void tokenize(std::vector<TokenId>& out) {
    // One symbol per UTF-8 character, cut as llama.cpp cuts them (by the lead byte only).
    size_t offset = 0;
    while (offset < text_.size()) {
      Symbol s;
      s.offset = offset;
      s.n = std::min(utf8_lead_length(static_cast<uint8_t>(text_[offset])), text_.size() - offset);
      offset += s.n;
      s.prev = static_cast<int>(symbols_.size()) - 1;
      s.next = offset == text_.size() ? -1 : static_cast<int>(symbols_.size()) + 1;
      symbols_.push_back(s);
    }
    for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) try_add_bigram(i - 1, i);

    while (!queue_.empty()) {
      const Bigram b = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[b.left];
      Symbol& right = symbols_[b.right];
      // Stale entry: one side was merged elsewhere since it was queued.
      if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[right.next].prev = b.left;
      try_add_bigram(left.prev, b.left);
      try_add_bigram(b.left, left.next);
    }
    for (int i = symbols_.empty() ? -1 : 0; i != -1; i = symbols_[i].next) resegment(symbols_[i], out);
  }

 private:
  std::string_view text_of(const Symbol& s) const { return text_.substr(s.offset, s.n); }

  void try_add_bigram(int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view text = text_.substr(symbols_[left].offset, symbols_[left].n + symbols_[right].n);
    const TokenId id = vocab_.find(text);
    if (id < 0) return;
    queue_.push({left, right, vocab_.score[id], text.size()});
    rev_merge_[std::string(text)] = {left, right};
  }

  void resegment(const Symbol& s, std::vector<TokenId>& out) const {
    const std::string_view text = text_of(s);
    if (const TokenId id = vocab_.find(text); id >= 0) {
      out.push_back(id);
      return;
    }
    const auto it = rev_merge_.find(std::string(text));
    if (it == rev_merge_.end()) {
      for (char c : text) {
        if (const TokenId id = byte_token(static_cast<uint8_t>(c)); id >= 0) out.push_back(id);
      }
      return;
    }
    resegment(symbols_[it->second.first], out);
    resegment(symbols_[it->second.second], out);
  }

  // "<0xNN>", else the byte itself as a token; llama.cpp throws when neither exists, we
  // use the unknown token (or drop the byte when there is none).
  TokenId byte_token(uint8_t byte) const {
    static constexpr char kHex[] = "0123456789ABCDEF";
    const char name[] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
    if (const TokenId id = vocab_.find(std::string_view(name, sizeof(name))); id >= 0) return id;
    const char raw = static_cast<char>(byte);
    if (const TokenId id = vocab_.find(std::string_view(&raw, 1)); id >= 0) return id;
    return vocab_.unk;
  }

  const Vocab& vocab_;
  std::string_view text_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue_;
  std::map<std::string, std::pair<int, int>> rev_merge_;
};

class SpmTokenizer final : public VocabTokenizer {
 public:
  using VocabTokenizer::VocabTokenizer;

 protected:
  void encode_text(std::string_view text, bool after_special, std::vector<TokenId>& out) const override {
    std::string escaped;
    escaped.reserve(text.size() + 8);
    if (vocab_.add_space_prefix && after_special) escaped += kSpace;
    for (char c : text) {
      if (c == ' ') {
        escaped += kSpace;
      } else {
        escaped += c;
      }
    }
    SpmSession(vocab_, escaped).tokenize(out);
  }

  std::string normal_piece(const std::string& token) const override {
    std::string out;
    out.reserve(token.size());
    for (size_t i = 0; i < token.size();) {
      if (token.compare(i, kSpace.size(), kSpace) == 0) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += token[i++];
      }
    }
    return out;
  }

  bool has_byte_tokens() const override { return true; }
};

}  // namespace

Expected<std::unique_ptr<Tokenizer>> make_spm_tokenizer(const gguf::TokenizerData& data, std::string_view model_name) {
  VocabDefaults defaults;
  defaults.bos = 1;
  defaults.eos = 2;
  defaults.unk = 0;
  defaults.add_bos = true;
  defaults.add_space_prefix = true;
  defaults.clean_spaces = false;
  BITNET_ASSIGN_OR_RETURN(Vocab vocab, build_vocab(data, VocabKind::kSpm, defaults, model_name));
  return std::unique_ptr<Tokenizer>(std::make_unique<SpmTokenizer>(std::move(vocab)));
}

}  // namespace bitnet::runtime::detail
