// Tokenizers built from small in-memory vocabularies and tokenizer.json files: merge order,
// unknown characters, and clean errors for data the engine cannot use.
#include "test_support.h"

#include "runtime/tokenizer.h"

#include <fstream>

namespace bitnet::runtime {
namespace {

const EncodeOptions kNoBos{.add_bos = false, .parse_special = false};
const std::string kSp = "\xE2\x96\x81";  // U+2581

gguf::TokenizerData spm_data(float score_sp_a, float score_ab) {
  gguf::TokenizerData d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "</s>", kSp, "a", "b", kSp + "a", "ab"};
  d.scores = {0, 0, 0, -1, -1, -1, score_sp_a, score_ab};
  d.token_types = {2, 3, 3, 1, 1, 1, 1, 1};
  return d;
}

TEST(SyntheticSpm, BestScoringPairMergesFirst) {
  // "▁a" beats "ab": ▁ab is not a token, so the result is [▁a, b].
  auto first = Tokenizer::from_gguf(spm_data(-0.1f, -0.5f));
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ((*first)->encode("ab", kNoBos), (std::vector<TokenId>{6, 5}));
  // "ab" beats "▁a": [▁, ab].
  auto second = Tokenizer::from_gguf(spm_data(-0.5f, -0.1f));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->encode("ab", kNoBos), (std::vector<TokenId>{3, 7}));
  EXPECT_EQ((*second)->encode("ab"), (std::vector<TokenId>{1, 3, 7}));
  EXPECT_EQ((*second)->decode((*second)->encode("ab", kNoBos)), "ab");
}

TEST(SyntheticSpm, UnknownCharactersWithoutByteTokens) {
  // No <0xNN> tokens and no single-byte token: llama.cpp would throw; the unknown token is used.
  auto t = Tokenizer::from_gguf(spm_data(-0.1f, -0.5f));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->encode("z", kNoBos), (std::vector<TokenId>{3, 0}));
  EXPECT_EQ((*t)->decode(std::vector<TokenId>{3, 0}), "");             // <unk> is hidden unless rendered
  EXPECT_EQ((*t)->decode(std::vector<TokenId>{3, 0}, true), "<unk>");  // first piece loses its space
  EXPECT_TRUE((*t)->is_end_of_generation(2));
  EXPECT_FALSE((*t)->is_end_of_generation(1));
}

TEST(SyntheticSpm, MetadataOverridesDefaults) {
  auto d = spm_data(-0.1f, -0.5f);
  d.add_bos = false;
  d.add_eos = true;
  d.add_space_prefix = false;
  d.special.eos = 2;
  auto t = Tokenizer::from_gguf(d);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE((*t)->adds_bos());
  EXPECT_EQ((*t)->encode("ab"), (std::vector<TokenId>{7, 2}));  // no space prefix, EOS appended
  EXPECT_EQ((*t)->encode("ab", kNoBos), (std::vector<TokenId>{7}));
}

TEST(SyntheticErrors, BadDataIsReported) {
  auto expect_error = [](const gguf::TokenizerData& d, const std::string& fragment) {
    auto t = Tokenizer::from_gguf(d);
    ASSERT_FALSE(t.ok()) << fragment;
    EXPECT_NE(t.error().message.find(fragment), std::string::npos) << t.error().message;
  };
  auto d = spm_data(-0.1f, -0.5f);
  d.model = "bert";
  expect_error(d, "bert");
  d = spm_data(-0.1f, -0.5f);
  d.tokens.push_back("ab");
  d.scores.push_back(0);
  d.token_types.push_back(1);
  expect_error(d, "twice");
  d = spm_data(-0.1f, -0.5f);
  d.scores.pop_back();
  expect_error(d, "scores");
  d = spm_data(-0.1f, -0.5f);
  d.tokens.clear();
  d.scores.clear();
  d.token_types.clear();
  expect_error(d, "no tokens");
  gguf::TokenizerData bpe;
  bpe.model = "gpt2";
  bpe.tokens = {"a", "b", "ab"};
  expect_error(bpe, "merges");
  bpe.merges = {"a b"};
  bpe.pre = "no-such-pre";
  expect_error(bpe, "no-such-pre");
  bpe.pre = "gpt-2";
  auto ok = Tokenizer::from_gguf(bpe);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ((*ok)->encode("ab"), (std::vector<TokenId>{2}));
  EXPECT_EQ((*ok)->bos(), -1);  // llama.cpp's default id 11 does not exist here
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A tiny byte-level BPE tokenizer.json: Digits + ByteLevel, a BOS template, and one added
// token that is not special (user-defined: matched even without parse_special).
const char* kTinyJson = R"({
  "added_tokens": [
    {"id": 5, "content": "<bos>", "special": true},
    {"id": 6, "content": "[x]", "special": false}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": true},
    {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
  "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "1": 3, "Ġ": 4},
            "merges": [["a", "b"]]}
})";

TEST(SyntheticHf, TinyTokenizerJson) {
  testing::TempDir dir;
  write_text(dir / "tokenizer.json", kTinyJson);
  auto t = Tokenizer::from_hf_json((dir / "tokenizer.json").string());
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ((*t)->vocab_size(), 7u);
  EXPECT_EQ((*t)->bos(), 5);
  EXPECT_TRUE((*t)->adds_bos());
  EXPECT_EQ((*t)->encode("ab 11"), (std::vector<TokenId>{5, 2, 4, 3, 3}));
  EXPECT_EQ((*t)->encode("a[x]b", kNoBos), (std::vector<TokenId>{0, 6, 1}));
  // Control tokens are plain text without parse_special; characters the vocabulary lacks
  // (no byte tokens for '<', 'o', 's', '>') are dropped, as llama.cpp drops them.
  EXPECT_EQ((*t)->encode("<bos>", kNoBos), (std::vector<TokenId>{1}));
  EXPECT_EQ((*t)->encode("<bos>", {.add_bos = false, .parse_special = true}), (std::vector<TokenId>{5}));
  EXPECT_EQ((*t)->decode(std::vector<TokenId>{5, 2, 4, 3}), "ab 1");

  // A sibling tokenizer_config.json turns BOS off.
  write_text(dir / "tokenizer_config.json", R"({"add_bos_token": false, "eos_token": {"content": "[x]"}})");
  auto configured = Tokenizer::from_hf_json((dir / "tokenizer.json").string());
  ASSERT_TRUE(configured.ok()) << configured.error().message;
  EXPECT_FALSE((*configured)->adds_bos());
  EXPECT_EQ((*configured)->eos(), 6);
}

TEST(SyntheticHf, BadFilesGiveCleanErrors) {
  testing::TempDir dir;
  auto expect_error = [&](const std::string& content, const std::string& fragment) {
    write_text(dir / "tokenizer.json", content);
    auto t = Tokenizer::from_hf_json((dir / "tokenizer.json").string());
    ASSERT_FALSE(t.ok()) << content;
    EXPECT_NE(t.error().message.find(fragment), std::string::npos) << t.error().message;
  };
  expect_error("{not json", "not valid JSON");
  expect_error("[]", "model");
  expect_error(R"({"model": {"type": "WordPiece", "vocab": {}}})", "WordPiece");
  expect_error(R"({"model": {"type": "BPE", "vocab": 5, "merges": []}})", "vocab");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": "x"}]})",
               "structure");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": null})",
               "pre_tokenizer");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                   "pre_tokenizer": {"type": "Whitespace"}})",
               "Whitespace");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                   "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})",
               "byte-level");
  auto missing = Tokenizer::from_hf_json((dir / "absent.json").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace bitnet::runtime
