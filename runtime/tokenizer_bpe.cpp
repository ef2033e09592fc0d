// Byte-level BPE tokenizer ("gpt2" vocabularies): llama.cpp's llm_tokenizer_bpe semantics —
// regex pre-tokenization, GPT-2 byte-to-unicode, then merges by rank, lowest first.
#include "runtime/tokenizer_internal.h"
#include "runtime/tokenizer_unicode.h"
#include "runtime/tokenizer_vocab.h"

#include <queue>

namespace bitnet::runtime::detail {
namespace {

struct Symbol {
  int prev = -1;
  int next = -1;
  size_t offset = 0;  // into the word
  size_t n = 0;       // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  int left = 0;
  int right = 0;
  int rank = 0;
  std::string text;
};

// Lowest rank first; among equal ranks the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

// Merge ranks keyed by the pair; the key carries the left length so no pair is ambiguous.
std::string pair_key(std::string_view left, std::string_view right) {
  std::string key = std::to_string(left.size());
  key += ':';
  key += left;
  key += right;
  return key;
}

class BpeTokenizer final : public VocabTokenizer {
 public:
  BpeTokenizer(Vocab vocab, std::shared_ptr<const RegexSplitter> splitter, std::vector<std::string> pairs,
               StringIndex ranks, bool ignore_merges)
      : VocabTokenizer(std::move(vocab)),
        splitter_(std::move(splitter)),
        pairs_(std::move(pairs)),
        ranks_(std::move(ranks)),
        ignore_merges_(ignore_merges) {}

 protected:
  void encode_text(std::string_view text, bool /*after_special*/, std::vector<TokenId>& out) const override {
    for (const std::string_view piece : splitter_->split(text)) encode_word(bytes_to_unicode(piece), out);
  }

  // The bytes a GPT-2-unicode token stands for; characters outside the mapping render as
  // llama.cpp's "[UNK_BYTE_0x..]" marker.
  std::string normal_piece(const std::string& token) const override {
    std::string out;
    out.reserve(token.size());
    for (const Utf8Unit& u : decode_utf8(token)) {
      const int byte = u.valid ? unicode_to_byte(u.cp) : -1;
      if (byte >= 0) {
        out += static_cast<char>(byte);
        continue;
      }
      out += "[UNK_BYTE_0x";
      for (size_t i = 0; i < u.length; ++i) out += fmt::format("{:02x}", static_cast<uint8_t>(token[u.offset + i]));
      out += token;
      out += ']';
    }
    return out;
  }

  bool has_byte_tokens() const override { return false; }

 private:
  int rank(std::string_view left, std::string_view right) const { return ranks_.find(pairs_, pair_key(left, right)); }

  void encode_word(const std::string& word, std::vector<TokenId>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      if (const TokenId id = vocab_.find(word); id >= 0) {
        out.push_back(id);
        return;
      }
    }
    std::vector<Symbol> symbols;
    for (size_t offset = 0; offset < word.size();) {
      Symbol s;
      s.offset = offset;
      s.n = std::min(utf8_lead_length(static_cast<uint8_t>(word[offset])), word.size() - offset);
      offset += s.n;
      s.prev = static_cast<int>(symbols.size()) - 1;
      s.next = offset == word.size() ? -1 : static_cast<int>(symbols.size()) + 1;
      symbols.push_back(s);
    }
    auto text_of = [&](int i) { return std::string_view(word).substr(symbols[i].offset, symbols[i].n); };
    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto add_bigram = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const int r = rank(text_of(left), text_of(right));
      if (r < 0) return;
      std::string text(text_of(left));
      text += text_of(right);
      queue.push({left, right, r, std::move(text)});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_bigram(i - 1, i);

    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& left = symbols[b.left];
      Symbol& right = symbols[b.right];
      if (left.n == 0 || right.n == 0) continue;
      // Stale entry: the pair's text changed since it was queued.
      if (left.n + right.n != b.text.size() || std::string_view(word).substr(left.offset, left.n + right.n) != b.text) {
        continue;
      }
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = b.left;
      add_bigram(left.prev, b.left);
      add_bigram(b.left, left.next);
    }

    for (int i = 0; i != -1; i = symbols[i].next) {
      const std::string_view text = text_of(i);
      if (const TokenId id = vocab_.find(text); id >= 0) {
        out.push_back(id);
        continue;
      }
      // Not a token: llama.cpp looks each byte of the (unicode) text up on its own.
      for (char c : text) {
        if (const TokenId id = vocab_.find(std::string_view(&c, 1)); id >= 0) out.push_back(id);
      }
    }
  }

  std::shared_ptr<const RegexSplitter> splitter_;
  std::vector<std::string> pairs_;  // pair_key of each merge, in rank order
  StringIndex ranks_;               // over pairs_: a repeated pair keeps its first rank
  bool ignore_merges_;
};

}  // namespace

Expected<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(const gguf::TokenizerData& data, const PreTokenizerConfig& pre,
                                                        std::string_view model_name) {
  if (data.merges.empty()) return make_error("the BPE tokenizer has no merges (tokenizer.ggml.merges)");
  VocabDefaults defaults;
  defaults.bos = 11;  // llama.cpp's defaults for gpt2 vocabularies
  defaults.eos = 11;
  defaults.add_bos = pre.add_bos.value_or(false);
  defaults.add_space_prefix = false;
  defaults.clean_spaces = pre.clean_spaces;
  BITNET_ASSIGN_OR_RETURN(Vocab vocab, build_vocab(data, VocabKind::kBpe, defaults, model_name));
  BITNET_ASSIGN_OR_RETURN(auto splitter, RegexSplitter::create(pre.patterns));

  // "left right", split at the first space after the first character; the first rank of a
  // repeated pair wins (llama.cpp emplaces into a map).
  std::vector<std::string> pairs(data.merges.size());
  for (size_t i = 0; i < data.merges.size(); ++i) {
    const std::string& m = data.merges[i];
    const size_t pos = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    pairs[i] = pos == std::string::npos
                   ? pair_key("", "")
                   : pair_key(std::string_view(m).substr(0, pos), std::string_view(m).substr(pos + 1));
  }
  StringIndex ranks;
  ranks.insert_all(pairs, nullptr);
  return std::unique_ptr<Tokenizer>(std::make_unique<BpeTokenizer>(
      std::move(vocab), std::move(splitter), std::move(pairs), std::move(ranks), pre.ignore_merges));
}

}  // namespace bitnet::runtime::detail
