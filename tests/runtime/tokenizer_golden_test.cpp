// Every llama.cpp .inp/.out golden pair in ../shared/models/vocab encodes to exactly the
// reference ids (no BOS), through the GGUF path and, for Llama 3, the tokenizer.json path.
#include "tokenizer_test_util.h"

#include <cctype>
#include <set>

namespace bitnet::runtime {
namespace {

using testing::GoldenCase;

// Encodes every golden string without BOS; returns the number that match.
size_t check_golden(const Tokenizer& tokenizer, const std::vector<GoldenCase>& cases, const std::string& what) {
  size_t passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto ids = tokenizer.encode(cases[i].text, {.add_bos = false, .parse_special = false});
    if (ids == cases[i].ids) {
      ++passed;
    } else {
      ADD_FAILURE() << what << " string #" << i << " '" << cases[i].text
                    << "'\n  expected:" << testing::join_ids(cases[i].ids) << "\n  actual:  " << testing::join_ids(ids);
    }
  }
  std::printf("[ golden   ] %-40s %zu/%zu\n", what.c_str(), passed, cases.size());
  return passed;
}

// The GGUF vocabularies with goldens. bert-bge is absent on purpose: it is a WordPiece
// ("bert") vocabulary, which this engine does not implement (see BertIsRejected below).
const char* const kGgufVocabs[] = {"llama-spm", "phi-3", "gpt-2",  "deepseek-coder", "deepseek-llm",
                                   "falcon",    "mpt",   "refact", "starcoder"};

class GgufGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufGolden, MatchesReferenceIds) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string name = GetParam();
  const auto path = testing::vocab_path(shared, name);
  auto tokenizer = testing::load_gguf_tokenizer(path);
  ASSERT_NE(tokenizer, nullptr);
  const auto cases = testing::read_golden(path.string() + ".inp", path.string() + ".out");
  ASSERT_GE(cases.size(), 40u);
  EXPECT_EQ(check_golden(*tokenizer, cases, "ggml-vocab-" + name), cases.size());
}

INSTANTIATE_TEST_SUITE_P(Vocab, GgufGolden, ::testing::ValuesIn(kGgufVocabs), [](const auto& info) {
  std::string n = info.param;
  for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return n;
});

// ggml-vocab-llama-bpe.gguf is not in ../shared (too large to fetch); its goldens are
// checked with the same tokenizer from tokenizer.json (PROVENANCE section 4).
TEST(LlamaBpeGolden, HfTokenizerJson) {
  BITNET_REQUIRE_SHARED(shared);
  auto tokenizer = Tokenizer::from_hf_json((shared / "models/vocab/llama3/tokenizer.json").string());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
  const auto base = testing::vocab_path(shared, "llama-bpe").string();
  const auto cases = testing::read_golden(base + ".inp", base + ".out");
  ASSERT_GE(cases.size(), 40u);
  EXPECT_EQ(check_golden(**tokenizer, cases, "llama-bpe via tokenizer.json"), cases.size());
}

// The same vocabulary as GGUF metadata would carry it (pre = llama-bpe): llama.cpp's
// adapted Llama 3 regex instead of the tokenizer.json one.
TEST(LlamaBpeGolden, GgufStyleData) {
  BITNET_REQUIRE_SHARED(shared);
  const auto data = testing::llama3_gguf_data(shared / "models/vocab/llama3/tokenizer.json");
  auto tokenizer = Tokenizer::from_gguf(data);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message;
  const auto base = testing::vocab_path(shared, "llama-bpe").string();
  const auto cases = testing::read_golden(base + ".inp", base + ".out");
  EXPECT_EQ(check_golden(**tokenizer, cases, "llama-bpe via GGUF-style data"), cases.size());
}

TEST(VocabGolden, EveryGoldenPairIsCovered) {
  BITNET_REQUIRE_SHARED(shared);
  std::set<std::string> covered(std::begin(kGgufVocabs), std::end(kGgufVocabs));
  covered.insert("llama-bpe");  // the two LlamaBpeGolden tests
  covered.insert("bert-bge");   // WordPiece: not implemented (BertIsRejected)
  size_t pairs = 0;
  for (const auto& e : std::filesystem::directory_iterator(shared / "models/vocab")) {
    const std::string file = e.path().filename().string();
    const std::string prefix = "ggml-vocab-", suffix = ".gguf.inp";
    if (file.rfind(prefix, 0) != 0 || file.size() <= prefix.size() + suffix.size() ||
        file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    ++pairs;
    const std::string name = file.substr(prefix.size(), file.size() - prefix.size() - suffix.size());
    EXPECT_TRUE(covered.count(name)) << "golden pair " << file << " is not checked by any test";
  }
  EXPECT_EQ(pairs, covered.size());
}

// WordPiece ("bert") is not implemented; loading it fails with a clear message.
TEST(VocabGolden, BertIsRejected) {
  BITNET_REQUIRE_SHARED(shared);
  auto file = gguf::GgufFile::open(testing::vocab_path(shared, "bert-bge").string());
  ASSERT_TRUE(file.ok());
  auto tokenizer = Tokenizer::from_gguf_file(*file);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_NE(tokenizer.error().message.find("bert"), std::string::npos) << tokenizer.error().message;
}

}  // namespace
}  // namespace bitnet::runtime
