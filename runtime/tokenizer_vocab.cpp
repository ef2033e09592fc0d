// Vocabulary loading, special-token partition, pieces and detokenization shared by the
// tokenizer models, following llama.cpp's llama-vocab (see tokenizer_vocab.h).
#include "runtime/tokenizer_vocab.h"

#include <algorithm>
#include <cctype>

namespace bitnet::runtime::detail {
namespace {

uint32_t attr_of_type(int32_t type) {
  switch (static_cast<gguf::TokenType>(type)) {
    case gguf::TokenType::kNormal:
      return kAttrNormal;
    case gguf::TokenType::kUnknown:
      return kAttrUnknown;
    case gguf::TokenType::kControl:
      return kAttrControl;
    case gguf::TokenType::kUserDefined:
      return kAttrUserDefined;
    case gguf::TokenType::kUnused:
      return kAttrUnused;
    case gguf::TokenType::kByte:
      return kAttrByte;
    default:
      return kAttrUndefined;
  }
}

bool is_c_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Token texts llama.cpp treats as end-of-turn markers (its special_eog_ids list), which it
// also forces to be control tokens.
constexpr std::string_view kEogTexts[] = {"<|eot_id|>",    "<|im_end|>", "<|end|>", "<end_of_turn>",
                                          "<|endoftext|>", "<|eom_id|>", "<EOT>"};
constexpr std::string_view kEotTexts[] = {"<|eot_id|>",
                                          "<|im_end|>",
                                          "<|end|>",
                                          "<end_of_turn>",
                                          "<|endoftext|>",
                                          "<EOT>",
                                          "<\xEF\xBD\x9C"
                                          "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"};

}  // namespace

Expected<Vocab> build_vocab(const gguf::TokenizerData& data, VocabKind kind, const VocabDefaults& defaults,
                            std::string_view model_name) {
  const size_t n = data.tokens.size();
  if (n == 0) return make_error("the tokenizer has no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) return make_error("the tokenizer has too many tokens ({})", n);
  if (!data.scores.empty() && data.scores.size() != n) {
    return make_error("tokenizer has {} scores for {} tokens", data.scores.size(), n);
  }
  if (!data.token_types.empty() && data.token_types.size() != n) {
    return make_error("tokenizer has {} token types for {} tokens", data.token_types.size(), n);
  }
  Vocab v;
  v.kind = kind;
  v.text.resize(n);
  v.score.assign(n, 0.0f);
  v.attr.assign(n, kAttrNormal);  // llama.cpp's default when token_type is absent
  for (size_t i = 0; i < n; ++i) {
    // Empty texts would match everywhere in the special-token partition; llama.cpp renames them.
    v.text[i] = data.tokens[i].empty() ? fmt::format("[EMPTY_{}]", i) : data.tokens[i];
    if (!data.scores.empty()) v.score[i] = data.scores[i];
    if (!data.token_types.empty()) v.attr[i] = attr_of_type(data.token_types[i]);
  }
  std::vector<std::pair<int32_t, int32_t>> repeats;
  v.ids.insert_all(v.text, &repeats);
  if (!repeats.empty()) {
    const auto [first, second] = repeats.front();
    return make_error("token text '{}' appears twice (ids {} and {})", v.text[static_cast<size_t>(second)], first,
                      second);
  }

  // Special ids: the model default unless the metadata names a valid token.
  auto pick = [&](std::optional<int64_t> given, TokenId fallback) -> TokenId {
    if (given && *given >= 0 && static_cast<size_t>(*given) < n) return static_cast<TokenId>(*given);
    return fallback >= 0 && static_cast<size_t>(fallback) < n ? fallback : -1;
  };
  v.bos = pick(data.special.bos, defaults.bos);
  v.eos = pick(data.special.eos, defaults.eos);
  v.unk = pick(data.special.unk, defaults.unk);
  v.eot = pick(data.special.eot, -1);
  v.pad = pick(data.special.pad, -1);
  v.sep = pick(data.special.sep, -1);
  // llama.cpp's linefeed token: SentencePiece's byte token for '\n' (or a literal "\n"),
  // byte-level BPE's 'Ċ' (U+010A, how the byte 0x0A is spelled there).
  v.newline = kind == VocabKind::kSpm ? v.find("<0x0A>") : v.find("\xC4\x8A");
  if (v.newline < 0 && kind == VocabKind::kSpm) v.newline = v.find("\n");
  v.add_bos = data.add_bos.value_or(defaults.add_bos);
  v.add_eos = data.add_eos.value_or(false);
  v.add_space_prefix = data.add_space_prefix.value_or(defaults.add_space_prefix);
  v.clean_spaces = defaults.clean_spaces;

  // End-of-turn tokens recognised by their text. llama.cpp takes the first hit of an
  // unordered map; the lowest id is the deterministic equivalent for real vocabularies.
  auto force_control = [&](TokenId id) {
    if ((v.attr[id] & kAttrControl) == 0) v.attr[id] = kAttrControl;
  };
  auto first_of = [&](std::span<const std::string_view> texts) {
    TokenId best = -1;
    for (std::string_view t : texts) {
      const TokenId id = v.find(t);
      if (id >= 0 && (best < 0 || id < best)) best = id;
    }
    return best;
  };
  if (v.eot < 0 && (v.eot = first_of(kEotTexts)) >= 0) force_control(v.eot);
  if ((v.eom = v.find("<|eom_id|>")) >= 0) force_control(v.eom);
  for (std::string_view t : kEogTexts) {
    if (const TokenId id = v.find(t); id >= 0) {
      v.end_of_generation.push_back(id);
      force_control(id);
    }
  }
  for (TokenId id : {v.eos, v.eot, v.eom}) {
    if (id >= 0) v.end_of_generation.push_back(id);
  }
  std::sort(v.end_of_generation.begin(), v.end_of_generation.end());
  v.end_of_generation.erase(std::unique(v.end_of_generation.begin(), v.end_of_generation.end()),
                            v.end_of_generation.end());

  for (size_t i = 0; i < n; ++i) {
    if (v.attr[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown))
      v.special_tokens.push_back(static_cast<TokenId>(i));
  }
  // Longest first so that a special token containing another wins; ties in id order.
  std::sort(v.special_tokens.begin(), v.special_tokens.end(), [&](TokenId a, TokenId b) {
    return v.text[a].size() != v.text[b].size() ? v.text[a].size() > v.text[b].size() : a < b;
  });

  // Per-model attributes llama.cpp sets by name (absent from GGUF).
  const std::string name = lowercase(model_name);
  auto set_attr = [&](std::string_view text, uint32_t bit, bool on) {
    if (const TokenId id = v.find(text); id >= 0) v.attr[id] = on ? (v.attr[id] | bit) : (v.attr[id] & ~bit);
  };
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (TokenId id : v.special_tokens) v.attr[id] |= kAttrRstrip;
    set_attr("</s>", kAttrRstrip, true);
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set_attr(t, kAttrRstrip, false);
  }
  return v;
}

std::vector<Fragment> Vocab::partition(std::string_view input, bool parse_special) const {
  std::vector<Fragment> fragments;
  if (input.empty()) return fragments;
  fragments.push_back({-1, 0, input.size()});
  std::vector<Fragment> next;
  for (const TokenId id : special_tokens) {
    if (!parse_special && (attr[id] & (kAttrControl | kAttrUnknown))) continue;
    const std::string& t = text[id];
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t base = f.offset, len = f.length;
      while (len > 0) {
        // Search this fragment only (llama.cpp scans to the end of the text, with the same result).
        const size_t match = input.substr(0, base + len).find(t, base);
        if (match == std::string_view::npos) {
          next.push_back({-1, base, len});
          break;
        }
        size_t left = match - base;
        if (attr[id] & kAttrLstrip) {
          while (left > 0 && is_c_space(input[base + left - 1])) --left;
        }
        if (left > 0) next.push_back({-1, base, left});
        next.push_back({id, 0, 0});
        size_t right = match + t.size();
        size_t right_len = base + len - right;
        if (attr[id] & kAttrRstrip) {
          while (right_len > 0 && is_c_space(input[right])) ++right, --right_len;
        }
        base = right;
        len = right_len;
      }
    }
    fragments.swap(next);
  }
  return fragments;
}

void clean_up_spaces(std::string& text) {
  // Three in-place passes exactly as llama.cpp's detokenizer runs them (each pass reads the
  // buffer the previous writes produced).
  const int32_t total1 = static_cast<int32_t>(text.size());
  int32_t total = total1 ? 1 : 0;
  for (int32_t i = 1; i < total1; ++i) {  // " ?", " !", " .", " ," lose the space
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
    text[total++] = x;
  }
  const int32_t total2 = total;
  total = total ? 1 : 0;
  for (int32_t i = 1; i < total2; ++i) {  // " ' " -> "'"
    const char x = text[i];
    if (x == '\'' && i + 1 < total2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
      --total;
      text[++i] = '\0';
    }
    text[total++] = x;
  }
  const int32_t total3 = total;
  total = total ? 1 : 0;
  for (int32_t i = 1; i < total3; ++i) {  // " 's", " 'm", " 're", " 've" lose the space
    const char x = text[i];
    if (text[i - 1] == ' ' && x == '\'' && i + 1 < total3) {
      const char x1 = text[i + 1];
      if (x1 == 's' || x1 == 'm') {
        --total;
      } else if (x1 != 't' && x1 != 'd' && i + 2 < total3) {
        const char x2 = text[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) --total;
      }
    }
    text[total++] = x;
  }
  text.resize(static_cast<size_t>(total));
}

std::vector<TokenId> VocabTokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<TokenId> out;
  // EncodeOptions::add_bos is llama.cpp's add_special: BOS and, where the model asks, EOS.
  if (options.add_bos && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
  bool after_special = true;
  for (const Fragment& f : vocab_.partition(text, options.parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
    } else {
      encode_text(text.substr(f.offset, f.length), after_special, out);
      after_special = false;
    }
  }
  if (options.add_bos && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
  return out;
}

std::string VocabTokenizer::token_to_piece(TokenId id, bool render_special) const {
  if (!vocab_.valid(id)) return {};
  const uint32_t a = vocab_.attr[id];
  const std::string& t = vocab_.text[id];
  if (a & (kAttrUnknown | kAttrControl)) return render_special ? t : std::string();
  if (a & kAttrUserDefined) return t;
  if (a & kAttrNormal) return normal_piece(t);
  if ((a & kAttrByte) && has_byte_tokens()) {
    // "<0xNN>": llama.cpp parses the two characters after "<0x" with strtol.
    unsigned value = 0;
    for (size_t i = 3; i < std::min<size_t>(t.size(), 5); ++i) {
      const char c = t[i];
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      if (d < 0) break;
      value = value * 16 + static_cast<unsigned>(d);
    }
    return std::string(1, static_cast<char>(value));
  }
  return {};  // unused and undefined tokens render as nothing
}

std::string VocabTokenizer::decode(std::span<const TokenId> ids, bool render_special) const {
  std::string out;
  // The space SentencePiece adds in front of the text comes off the first piece again.
  bool remove_space = vocab_.add_space_prefix;
  for (const TokenId id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (remove_space && !piece.empty() && piece.front() == ' ') piece.erase(0, 1);
    remove_space = false;
    out += piece;
  }
  if (vocab_.clean_spaces) clean_up_spaces(out);
  return out;
}

std::string_view VocabTokenizer::token_text(TokenId id) const {
  return vocab_.valid(id) ? std::string_view(vocab_.text[id]) : std::string_view();
}

VocabularyFacts VocabTokenizer::facts() const {
  return {.byte_level_bpe = vocab_.kind == VocabKind::kBpe,
          .eot = vocab_.eot,
          .pad = vocab_.pad,
          .sep = vocab_.sep,
          .newline = vocab_.newline,
          .adds_eos = vocab_.add_eos && vocab_.eos >= 0};
}

bool VocabTokenizer::is_end_of_generation(TokenId id) const {
  return std::binary_search(vocab_.end_of_generation.begin(), vocab_.end_of_generation.end(), id);
}

}  // namespace bitnet::runtime::detail
