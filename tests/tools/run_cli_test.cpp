// `bitnet run`, `eval`, `dump-ir` and `gen-model` end to end through the binary.
#include "npy.h"
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

namespace bitnet {
namespace {

using testing::cli;
using testing::run_command;
using testing::shell_quote;
using testing::stories;

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

TEST(RunCli, GeneratesAndReportsTimings) {
  testing::TempDir dir;
  const auto json = dir / "out.json";
  auto r = run_command(cli() + " run -m " + stories() + " -p 'Once upon a time' -n 24 --greedy -t 2 --json-out " +
                       shell_quote(json.string()) + " --dump-logit-steps 2 --logits-topk 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << r.out;  // the prompt is echoed, then the story
  EXPECT_NE(r.out.find("Lily"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("tok/s"), std::string::npos);
  const auto doc = read_json(json);
  EXPECT_EQ(doc["prompt_ids"][0], 1);
  EXPECT_EQ(doc["generated_ids"].size(), 24u);
  EXPECT_EQ(r.out, "Once upon a time" + doc["text"].get<std::string>() + "\n");
  EXPECT_EQ(doc["top_logits"].size(), 2u);
  EXPECT_EQ(doc["top_logits"][0].size(), 3u);
  EXPECT_EQ(doc["top_logits"][0][0]["id"], doc["generated_ids"][0]);  // greedy takes the top logit
  for (const char* key : {"load_ms", "prompt_ms", "prompt_tokens_per_s", "generate_tokens_per_s"}) {
    EXPECT_TRUE(doc["timings"].contains(key)) << key;
  }
}

TEST(RunCli, SeedsAndEnvironment) {
  const std::string base = cli() + " run -m " + stories() + " -p 'The cat' -n 16 --temp 1.0 --no-display-prompt";
  auto a = run_command(base + " -s 11");
  auto b = run_command(base + " --seed 11");
  auto c = run_command("BITNET_SEED=11 " + base);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out, c.out);
  auto d = run_command("BITNET_DETERMINISTIC=1 " + base);
  auto e = run_command(base + " --deterministic -t 1");
  EXPECT_EQ(d.out, e.out);
  auto env_model = run_command("BITNET_GGUF=" + stories() + " " + cli() + " run -p 'The cat' -n 4 --greedy");
  EXPECT_EQ(env_model.exit_code, 0) << env_model.err;
}

TEST(RunCli, BadInputs) {
  auto utf8 = run_command(cli() + " run -m " + stories() + " -p \"$(printf '\\377\\376')\"");
  EXPECT_EQ(utf8.exit_code, 1);
  EXPECT_NE(utf8.err.find("UTF-8"), std::string::npos);
  auto ctx = run_command(cli() + " run -m " + stories() + " -c 8 -p 'one two three four five six seven eight nine'");
  EXPECT_EQ(ctx.exit_code, 1);
  EXPECT_NE(ctx.err.find("context"), std::string::npos);
  EXPECT_EQ(run_command("env -u BITNET_GGUF " + cli() + " run -p hi").exit_code, 2);  // no model: usage
  EXPECT_EQ(run_command(cli() + " run -m /nonexistent.gguf -p hi").exit_code, 1);
  EXPECT_EQ(run_command(cli() + " run -m " + stories() + " -p hi --backend gpu").exit_code, 2);
  EXPECT_EQ(run_command(cli() + " run -m " + stories() + " -p hi --cuda-gemm wmma").exit_code, 2);
}

TEST(EvalCli, TeacherForcedIdsAndLogits) {
  testing::TempDir dir;
  const auto npy = dir / "logits.npy";
  const auto json = dir / "eval.json";
  auto r = run_command(cli() + " eval -m " + stories() + " --teacher-force-ids 1,403,407,261,31 --logits-out " +
                       shell_quote(npy.string()) + " --json-out " + shell_quote(json.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("perplexity"), std::string::npos);
  auto logits = testing::read_npy(npy);
  ASSERT_TRUE(logits.ok()) << logits.error().message;
  EXPECT_EQ(logits->shape, (std::vector<int64_t>{5, 512}));
  const auto doc = read_json(json);
  EXPECT_EQ(doc["n_predicted"], 4);
  EXPECT_NEAR(std::exp(doc["mean_nll"].get<double>()), doc["perplexity"].get<double>(), 1e-9);
  auto decode = run_command(cli() + " eval -m " + stories() + " --teacher-force-ids 1,403,407,261,31 --mode decode");
  EXPECT_EQ(decode.exit_code, 0) << decode.err;
}

TEST(EvalCli, TextFileAndErrors) {
  BITNET_REQUIRE_SHARED(shared);
  testing::TempDir dir;
  const auto text = dir / "t.txt";
  std::ofstream(text) << "Once upon a time, there was a little dog. He liked to run and play in the sun.";
  auto r =
      run_command(cli() + " eval -m " + stories() + " --text-file " + shell_quote(text.string()) + " -c 12 --stride 6");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("windows"), std::string::npos);
  EXPECT_EQ(run_command(cli() + " eval -m " + stories() + " --teacher-force-ids 1,99999").exit_code, 1);
  EXPECT_EQ(run_command(cli() + " eval -m " + stories() + " --teacher-force-ids 1,x").exit_code, 1);
  EXPECT_EQ(run_command(cli() + " eval -m " + stories()).exit_code, 2);
  EXPECT_EQ(run_command(cli() + " eval -m " + stories() + " --text-file /nonexistent").exit_code, 1);
}

TEST(DumpIrCli, StagesAndPassOptions) {
  auto lowered = run_command(cli() + " dump-ir -m " + stories());
  ASSERT_EQ(lowered.exit_code, 0) << lowered.err;
  EXPECT_NE(lowered.out.find("graph \"llama\" arch=\"llama\""), std::string::npos);
  auto optimized =
      run_command(cli() + " dump-ir -m " + stories() + " --stage optimized --time-passes --print-after dce");
  ASSERT_EQ(optimized.exit_code, 0) << optimized.err;
  EXPECT_NE(optimized.err.find("pass dce"), std::string::npos);
  EXPECT_NE(optimized.err.find("IR after dce"), std::string::npos);
  EXPECT_EQ(run_command(cli() + " dump-ir -m " + stories() + " --stage bogus").exit_code, 2);
}

TEST(GenModelCli, WritesLoadableModels) {
  testing::TempDir dir;
  const auto out = dir / "m.gguf";
  auto r = run_command(cli() + " gen-model --preset test --seed 3 -o " + shell_quote(out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto check = run_command(cli() + " compat-check " + shell_quote(out.string()));
  EXPECT_EQ(check.exit_code, 1) << check.out;  // only the I2_S portability warning
  auto run = run_command(cli() + " run -m " + shell_quote(out.string()) + " -p 'hello' -n 8 --greedy");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  const auto again = dir / "m2.gguf";
  ASSERT_EQ(run_command(cli() + " gen-model --preset test --seed 3 -o " + shell_quote(again.string())).exit_code, 0);
  EXPECT_EQ(testing::read_file(out), testing::read_file(again));  // same seed, same bytes
  EXPECT_EQ(run_command(cli() + " gen-model --preset nope -o x.gguf").exit_code, 2);
  auto bad = run_command(cli() + " gen-model --preset test --embd 100 -o " + shell_quote((dir / "b.gguf").string()));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("multiples of 128"), std::string::npos);
}

// --backend cuda says why it cannot run (a llama model; no driver or device here), and auto
// falls back to the CPU with one line saying why. On a machine with a GPU the BitNet model runs.
TEST(RunCli, CudaBackendSaysWhyAndAutoFallsBackToTheCpu) {
  auto llama = run_command(cli() + " run -m " + stories() + " -p 'The cat' -n 4 --greedy --backend cuda");
  EXPECT_EQ(llama.exit_code, 1) << llama.err;
  EXPECT_NE(llama.err.find("BitNet"), std::string::npos) << llama.err;
  auto fallback = run_command(cli() + " run -m " + stories() + " -p 'The cat' -n 4 --greedy --backend auto");
  ASSERT_EQ(fallback.exit_code, 0) << fallback.err;
  EXPECT_NE(fallback.err.find("note: running on the CPU: the CUDA backend runs BitNet models"), std::string::npos)
      << fallback.err;
  // The CPU's JIT ("plan" when its plan came from the plan cache).
  const bool on_the_cpu =
      fallback.err.find("backend jit") != std::string::npos || fallback.err.find("backend plan") != std::string::npos;
  EXPECT_TRUE(on_the_cpu) << fallback.err;
  auto cpu = run_command(cli() + " run -m " + stories() + " -p 'The cat' -n 4 --greedy");
  EXPECT_EQ(fallback.out, cpu.out);

  BITNET_REQUIRE_SHARED(shared);
  const std::string model = shell_quote((shared / "models/bitnet-i2s/bitnet-tiny-mha.i2_s.gguf").string());
  auto cuda = run_command(cli() + " run -m " + model + " -p 'The cat' -n 4 --greedy --backend cuda");
  if (cuda.exit_code == 0) {
    std::cout << "[cuda] a CUDA device ran the model: " << cuda.out << "\n";
    EXPECT_NE(cuda.err.find("backend cuda"), std::string::npos) << cuda.err;
    // The batched prompt's GEMMs on tensor cores: the same text.
    auto mma = run_command(cli() + " run -m " + model + " -p 'The cat' -n 4 --greedy --backend cuda --cuda-gemm mma");
    EXPECT_EQ(mma.exit_code, 0) << mma.err;
    EXPECT_EQ(mma.out, cuda.out);
  } else {
    EXPECT_EQ(cuda.exit_code, 1) << cuda.err;
    const bool says_why = cuda.err.find("CUDA") != std::string::npos || cuda.err.find("libcuda") != std::string::npos;
    EXPECT_TRUE(says_why) << cuda.err;
    std::cout << "[cuda] no CUDA device here: " << cuda.err;
  }
}

}  // namespace
}  // namespace bitnet
