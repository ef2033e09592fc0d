// Tokenizer behaviour beyond the goldens: SentencePiece examples, BOS/EOS, special tokens,
// detokenization round trips, bad ids and bad UTF-8, the missing-pre fallback.
#include "runtime/tokenizer_vocab.h"
#include "tokenizer_test_util.h"

#include <algorithm>
#include <set>

namespace bitnet::runtime {
namespace {

const EncodeOptions kNoBos{.add_bos = false, .parse_special = false};

class SharedVocab : public ::testing::Test {
 protected:
  std::unique_ptr<Tokenizer> load(const std::string& name) {
    auto shared = bitnet::testing::shared_dir();
    return shared ? testing::load_gguf_tokenizer(testing::vocab_path(*shared, name)) : nullptr;
  }
};

TEST_F(SharedVocab, SpmExamples) {
  BITNET_REQUIRE_SHARED(shared);
  auto t = load("llama-spm");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->encode("Hello, how are you?"), (std::vector<TokenId>{1, 15043, 29892, 920, 526, 366, 29973}));
  // crossval seq16 (shared/crossval/README.md): BOS + the SPM tokens of this text.
  EXPECT_EQ(t->encode("The quick brown fox jumps over the lazy dog. Once upon a"),
            (std::vector<TokenId>{1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203, 29889, 9038,
                                  2501, 263}));
  EXPECT_EQ(t->vocab_size(), 32000u);
  EXPECT_EQ(t->bos(), 1);
  EXPECT_EQ(t->eos(), 2);
  EXPECT_TRUE(t->adds_bos());
  EXPECT_EQ(t->token_text(15043), "\xE2\x96\x81Hello");
  EXPECT_EQ(t->token_to_piece(15043), " Hello");
  EXPECT_EQ(t->token_to_piece(13), "\n");  // <0x0A>: byte token
  EXPECT_EQ(t->token_to_piece(1), "");     // control: hidden unless rendered
  EXPECT_EQ(t->token_to_piece(1, true), "<s>");
  EXPECT_EQ(t->token_to_piece(0, true), "<unk>");
  EXPECT_EQ(t->token_to_piece(-1), "");
  EXPECT_EQ(t->token_to_piece(32000), "");
  // Byte fallback for characters the vocabulary lacks.
  EXPECT_EQ(t->encode("\xF0\x9F\xA6\x99", kNoBos), (std::vector<TokenId>{29871, 243, 162, 169, 156}));
}

TEST_F(SharedVocab, Stories260K) {
  BITNET_REQUIRE_SHARED(shared);
  auto t = testing::load_gguf_tokenizer(shared / "models/stories260K.gguf");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->vocab_size(), 512u);
  EXPECT_EQ(t->token_text(3), "<0x00>");
  const std::string text = "Once upon a time, there was a little girl.";
  const auto ids = t->encode(text);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1);
  for (TokenId id : ids) EXPECT_LT(id, 512);
  // Regression value; every piece is a vocabulary entry and " Once", " upon" are single tokens.
  EXPECT_EQ(ids, (std::vector<TokenId>{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 426}));
  EXPECT_EQ(t->token_text(403), "\xE2\x96\x81Once");
  EXPECT_EQ(t->decode(t->encode(text, kNoBos)), text);
  // "🦙" is not among the 512 tokens: its four bytes come out as byte tokens (id = byte + 3).
  EXPECT_EQ(t->encode("\xF0\x9F\xA6\x99", kNoBos), (std::vector<TokenId>{410, 0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3}));
  EXPECT_EQ(t->token_text(410), "\xE2\x96\x81");
  // A whole story excerpt round-trips.
  const std::string story = testing::read_text(shared / "corpus/tinystories_train_excerpt.txt").substr(0, 4000);
  EXPECT_EQ(t->decode(t->encode(story, kNoBos)), story);
}

TEST_F(SharedVocab, BosAndEmptyInput) {
  BITNET_REQUIRE_SHARED(shared);
  auto spm = load("llama-spm");
  auto gpt2 = load("gpt-2");
  auto coder = load("deepseek-coder");
  ASSERT_TRUE(spm && gpt2 && coder);
  EXPECT_EQ(spm->encode(""), (std::vector<TokenId>{1}));
  EXPECT_TRUE(spm->encode("", kNoBos).empty());
  EXPECT_EQ(spm->encode("Hello", kNoBos), (std::vector<TokenId>{15043}));
  EXPECT_FALSE(gpt2->adds_bos());  // gpt2 vocabularies add nothing unless the metadata says so
  EXPECT_EQ(gpt2->encode("Hello"), (std::vector<TokenId>{15496}));
  EXPECT_TRUE(gpt2->encode("").empty());
  EXPECT_TRUE(coder->adds_bos());  // tokenizer.ggml.add_bos_token = true
  EXPECT_EQ(coder->encode("x").front(), 32013);
  EXPECT_EQ(coder->encode(""), (std::vector<TokenId>{32013}));
  EXPECT_EQ(coder->decode(coder->encode("x")), "x");  // control tokens render as nothing
}

TEST_F(SharedVocab, ParseSpecial) {
  BITNET_REQUIRE_SHARED(shared);
  auto spm = load("llama-spm");
  ASSERT_NE(spm, nullptr);
  const auto plain = spm->encode("<s>Hi</s>", kNoBos);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1) + std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(spm->decode(plain), "<s>Hi</s>");
  const auto special = spm->encode("<s>Hi</s>", {.add_bos = false, .parse_special = true});
  ASSERT_EQ(special.size(), 3u);
  EXPECT_EQ(special.front(), 1);
  EXPECT_EQ(special[1], spm->encode("Hi", kNoBos).at(0));  // "\u2581Hi": space prefix after a special token
  EXPECT_EQ(special.back(), 2);
  EXPECT_EQ(spm->decode(special), " Hi");  // after a special token the SentencePiece space stays
  EXPECT_EQ(spm->decode(special, true), "<s> Hi</s>");

  auto gpt2 = load("gpt-2");
  ASSERT_NE(gpt2, nullptr);
  EXPECT_EQ(gpt2->encode("a<|endoftext|>", {.add_bos = false, .parse_special = true}),
            (std::vector<TokenId>{64, 50256}));
  const auto text_only = gpt2->encode("a<|endoftext|>", kNoBos);
  EXPECT_EQ(std::count(text_only.begin(), text_only.end(), 50256), 0);
  EXPECT_TRUE(gpt2->is_end_of_generation(50256));
}

// User-defined tokens are cut out of the text even without parse_special (llama.cpp and
// Hugging Face both do), and phi-3's strip the whitespace after them (set by model name).
TEST_F(SharedVocab, UserDefinedTokens) {
  BITNET_REQUIRE_SHARED(shared);
  auto phi3 = load("phi-3");
  ASSERT_NE(phi3, nullptr);
  EXPECT_EQ(phi3->encode("a</s>  b", kNoBos), (std::vector<TokenId>{263, 2, 289}));
  EXPECT_EQ(phi3->encode("a</s>  b", kNoBos), phi3->encode("a</s>b", kNoBos));
  EXPECT_TRUE(phi3->is_end_of_generation(32007));  // <|end|>
  // Without general.name the phi-3 attributes are not applied.
  auto file = gguf::GgufFile::open(testing::vocab_path(shared, "phi-3").string());
  ASSERT_TRUE(file.ok());
  auto data = gguf::read_tokenizer_data(*file);
  ASSERT_TRUE(data.ok());
  auto unnamed = Tokenizer::from_gguf(*data);
  ASSERT_TRUE(unnamed.ok());
  EXPECT_NE((*unnamed)->encode("a</s>  b", kNoBos), phi3->encode("a</s>  b", kNoBos));

  auto mpt = load("mpt");
  ASSERT_NE(mpt, nullptr);
  EXPECT_EQ(mpt->encode("a    b", kNoBos), (std::vector<TokenId>{66, 50274, 67}));
}

TEST_F(SharedVocab, Llama3Tokenizer) {
  BITNET_REQUIRE_SHARED(shared);
  auto t = Tokenizer::from_hf_json((shared / "models/vocab/llama3/tokenizer.json").string());
  ASSERT_TRUE(t.ok()) << t.error().message;
  const Tokenizer& tok = **t;
  EXPECT_EQ(tok.vocab_size(), 128256u);
  EXPECT_EQ(tok.bos(), 128000);
  EXPECT_EQ(tok.eos(), 128001);
  EXPECT_TRUE(tok.adds_bos());
  EXPECT_TRUE(tok.is_end_of_generation(128001));
  EXPECT_TRUE(tok.is_end_of_generation(128009));  // <|eot_id|>
  EXPECT_FALSE(tok.is_end_of_generation(128000));
  EXPECT_FALSE(tok.is_end_of_generation(13347));
  EXPECT_EQ(tok.encode("<|begin_of_text|>Hi<|eot_id|>", {.add_bos = true, .parse_special = true}),
            (std::vector<TokenId>{128000, 128000, 13347, 128009}));
  const auto plain = tok.encode("<|begin_of_text|>Hi<|eot_id|>");
  EXPECT_EQ(plain.front(), 128000);
  for (size_t i = 1; i < plain.size(); ++i) EXPECT_LT(plain[i], 128000);
  EXPECT_EQ(tok.decode(plain), "<|begin_of_text|>Hi<|eot_id|>");
  // Without parse_special the text is ordinary text.
  EXPECT_EQ(tok.encode("<|eot_id|>", kNoBos), (std::vector<TokenId>{27, 91, 68, 354, 851, 91, 29}));
  EXPECT_EQ(tok.token_to_piece(13347), "Hi");
  EXPECT_EQ(tok.token_to_piece(128009), "");
  EXPECT_EQ(tok.token_to_piece(128009, true), "<|eot_id|>");
  EXPECT_EQ(tok.decode(std::vector<TokenId>{128000, 13347, 128009}), "Hi");
  EXPECT_EQ(tok.decode(std::vector<TokenId>{128000, 13347, 128009}, true), "<|begin_of_text|>Hi<|eot_id|>");
}

// The detokenizer's clean-up (Hugging Face clean_up_tokenization_spaces), pass by pass.
TEST(TokenizerDecode, CleanUpSpaces) {
  auto clean = [](std::string s) {
    detail::clean_up_spaces(s);
    return s;
  };
  EXPECT_EQ(clean("Hello , world !"), "Hello, world!");
  EXPECT_EQ(clean("a . b ? c"), "a. b? c");
  EXPECT_EQ(clean("rock ' n"), "rock'n");
  EXPECT_EQ(clean("he 's we 're I 'm they 've"), "he's we're I'm they've");
  EXPECT_EQ(clean("it 't we 'd you 'll"), "it 't we 'd you 'll");  // kept, as llama.cpp keeps them
  EXPECT_EQ(clean(" 'RE"), " 'RE");
  EXPECT_EQ(clean(""), "");
  EXPECT_EQ(clean(" "), " ");
}

// decode(encode(s)) gives s back for every golden string, in every vocabulary; vocabularies
// that clean up spaces give the cleaned-up string.
TEST_F(SharedVocab, RoundTripAllGoldenStrings) {
  BITNET_REQUIRE_SHARED(shared);
  const auto inp = testing::vocab_path(shared, "gpt-2").string();
  const auto cases = testing::read_golden(inp + ".inp", inp + ".out");
  std::vector<std::pair<std::string, std::unique_ptr<Tokenizer>>> tokenizers;
  for (const char* name :
       {"llama-spm", "phi-3", "gpt-2", "deepseek-coder", "deepseek-llm", "falcon", "mpt", "refact", "starcoder"}) {
    tokenizers.emplace_back(name, load(name));
  }
  auto llama3 = Tokenizer::from_hf_json((shared / "models/vocab/llama3/tokenizer.json").string());
  ASSERT_TRUE(llama3.ok());
  tokenizers.emplace_back("llama3", std::move(llama3).value());
  const std::set<std::string> keeps_spaces = {"llama-spm", "phi-3", "deepseek-coder", "deepseek-llm"};
  for (const auto& [name, t] : tokenizers) {
    ASSERT_NE(t, nullptr) << name;
    size_t ok = 0;
    for (const auto& c : cases) {
      std::string expected = c.text;
      if (!keeps_spaces.count(name)) detail::clean_up_spaces(expected);
      const std::string got = t->decode(t->encode(c.text, kNoBos));
      ok += got == expected;
      EXPECT_EQ(got, expected) << name << ": '" << c.text << "'";
    }
    std::printf("[ roundtrip] %-16s %zu/%zu\n", name.c_str(), ok, cases.size());
  }
}

TEST_F(SharedVocab, InvalidIdsAndInvalidUtf8) {
  BITNET_REQUIRE_SHARED(shared);
  auto spm = load("llama-spm");
  auto gpt2 = load("gpt-2");
  ASSERT_TRUE(spm && gpt2);
  const std::vector<TokenId> bad = {15043, -5, 99999999, 29892};
  const Status s = spm->check_ids(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("-5"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("position 1"), std::string::npos) << s.error().message;
  EXPECT_TRUE(spm->check_ids(std::vector<TokenId>{0, 31999}).ok());
  EXPECT_EQ(spm->decode(bad), "Hello,");  // ids outside the vocabulary render as nothing
  EXPECT_EQ(gpt2->decode(std::vector<TokenId>{-1, 50257, 15496}), "Hello");
  EXPECT_EQ(spm->token_text(-1), "");

  const std::string garbage =
      "ok\xff\xfe\xc3(\xe2\x82\xed\xa0\x80 \xf8\x88\x80\x80\x80"
      "end\x80";
  for (const Tokenizer* t : {spm.get(), gpt2.get()}) {
    const auto ids = t->encode(garbage, kNoBos);
    EXPECT_TRUE(t->check_ids(ids).ok());
    EXPECT_EQ(t->decode(ids), garbage);  // byte fallback / byte-level BPE lose nothing
  }
  // SentencePiece cuts characters by their lead byte after spaces became U+2581, so a bad
  // lead byte swallows a following space's bytes, which come back as U+2581 (as in llama.cpp).
  EXPECT_EQ(spm->decode(spm->encode("\xf0 a", kNoBos)),
            "\xf0\xe2\x96\x81"
            "a");
  EXPECT_EQ(gpt2->decode(gpt2->encode("\xf0 a", kNoBos)), "\xf0 a");
}

// A gpt2 vocabulary without tokenizer.ggml.pre (BitNet-b1.58-2B-4T) uses llama.cpp's default
// regex sequence (spec section 9), not Llama 3's.
TEST_F(SharedVocab, MissingPreFallsBackToDefault) {
  BITNET_REQUIRE_SHARED(shared);
  gguf::TokenizerData data = testing::llama3_gguf_data(shared / "models/vocab/llama3/tokenizer.json");
  auto llama3 = Tokenizer::from_gguf(data);
  data.pre.reset();
  data.add_bos = true;  // as the 2B-4T metadata says
  auto fallback = Tokenizer::from_gguf(data);
  ASSERT_TRUE(llama3.ok() && fallback.ok());
  EXPECT_TRUE((*fallback)->adds_bos());
  // The default sequence splits these differently from Llama 3, and the ids are the BPE of each piece.
  struct Case {
    std::string text;
    std::vector<std::string> pieces;  // the default sequence's split
    bool differs;                     // whether Llama 3's split gives other ids
  };
  const std::vector<Case> cases = {
      {"don't", {"don", "'", "t"}, true},
      {"I'm", {"I", "'", "m"}, true},
      {"I'LL", {"I", "'", "LL"}, false},  // Llama 3's "'LL" is not a token: BPE splits it the same
      {" $100", {" ", "$", "100"}, true},
      {"x+y=z", {"x", "+", "y", "=", "z"}, true},
      {"\n\nHello", {"\n", "\n", "Hello"}, true},
      {"abc 1234567", {"abc", " ", "123", "456", "7"}, false},
      // Non-ASCII digits: `\p{N}+` keeps the run, `[0-9]{3}` does not cut it (Llama 3: groups of 3).
      {"\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5", {"\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5"}, false},
  };
  for (const auto& [text, pieces, differs] : cases) {
    std::vector<TokenId> expected;
    for (const std::string& p : pieces) {
      const auto ids = (*fallback)->encode(p, kNoBos);
      expected.insert(expected.end(), ids.begin(), ids.end());
    }
    EXPECT_EQ((*fallback)->encode(text, kNoBos), expected) << text;
    if (differs) {
      EXPECT_NE((*fallback)->encode(text, kNoBos), (*llama3)->encode(text, kNoBos)) << text;
    }
  }
  // Strings both split alike encode alike.
  EXPECT_EQ((*fallback)->encode("Hello world", kNoBos), (*llama3)->encode("Hello world", kNoBos));
  EXPECT_EQ((*fallback)->encode(" 12345", kNoBos), (*llama3)->encode(" 12345", kNoBos));
}

}  // namespace
}  // namespace bitnet::runtime
