// The `bitnet` binary end to end: help, exit codes, inspect, compat-check and
// compat-fix on real and broken files. Bad input never crashes (exit < 128).
#include "test_support.h"

#include <nlohmann/json.hpp>

namespace bitnet {
namespace {

using testing::cli;
using testing::run_command;
using testing::shell_quote;

TEST(Cli, HelpAndUsage) {
  for (const char* cmd : {"--help", "inspect --help", "compat-check --help", "compat-fix --help"}) {
    auto r = run_command(cli() + " " + cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd;
  }
  EXPECT_EQ(run_command(cli()).exit_code, 2);
  EXPECT_EQ(run_command(cli() + " frobnicate").exit_code, 2);
  EXPECT_EQ(run_command(cli() + " inspect").exit_code, 2);
  EXPECT_EQ(run_command(cli() + " inspect a b c").exit_code, 2);
  auto v = run_command(cli() + " --version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out.rfind(BITNET_TEST_VERSION "\ncuda: ", 0), 0u) << v.out;  // then the driver, or why there is none
  EXPECT_TRUE(v.out.find("CUDA driver") != std::string::npos || v.out.find("no CUDA driver") != std::string::npos)
      << v.out;
}

TEST(Cli, InspectSharedModels) {
  BITNET_REQUIRE_SHARED(shared);
  for (const auto& path : testing::shared_gguf_files(shared)) {
    SCOPED_TRACE(path.string());
    auto text = run_command(cli() + " inspect " + shell_quote(path.string()));
    ASSERT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("tensors ("), std::string::npos);
    auto js = run_command(cli() + " inspect --json " + shell_quote(path.string()));
    ASSERT_EQ(js.exit_code, 0) << js.err;
    const auto doc = nlohmann::json::parse(js.out);
    EXPECT_EQ(doc["schema_version"], 1);
    EXPECT_EQ(doc["file"]["size"], std::filesystem::file_size(path));
    uint64_t params = 0;
    for (const auto& t : doc["tensors"]) params += t["elements"].get<uint64_t>();
    EXPECT_EQ(doc["parameter_count"], params);
  }
}

TEST(Cli, InspectJsonOfStories) {
  BITNET_REQUIRE_SHARED(shared);
  auto r = run_command(cli() + " inspect --json " + shell_quote((shared / "models/stories260K.gguf").string()));
  ASSERT_EQ(r.exit_code, 0);
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["architecture"], "llama");
  EXPECT_EQ(doc["hparams"]["n_layer"], 5);
  EXPECT_EQ(doc["hparams"]["n_head_kv"], 4);
  EXPECT_EQ(doc["tokenizer"]["model"], "llama");
  EXPECT_EQ(doc["tokenizer"]["n_tokens"], 512);
  EXPECT_EQ(doc["tokenizer"]["bos_id"], 1);
  EXPECT_EQ(doc["tensors"].size(), 48u);
  EXPECT_EQ(doc["tensors"][0]["name"], "token_embd.weight");
  EXPECT_EQ(doc["tensors"][0]["shape"], nlohmann::json::array({64, 512}));
  EXPECT_EQ(doc["totals_by_type"][0]["type"], "F32");
  EXPECT_EQ(doc["totals_by_type"][0]["tensors"], 48);
}

TEST(Cli, BadFilesGiveCleanErrors) {
  testing::TempDir dir;
  testing::write_file(dir / "junk.gguf", {'n', 'o', 't', ' ', 'g', 'g', 'u', 'f'});
  testing::write_file(dir / "empty.gguf", {});
  for (const char* name : {"junk.gguf", "empty.gguf", "missing.gguf"}) {
    const std::string path = shell_quote((dir / name).string());
    auto r = run_command(cli() + " inspect " + path);
    EXPECT_EQ(r.exit_code, 1) << name;
    EXPECT_NE(r.err.find("error"), std::string::npos) << name;
    auto c = run_command(cli() + " compat-check " + path);
    EXPECT_EQ(c.exit_code, 2) << name;
    EXPECT_NE(c.out.find("parse-error"), std::string::npos) << name;
    auto f = run_command(cli() + " compat-fix " + path + " " + shell_quote((dir / "out.gguf").string()));
    EXPECT_EQ(f.exit_code, 1) << name;
  }
  EXPECT_EQ(run_command(cli() + " inspect " + shell_quote(dir.path().string())).exit_code, 1);
}

TEST(Cli, TruncatedModelsNeverCrash) {
  BITNET_REQUIRE_SHARED(shared);
  const auto bytes = testing::read_file(shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf");
  testing::TempDir dir;
  for (size_t n : {size_t{3}, size_t{24}, size_t{100}, size_t{5000}, size_t{700000}, bytes.size() - 1}) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    testing::write_file(dir / "t.gguf", prefix);
    const std::string path = shell_quote((dir / "t.gguf").string());
    EXPECT_EQ(run_command(cli() + " inspect " + path).exit_code, 1) << n;
    EXPECT_EQ(run_command(cli() + " compat-check --json " + path).exit_code, 2) << n;
  }
}

TEST(Cli, CompatCheckExitCodes) {
  BITNET_REQUIRE_SHARED(shared);
  auto clean = run_command(cli() + " compat-check " + shell_quote((shared / "models/stories260K.gguf").string()));
  EXPECT_EQ(clean.exit_code, 0) << clean.out;
  auto warn = run_command(cli() + " compat-check --json " +
                          shell_quote((shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string()));
  EXPECT_EQ(warn.exit_code, 1) << warn.out;
  const auto doc = nlohmann::json::parse(warn.out);
  EXPECT_EQ(doc["verdict"], "warnings");
  bool found = false;
  for (const auto& f : doc["findings"]) found |= f["code"] == "i2s-not-upstream";
  EXPECT_TRUE(found);
  auto err =
      run_command(cli() + " compat-check " + shell_quote((shared / "models/vocab/ggml-vocab-gpt-2.gguf").string()));
  EXPECT_EQ(err.exit_code, 2);
}

TEST(Cli, CompatFixLeavesInputIdentical) {
  BITNET_REQUIRE_SHARED(shared);
  testing::TempDir dir;
  for (const auto& path : testing::shared_gguf_files(shared)) {
    SCOPED_TRACE(path.string());
    const auto before = testing::read_file(path);
    const auto out = dir / "fixed.gguf";
    auto r = run_command(cli() + " compat-fix " + shell_quote(path.string()) + " " + shell_quote(out.string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(testing::read_file(path), before);
    EXPECT_TRUE(std::filesystem::exists(out.string() + ".compat.json"));
    auto again = run_command(cli() + " inspect " + shell_quote(out.string()));
    EXPECT_EQ(again.exit_code, 0);
  }
  // Refuses to write over its input.
  const auto copy = dir / "copy.gguf";
  std::filesystem::copy_file(shared / "models/stories260K.gguf", copy);
  auto same = run_command(cli() + " compat-fix " + shell_quote(copy.string()) + " " + shell_quote(copy.string()));
  EXPECT_EQ(same.exit_code, 1);
  EXPECT_NE(same.err.find("never modifies its input"), std::string::npos);
}

}  // namespace
}  // namespace bitnet
