// llama.cpp's regex sequences per tokenizer.ggml.pre value (bitnet.cpp fork's llama-vocab),
// written out from the documented patterns; see tokenizer_regex.h.
#include "runtime/tokenizer_regex.h"

namespace bitnet::runtime::detail {
namespace {

// GPT-2's pattern as llama.cpp spells it (no trailing `|\s+`: a lone whitespace character
// that the alternatives leave over becomes a piece of its own anyway).
constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

// Llama 3's pattern with the case-insensitive group spelled out per letter, as llama.cpp
// does (only ASCII letters fold, which (?i) under UCP would widen).
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr const char* kPoro = R"( ?[^(\s|.,!?…。，、।۔،)]+)";

// DeepSeek's letter class: the cased-letter (Lu/Ll/Lt) ranges, written as escapes because
// several of its characters (U+1F7D, U+1FBE, U+2126, U+212A, ...) are canonical singletons
// that text tools silently normalise into other code points.
constexpr const char* kDeepseekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
    R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
    R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
    R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
    R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr const char* kDeepseekPunct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
constexpr const char* kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";

PreTokenizerConfig config(std::string name, std::vector<std::string> patterns, bool clean_spaces = true) {
  PreTokenizerConfig c;
  c.name = std::move(name);
  c.patterns = std::move(patterns);
  c.clean_spaces = clean_spaces;
  return c;
}

}  // namespace

Expected<PreTokenizerConfig> bpe_pre_tokenizer(const std::optional<std::string>& pre) {
  // Missing pre: llama.cpp warns and uses its `default:` branch (spec section 9).
  const std::string name = pre.value_or("default");
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names) {
      if (name == n) return true;
    }
    return false;
  };
  if (is({"default"})) {
    return config(name, {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"});
  }
  if (is({"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe"})) {
    PreTokenizerConfig c = config(name, {kLlama3});
    if (is({"llama3", "llama-v3", "llama-bpe", "falcon3"})) {
      c.ignore_merges = true;
      c.add_bos = true;
    }
    return c;
  }
  if (is({"deepseek-llm"})) {
    return config(name, {"[\r\n]", kDeepseekLetters, kDeepseekPunct, R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"}, false);
  }
  if (is({"deepseek-coder"})) {
    return config(name, {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}, false);
  }
  if (is({"falcon"})) return config(name, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"});
  if (is({"starcoder", "refact", "codeshell", "exaone", "minerva-7b"})) return config(name, {R"(\p{N})", kGpt2});
  if (is({"command-r", "smollm"})) return config(name, {R"(\p{N})", kGpt2}, false);
  if (is({"gpt-2", "phi-2", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code",
          "roberta-bpe", "mpt", "olmo", "jais"})) {
    return config(name, {kGpt2});
  }
  if (is({"qwen2"})) return config(name, {kQwen2}, false);
  if (is({"stablelm2"})) return config(name, {kQwen2});
  if (is({"poro-chat"})) return config(name, {kPoro}, false);
  if (is({"bloom", "gpt3-finnish"})) return config(name, {kPoro});
  if (is({"viking"})) return config(name, {kPoro, R"(\p{N})"}, false);
  return make_error("unknown or unsupported pre-tokenizer type '{}' (tokenizer.ggml.pre)", name);
}

}  // namespace bitnet::runtime::detail
