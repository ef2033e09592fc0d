// `bitnet tokenize` end to end: ids and pieces as text and JSON, BOS and special-token
// flags, --detokenize, and exit codes for bad input (1) and bad command lines (2).
#include "test_support.h"

#include <nlohmann/json.hpp>

namespace bitnet {
namespace {

using testing::cli;
using testing::run_command;
using testing::shell_quote;

std::string vocab(const std::filesystem::path& shared, const std::string& name) {
  return shell_quote((shared / "models" / "vocab" / ("ggml-vocab-" + name + ".gguf")).string());
}

TEST(TokenizeCli, HelpAndUsageErrors) {
  auto help = run_command(cli() + " tokenize --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--detokenize"), std::string::npos);
  EXPECT_EQ(run_command(cli() + " tokenize --text hi").exit_code, 2);  // no tokenizer
  EXPECT_EQ(run_command(cli() + " tokenize -m x.gguf").exit_code, 2);  // neither --text nor --detokenize
  EXPECT_EQ(run_command(cli() + " tokenize -m a --tokenizer b --text hi").exit_code, 2);
  EXPECT_EQ(run_command(cli() + " tokenize -m a --text hi --detokenize 1").exit_code, 2);
  EXPECT_EQ(run_command(cli() + " tokenize -m a --detokenize 1,x").exit_code, 2);
}

TEST(TokenizeCli, SpmIdsAndPieces) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string model = vocab(shared, "llama-spm");
  auto js = run_command(cli() + " tokenize -m " + model + " --text 'Hello, how are you?' --json");
  ASSERT_EQ(js.exit_code, 0) << js.err;
  const auto doc = nlohmann::json::parse(js.out);
  EXPECT_EQ(doc["ids"], nlohmann::json::array({1, 15043, 29892, 920, 526, 366, 29973}));
  EXPECT_EQ(doc["pieces"], nlohmann::json::array({"<s>", " Hello", ",", " how", " are", " you", "?"}));

  auto no_bos = run_command(cli() + " tokenize -m " + model + " --text 'Hello, how are you?' --no-bos --json");
  ASSERT_EQ(no_bos.exit_code, 0) << no_bos.err;
  EXPECT_EQ(nlohmann::json::parse(no_bos.out)["ids"][0], 15043);

  auto text = run_command(cli() + " tokenize -m " + model + " --text 'a\nb'");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("     13 -> '\\n'"), std::string::npos) << text.out;

  auto empty = run_command(cli() + " tokenize -m " + model + " --text '' --json");
  ASSERT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_EQ(nlohmann::json::parse(empty.out)["ids"], nlohmann::json::array({1}));
}

TEST(TokenizeCli, Detokenize) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string model = vocab(shared, "llama-spm");
  auto r = run_command(cli() + " tokenize -m " + model + " --detokenize 15043,29892,920,526,366,29973");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello, how are you?\n");
  auto js = run_command(cli() + " tokenize --tokenizer " + model + " --detokenize 1,15043,2 --parse-special --json");
  ASSERT_EQ(js.exit_code, 0) << js.err;
  EXPECT_EQ(nlohmann::json::parse(js.out)["text"], "<s> Hello</s>");
  auto bad = run_command(cli() + " tokenize -m " + model + " --detokenize 15043,32000");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("32000"), std::string::npos) << bad.err;
  auto negative = run_command(cli() + " tokenize -m " + model + " --detokenize=-1");
  EXPECT_EQ(negative.exit_code, 1);
}

TEST(TokenizeCli, TokenizerJsonAndSpecialTokens) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string json_path = shell_quote((shared / "models/vocab/llama3/tokenizer.json").string());
  auto special = run_command(cli() + " tokenize --tokenizer " + json_path +
                             " --text '<|start_header_id|>user<|end_header_id|>' --parse-special --json");
  ASSERT_EQ(special.exit_code, 0) << special.err;
  EXPECT_EQ(nlohmann::json::parse(special.out)["ids"], nlohmann::json::array({128000, 128006, 882, 128007}));
  auto plain = run_command(cli() + " tokenize --tokenizer " + json_path + " --text '<|eot_id|>' --no-bos --json");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const auto plain_doc = nlohmann::json::parse(plain.out);
  ASSERT_FALSE(plain_doc["ids"].empty());
  for (const auto& id : plain_doc["ids"]) EXPECT_LT(id.get<int>(), 128000);
  auto back = run_command(cli() + " tokenize --tokenizer " + json_path + " --detokenize 128000,9906,1917");
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, "Hello world\n");
  // A vocab-only GGUF through --tokenizer, byte-level BPE.
  auto gpt2 = run_command(cli() + " tokenize --tokenizer " + vocab(shared, "gpt-2") + " --text 'Hello world' --json");
  ASSERT_EQ(gpt2.exit_code, 0) << gpt2.err;
  EXPECT_EQ(nlohmann::json::parse(gpt2.out)["ids"], nlohmann::json::array({15496, 995}));
}

TEST(TokenizeCli, BadFilesGiveCleanErrors) {
  testing::TempDir dir;
  testing::write_file(dir / "junk.gguf", {'n', 'o', 't'});
  testing::write_file(dir / "bad.json", {'{', 'x'});
  const std::string junk = shell_quote((dir / "junk.gguf").string());
  const std::string bad_json = shell_quote((dir / "bad.json").string());
  const std::string missing = shell_quote((dir / "missing.gguf").string());
  for (const std::string& args : {"-m " + junk, "--tokenizer " + junk, "--tokenizer " + bad_json, "-m " + missing}) {
    auto r = run_command(cli() + " tokenize " + args + " --text hi");
    EXPECT_EQ(r.exit_code, 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << args;
  }
  BITNET_REQUIRE_SHARED(shared);
  auto bert = run_command(cli() + " tokenize -m " + vocab(shared, "bert-bge") + " --text hi");
  EXPECT_EQ(bert.exit_code, 1);
  EXPECT_NE(bert.err.find("bert"), std::string::npos) << bert.err;
}

}  // namespace
}  // namespace bitnet
