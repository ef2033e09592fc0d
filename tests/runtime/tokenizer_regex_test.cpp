// The PCRE2 pre-tokenizer: llama.cpp's regex sequences split text as llama.cpp splits it,
// each regex sees one piece at a time, and pieces always concatenate back to the input.
#include "runtime/tokenizer_regex.h"

#include <gtest/gtest.h>

#include <random>

namespace bitnet::runtime::detail {
namespace {

std::vector<std::string> split(const std::vector<std::string>& patterns, std::string_view text) {
  auto splitter = RegexSplitter::create(patterns);
  EXPECT_TRUE(splitter.ok()) << splitter.error().message;
  if (!splitter.ok()) return {};
  std::vector<std::string> out;
  for (std::string_view p : (*splitter)->split(text)) out.emplace_back(p);
  return out;
}

std::vector<std::string> split_pre(const std::optional<std::string>& pre, std::string_view text) {
  auto config = bpe_pre_tokenizer(pre);
  EXPECT_TRUE(config.ok()) << config.error().message;
  return config.ok() ? split(config->patterns, text) : std::vector<std::string>{};
}

using Pieces = std::vector<std::string>;

TEST(TokenizerRegex, Gpt2Pattern) {
  // docs TOOLCHAIN.md "Regex details" (GPT-2 pattern with its trailing \s+).
  EXPECT_EQ(split({R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"},
                  "Hello world's naïve Привет 123!!  x"),
            (Pieces{"Hello", " world", "'s", " naïve", " Привет", " 123", "!!", " ", " x"}));
  // llama.cpp's spelling has no trailing \s+; the leftover space still becomes its own piece.
  EXPECT_EQ(split_pre("gpt-2", "Hello world's naïve Привет 123!!  x"),
            (Pieces{"Hello", " world", "'s", " naïve", " Привет", " 123", "!!", " ", " x"}));
  EXPECT_EQ(split_pre("gpt-2", "a\tb  \n"), (Pieces{"a", "\t", "b", "  \n"}));
}

TEST(TokenizerRegex, Llama3Pattern) {
  const Pieces expected = {"I", "'LL", " pay", " ", "123", "45", " €!\n\n", "ok"};
  EXPECT_EQ(split_pre("llama-bpe", "I'LL pay 12345 €!\n\nok"), expected);
  // The tokenizer.json spelling with (?i:...) splits the same.
  EXPECT_EQ(
      split(
          {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
          "I'LL pay 12345 €!\n\nok"),
      expected);
  EXPECT_EQ(split_pre("llama-bpe", "\n\n  x  \n"), (Pieces{"\n\n", " ", " x", "  \n"}));
}

// The fallback for a missing tokenizer.ggml.pre (spec section 9): punctuation runs first,
// then GPT-2, then digit runs, then groups of three digits.
TEST(TokenizerRegex, MissingPreUsesDefaultSequence) {
  EXPECT_EQ(split_pre(std::nullopt, "don't"), (Pieces{"don", "'", "t"}));
  EXPECT_EQ(split_pre(std::nullopt, "I'LL"), (Pieces{"I", "'", "LL"}));
  EXPECT_EQ(split_pre(std::nullopt, " $100"), (Pieces{" ", "$", "100"}));
  EXPECT_EQ(split_pre(std::nullopt, " 1234567"), (Pieces{" ", "123", "456", "7"}));
  EXPECT_EQ(split_pre(std::nullopt, "x+y=z..."), (Pieces{"x", "+", "y", "=", "z", "..."}));
  EXPECT_EQ(split_pre(std::nullopt, "\n\nHello"), (Pieces{"\n", "\n", "Hello"}));
  // "default" spelled out is the same configuration.
  EXPECT_EQ(split_pre("default", " 1234567"), split_pre(std::nullopt, " 1234567"));
  // Llama 3 splits the same strings differently.
  EXPECT_EQ(split_pre("llama-bpe", "don't"), (Pieces{"don", "'t"}));
  EXPECT_EQ(split_pre("llama-bpe", " $100"), (Pieces{" $", "100"}));
  EXPECT_EQ(split_pre("llama-bpe", "\n\nHello"), (Pieces{"\n\n", "Hello"}));
}

TEST(TokenizerRegex, OtherPreTypes) {
  EXPECT_EQ(split_pre("starcoder", "ab 123"), (Pieces{"ab", " ", "1", "2", "3"}));
  EXPECT_EQ(split_pre("falcon", "a`b 12345"), (Pieces{"a", "`", "b", " ", "123", "45"}));
  EXPECT_EQ(split_pre("deepseek-coder", "x=1\n\ny"), (Pieces{"x", "=", "1", "\n", "\n", "y"}));
  // DeepSeek's punctuation class [!-/:-~...] also holds the ASCII letters, and it runs after
  // the letter regex: "Ωmega" is cut again into "Ω" + "mega" (llama.cpp does the same).
  EXPECT_EQ(split_pre("deepseek-llm", "Ωmega 你好 12"), (Pieces{"Ω", "mega", " ", "你好", " ", "12"}));
  auto unknown = bpe_pre_tokenizer(std::string("no-such-pre"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("no-such-pre"), std::string::npos);
}

// Each regex runs on one piece at a time: lookahead stops at the piece's end.
TEST(TokenizerRegex, RegexesSeeOnePieceAtATime) {
  EXPECT_EQ(split({"b", "a+(?!b)"}, "aab"), (Pieces{"aa", "b"}));
  EXPECT_EQ(split({"a+(?!b)"}, "aab"), (Pieces{"a", "ab"}));  // one regex over the whole text: it sees the "b"
  // ECMAScript `$` (llama.cpp's std::regex) only matches at the very end, not before "\n".
  EXPECT_EQ(split({"x$"}, "ax\n"), (Pieces{"ax\n"}));
  EXPECT_EQ(split({"x$"}, "ax"), (Pieces{"a", "x"}));
}

// Non-ASCII whitespace is whitespace only where llama.cpp says so, and never part of a
// literal range (llama.cpp matches it as "\v").
TEST(TokenizerRegex, UnicodeWhitespaceAsLlamaCpp) {
  const std::string ideographic_space = "\xe3\x80\x80", mvs = "\xe1\xa0\x8e";
  EXPECT_EQ(split_pre("deepseek-coder", "\xe4\xbd\xa0" + ideographic_space + "\xe5\xa5\xbd"),
            (Pieces{"\xe4\xbd\xa0", ideographic_space, "\xe5\xa5\xbd"}));
  // U+180E is not White_Space (llama.cpp: a format character), though PCRE2 counts it as \s.
  EXPECT_EQ(split_pre("gpt-2", mvs + mvs + "b"), (Pieces{mvs + mvs, "b"}));
  EXPECT_EQ(split_pre("gpt-2",
                      "a\xc2\x85\xc2\x85"
                      "b"),
            (Pieces{"a", "\xc2\x85", "\xc2\x85", "b"}));
}

TEST(TokenizerRegex, InvalidUtf8IsKeptByteForByte) {
  const std::string text =
      "a\xff"
      "b\xc3(\xe2\x82 \xed\xa0\x80z";
  const Pieces pieces = split_pre("gpt-2", text);
  std::string joined;
  for (const auto& p : pieces) joined += p;
  EXPECT_EQ(joined, text);
  EXPECT_EQ(pieces.front(), "a");
  EXPECT_EQ(pieces[1], "\xff");  // matched as U+FFFD, a symbol
}

TEST(TokenizerRegex, PiecesAlwaysConcatenateBack) {
  std::mt19937 rng(7);
  const char* pres[] = {"gpt-2",     "llama-bpe",    "default",        "falcon",
                        "starcoder", "deepseek-llm", "deepseek-coder", "qwen2"};
  const std::string alphabet[] = {
      "a",  "Z",    " ",    "\n",   "\r", "\t",           "1", "'", "s", "LL", "!", "€", "é",
      "你", "\xff", "\xc3", "\x80", "😀",  "\xe2\x80\xaf", "ـ"};
  for (const char* pre : pres) {
    auto config = bpe_pre_tokenizer(std::string(pre));
    ASSERT_TRUE(config.ok());
    auto splitter = RegexSplitter::create(config->patterns);
    ASSERT_TRUE(splitter.ok());
    for (int round = 0; round < 200; ++round) {
      std::string text;
      const int n = static_cast<int>(rng() % 24);
      for (int i = 0; i < n; ++i) text += alphabet[rng() % std::size(alphabet)];
      std::string joined;
      for (std::string_view p : (*splitter)->split(text)) {
        EXPECT_FALSE(p.empty());
        joined += p;
      }
      EXPECT_EQ(joined, text) << pre;
    }
  }
  EXPECT_TRUE((*RegexSplitter::create({"a"}))->split("").empty());
}

TEST(TokenizerRegex, BadPatternIsAnError) {
  auto bad = RegexSplitter::create({"(unclosed"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("(unclosed"), std::string::npos);
}

}  // namespace
}  // namespace bitnet::runtime::detail
