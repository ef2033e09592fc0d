// Option values, environment variables and the output stream, through the real binary:
// every bad value is exit 2 naming the option (the same in every command), every failed write
// to stdout is exit 1 with "cannot write output", and options never silently do nothing.
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <fstream>

namespace bitnet {
namespace {

using testing::cli;
using testing::run_command;
using testing::shell_quote;
using testing::stories;

std::string run_base() {
  return cli() + " run -m " + stories() + " -p hi -n 2 -t 1";
}

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// Each bad value exits 2 before any work, with the option's name in the message.
void expect_usage_error(const std::string& command, const std::string& option_in_message) {
  SCOPED_TRACE(command);
  const auto r = run_command(command);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(option_in_message), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(OptionsCli, SamplingAndRunValuesOutOfRange) {
  const struct {
    const char* args;
    const char* option;
  } cases[] = {
      {"--temp -1", "--temperature"},
      {"--temp nan", "--temperature"},
      {"--temp inf", "--temperature"},
      {"--top-p 2", "--top-p"},
      {"--top-p -0.5", "--top-p"},
      {"--top-p nan", "--top-p"},
      {"--min-p 5", "--min-p"},
      {"--min-p -1", "--min-p"},
      {"--repeat-penalty 0", "--repeat-penalty"},
      {"--repeat-penalty -1", "--repeat-penalty"},
      {"--repeat-penalty nan", "--repeat-penalty"},
      {"--top-k -1", "--top-k"},
      {"--repeat-last-n -1", "--repeat-last-n"},
      {"--dump-logit-steps 1 --logits-topk -2", "--logits-topk"},
      {"--dump-logit-steps -1", "--dump-logit-steps"},
      {"-t 0", "--threads"},
      {"-t 1000", "--threads"},
      {"-t 2x", "--threads"},
      {"-c 0", "--ctx-size"},
      {"-c -5", "--ctx-size"},
      {"--seed -5", "--seed"},
      {"--seed 18446744073709551616", "--seed"},
      {"--seed 42abc", "--seed"},
      {"-n -2", "--n-predict"},
      {"-n 1e3", "--n-predict"},
      {"--logits-topk 3", "--dump-logit-steps"},  // a k with no steps to dump would do nothing
  };
  for (const auto& c : cases) expect_usage_error(run_base() + " " + c.args, c.option);
}

TEST(OptionsCli, EvalAndBenchValuesOutOfRange) {
  const std::string eval = cli() + " eval -m " + stories() + " --teacher-force-ids 1,2,3,4 -t 1";
  expect_usage_error(eval + " --stride 0", "--stride");
  expect_usage_error(eval + " --stride -1", "--stride");
  expect_usage_error(eval + " -c 4 --stride 5", "--stride");
  expect_usage_error(eval + " -c 1", "--ctx-size");
  expect_usage_error(eval + " -t 0", "--threads");
  const std::string bench = cli() + " bench -m " + stories() + " -r 1 --no-membw";
  expect_usage_error(bench + " -t 0", "--threads");
  expect_usage_error(bench + " -t 1,1000", "--threads");
  expect_usage_error(bench + " -r 0", "--repetitions");
  expect_usage_error(bench + " -p -1", "--n-prompt");
  // Past the model's context (2048 for stories260K): refused, not run on without a word.
  expect_usage_error(bench + " -p 100000 -n 0 -t 1", "-p");
  expect_usage_error(bench + " -p 0 -n 4096 -t 1", "-n");
}

TEST(OptionsCli, NegativeTokenCountIsTheSameErrorEverywhere) {
  // -n -1 means "until the context is full" in run (llama.cpp); -2 is an error, and bench's
  // -n is a count: the same exit code for a bad value in every command.
  expect_usage_error(run_base() + " -n -2", "--n-predict");
  expect_usage_error(cli() + " bench -m " + stories() + " -n -1 -r 1 --no-membw", "--n-gen");
  testing::TempDir dir;
  const auto json = dir / "out.json";
  auto r = run_command(cli() + " run -m " + stories() + " -p 'Once' -n -1 -c 24 --ignore-eos --seed 1 -t 1 " +
                       "--json-out " + shell_quote(json.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = read_json(json);
  EXPECT_EQ(doc["stop_reason"], "context");
  EXPECT_EQ(doc["prompt_ids"].size() + doc["generated_ids"].size(), 25u);  // every cell, then one more sampled
}

TEST(OptionsCli, EnvironmentVariablesAreParsedStrictly) {
  const std::string base = cli() + " run -m " + stories() + " -p hi -n 2 -t 1";
  expect_usage_error("BITNET_SEED=abc " + base, "BITNET_SEED");
  expect_usage_error("BITNET_SEED=42abc " + base, "BITNET_SEED");
  expect_usage_error("BITNET_SEED=-5 " + base, "BITNET_SEED");
  expect_usage_error("BITNET_DETERMINISTIC=maybe " + base, "BITNET_DETERMINISTIC");
  expect_usage_error("BITNET_CACHE_LOCK_TIMEOUT=soon " + base, "BITNET_CACHE_LOCK_TIMEOUT");
  expect_usage_error("BITNET_CACHE_LOCK_TIMEOUT=-1 " + base, "BITNET_CACHE_LOCK_TIMEOUT");
  testing::TempDir dir;
  for (const char* value : {"1", "true", "YES", "on"}) {
    SCOPED_TRACE(value);
    const auto json = dir / "det.json";
    auto r = run_command(std::string("BITNET_DETERMINISTIC=") + value + " " + base + " --json-out " +
                         shell_quote(json.string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_json(json)["seed"], 0);
  }
  const auto json = dir / "seed.json";
  auto r = run_command("BITNET_SEED=18446744073709551615 " + base + " --json-out " + shell_quote(json.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_json(json)["seed"].get<uint64_t>(), 18446744073709551615ull);
}

TEST(OptionsCli, FailedWritesToStdoutExitOne) {
  const std::string m = stories();
  const std::vector<std::string> commands = {
      run_base(),
      cli() + " eval -m " + m + " --teacher-force-ids 1,2,3,4 -t 1",
      cli() + " tokenize -m " + m + " --text hello",
      cli() + " bench -m " + m + " -p 8 -n 8 -t 1 -r 1 --no-membw",
      cli() + " compat-check " + m,
      cli() + " inspect " + m,
      cli() + " dump-ir -m " + m,
      cli() + " --version",
      cli() + " cache list",
  };
  for (const auto& c : commands) {
    SCOPED_TRACE(c);
    for (const char* redirect : {">/dev/full", ">&-"}) {
      SCOPED_TRACE(redirect);
      auto r = run_command("( " + c + " " + redirect + " )");
      EXPECT_EQ(r.exit_code, 1) << r.err;
      EXPECT_NE(r.err.find("cannot write output: "), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
    }
  }
}

TEST(OptionsCli, ReaderGoneStopsGenerationWithAnError) {
  // `bitnet run | head -c 1`: EPIPE, reported, and generation stops at the failed write.
  testing::TempDir dir;
  const auto rc_file = dir / "rc";
  auto r =
      run_command("{ ( " + cli() + " run -m " + stories() + " -p 'Once upon a time' -n 2000 -c 2048 -t 1 " +
                  "--ignore-eos --seed 1; echo $? > " + shell_quote(rc_file.string()) + " ) | head -c 1 >/dev/null; }");
  std::ifstream in(rc_file);
  int rc = -1;
  in >> rc;
  EXPECT_EQ(rc, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write output: Broken pipe"), std::string::npos) << r.err;
}

TEST(OptionsCli, PassOptionsNeverDoNothing) {
  const std::string dump = cli() + " dump-ir -m " + stories();
  expect_usage_error(dump + " --time-passes", "--stage optimized");
  expect_usage_error(dump + " --print-after-all", "--stage optimized");
  expect_usage_error(dump + " --stage optimized --print-after=nosuchpass", "no pass named 'nosuchpass'");
  expect_usage_error(run_base() + " --no-cache --print-after=nosuchpass", "no pass named 'nosuchpass'");
  auto ok = run_command(dump + " --stage optimized --time-passes");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.err.find("pass fuse-norm"), std::string::npos) << ok.err;
  auto printed = run_command(dump + " --stage optimized --print-after=dce");
  EXPECT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_NE(printed.err.find("IR after dce"), std::string::npos);
}

TEST(OptionsCli, DumpLogitStepsAloneUsesTheDefaultK) {
  testing::TempDir dir;
  const auto json = dir / "out.json";
  auto r = run_command(cli() + " run -m " + stories() + " -p hi -n 3 -t 1 --dump-logit-steps 2 --json-out " +
                       shell_quote(json.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = read_json(json);
  ASSERT_EQ(doc["top_logits"].size(), 2u);
  EXPECT_EQ(doc["top_logits"][0].size(), 10u);
}

TEST(OptionsCli, GeneratedTokensAreCountedOnce) {
  testing::TempDir dir;
  const auto json = dir / "out.json";
  auto r = run_command(cli() + " run -m " + stories() + " -p 'Once upon a time' -n 16 --ignore-eos --seed 2 -t 1 " +
                       "--json-out " + shell_quote(json.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = read_json(json);
  EXPECT_EQ(doc["generated_ids"].size(), 16u);
  EXPECT_EQ(doc["timings"]["generated_tokens"], 16);
  EXPECT_EQ(doc["timings"]["decode_steps"], 15);  // the first token comes from the prompt pass
  EXPECT_NE(r.err.find("generated 16 tokens, 15 decode steps"), std::string::npos) << r.err;
}

TEST(OptionsCli, ValidatesBeforeAnyOutput) {
  // A prompt that does not fit the context is refused before the prompt is echoed.
  const std::string long_prompt(2000, 'a');
  auto r = run_command(cli() + " run -m " + stories() + " -p " + long_prompt + " -c 1 -t 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("context holds 1"), std::string::npos) << r.err;
}

TEST(OptionsCli, EmptyPromptStartsFromBos) {
  testing::TempDir dir;
  const auto json = dir / "out.json";
  auto r = run_command(cli() + " run -m " + stories() + " -p '' -n 8 --seed 3 -t 1 --json-out " +
                       shell_quote(json.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = read_json(json);
  ASSERT_EQ(doc["prompt_ids"].size(), 1u);
  EXPECT_EQ(doc["prompt_ids"][0], 1);  // stories260K's BOS
  EXPECT_EQ(doc["generated_ids"].size(), 8u);

  // A model that adds no BOS has nothing to start from: refused with the reason.
  auto model = testing::make_synthetic_model({.tokenizer_model = "gpt2"});
  model.writer.set("tokenizer.ggml.add_bos_token", false);
  const auto path = dir / "nobos.gguf";
  ASSERT_TRUE(model.writer.write_file_atomic(path.string()).ok());
  auto refused = run_command(cli() + " run -m " + shell_quote(path.string()) + " -p '' -n 2 -t 1 --backend interp");
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("adds no BOS"), std::string::npos) << refused.err;
}

TEST(OptionsCli, EvalNamesTheRealCause) {
  testing::TempDir dir;
  auto r = run_command(cli() + " eval -m " + stories() + " --text-file " + shell_quote(dir.path().string()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Is a directory"), std::string::npos) << r.err;
  auto missing = run_command(cli() + " eval -m " + stories() + " --text-file " + shell_quote((dir / "no").string()));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
}

TEST(OptionsCli, BenchSizesInAFittingUnit) {
  auto r = run_command(cli() + " bench -m " + stories() + " -p 8 -n 8 -t 1 -r 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("0.00 GiB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MiB"), std::string::npos) << r.out;  // 1.13 MiB
  // 1 MB per token fits any last-level cache: no DRAM roofline percentage for it.
  EXPECT_EQ(r.out.find("tg reached"), std::string::npos) << r.out;
}

// --batch: llama-batched-bench's rows, one pp and one tg row per sequence count with the
// aggregate rate; bad counts and contexts too small for -p + -n are usage errors.
TEST(OptionsCli, BenchBatchRowsCarryTheSequenceCount) {
  const std::string bench = cli() + " bench -m " + stories() + " -p 8 -n 4 -t 1 -r 1";
  auto r = run_command(bench + " --batch 1,3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = nlohmann::json::parse(r.out);
  ASSERT_EQ(rows.size(), 4u) << r.out;
  const std::vector<std::pair<int, std::string>> want = {{1, "pp8"}, {1, "tg4"}, {3, "pp8"}, {3, "tg4"}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(rows[i]["batch"], want[i].first);
    EXPECT_EQ(rows[i]["test"], want[i].second);
    EXPECT_GT(rows[i]["tokens_per_s"].get<double>(), 0);
  }
  auto text = run_command(bench + " --batch 2");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("| threads | batch | test | aggregate t/s |"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("| 1 | 2 | tg4 |"), std::string::npos) << text.out;
  expect_usage_error(bench + " --batch 0", "--batch");
  expect_usage_error(bench + " --batch 2,x", "--batch");
  expect_usage_error(bench + " -c 10 --batch 2", "--batch");
}

}  // namespace
}  // namespace bitnet
