// Plans with `--lm-head q8_0|q6_k`: the requantized head goes into the sidecar (named, typed,
// hash-checked), the plan runs bit-identically to the JIT with the same option, the cache key
// names the option, and the CLI (compile, run with the cache, bench, bitnet-rt) carries it.
#include "compiler/jit_model.h"
#include "compiler/load_model.h"
#include "plan_test_util.h"
#include "runtime/plan_cache.h"
#include "runtime/plan_model.h"

namespace bitnet {
namespace {

using ir::DType;
using testing::run_command;
using testing::shell_quote;
using testing::TempDir;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::filesystem::path tiny(const std::filesystem::path& shared) {
  return shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf";
}

// compile_to with the model loaded for `lm_head` (what `bitnet compile --lm-head` does).
void compile_with_head(const std::filesystem::path& model, const std::filesystem::path& plan, DType lm_head) {
  auto m = compiler::load_model(model.string(), {.lm_head = lm_head});
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto hash = runtime::file_content_hash(model.string(), "", "model");
  ASSERT_TRUE(hash.ok());
  auto compiled = compiler::compile_plan(**m, {.lm_head = lm_head}, *hash);
  ASSERT_TRUE(compiled.ok()) << compiled.error().message;
  ASSERT_TRUE(runtime::write_plan(plan.string(), *compiled->plan, compiled->repacked).ok());
}

TEST(LmHeadPlan, SidecarIsWrittenCheckedAndRunsLikeTheJit) {
  BITNET_REQUIRE_SHARED(shared);
  for (DType dtype : {DType::Q8_0, DType::Q6_K}) {
    const std::string name(ir::dtype_name(dtype));
    SCOPED_TRACE(name);
    TempDir dir;
    const auto plan_path = dir / "tiny.bnplan";
    ASSERT_NO_FATAL_FAILURE(compile_with_head(tiny(shared), plan_path, dtype));
    const auto sidecar = dir / "tiny.bnplan.weights";
    ASSERT_TRUE(std::filesystem::exists(sidecar));
    auto plan = testing::unpack_file(plan_path);
    ASSERT_TRUE(plan && plan->sidecar);
    ASSERT_EQ(plan->sidecar->weights.size(), 1u);
    const planfb::RepackedWeightT& w = *plan->sidecar->weights[0];
    EXPECT_EQ(w.tensor, "token_embd.weight@" + name);
    EXPECT_EQ(w.source, "token_embd.weight");
    EXPECT_EQ(w.dtype, name);
    EXPECT_EQ(w.bytes, dtype == DType::Q8_0 ? 32000u * 256 / 32 * 34 : 32000u * 256 / 256 * 210);
    EXPECT_EQ(std::filesystem::file_size(sidecar), plan->sidecar->file_size);
    EXPECT_TRUE(contains(plan->provenance->key_material, "lm_head=" + name));

    // Bit-identical to the in-process JIT with the same option (prompt, then decode).
    auto jit = compiler::load_model(tiny(shared).string(), {.lm_head = dtype});
    ASSERT_TRUE(jit.ok());
    ASSERT_TRUE(compiler::attach_backend(**jit, {.backend = "jit"}).ok());
    auto loaded = runtime::load_model_from_plan(plan_path.string(), {});
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    const std::vector<int32_t> prompt = {1, 450, 4996, 17354, 1701, 29916, 432, 17204};
    for (bool all_logits : {true, false}) {
      auto a = (*jit)->new_session(all_logits, 64, 2);
      auto b = (*loaded)->new_session(all_logits, 64, 2);
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_EQ((*b)->backend(), "plan");
      testing::expect_same_logits(**a, **b, prompt, "prompt");
      for (int32_t id : {29892, 278, 1432}) testing::expect_same_logits(**a, **b, std::span(&id, 1), "decode");
    }

    // The sidecar's hash is checked: one flipped bit refuses the plan.
    std::vector<uint8_t> bytes = testing::read_file(sidecar);
    bytes[bytes.size() / 3] ^= 4;
    testing::write_file(sidecar, bytes);
    auto refused = runtime::load_model_from_plan(plan_path.string(), {});
    ASSERT_FALSE(refused.ok());
    EXPECT_TRUE(contains(refused.error().message, "sidecar mismatch")) << refused.error().message;
  }
}

TEST(LmHeadPlan, TheCacheKeyNamesTheOption) {
  const runtime::Hash128 model_hash{1, 2};
  std::set<std::string> keys;
  for (DType dtype : {DType::F16, DType::Q8_0, DType::Q6_K}) {
    auto key = compiler::plan_cache_key({.lm_head = dtype}, model_hash, 1000);
    ASSERT_TRUE(key.ok());
    EXPECT_TRUE(contains(key->material, "\nlm_head=" + std::string(ir::dtype_name(dtype)) + "\n")) << key->material;
    keys.insert(key->hex);
  }
  EXPECT_EQ(keys.size(), 3u);
}

TEST(LmHeadPlan, CompilePlanChecksTheModelAgainstTheOption) {
  BITNET_REQUIRE_SHARED(shared);
  auto hash = runtime::file_content_hash(tiny(shared).string(), "", "model");
  ASSERT_TRUE(hash.ok());
  // The key would say q8_0 while the graphs read the F16 head: refused.
  auto f16 = compiler::load_model(tiny(shared).string());
  ASSERT_TRUE(f16.ok());
  auto mismatch = compiler::compile_plan(**f16, {.lm_head = DType::Q8_0}, *hash);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_TRUE(contains(mismatch.error().message, "--lm-head q8_0")) << mismatch.error().message;
  // An F32 head is left alone by the option: no sidecar.
  auto stories = compiler::load_model(testing::stories_model().string(), {.lm_head = DType::Q8_0});
  ASSERT_TRUE(stories.ok());
  auto stories_hash = runtime::file_content_hash(testing::stories_model().string(), "", "model");
  ASSERT_TRUE(stories_hash.ok());
  auto compiled = compiler::compile_plan(**stories, {.lm_head = DType::Q8_0}, *stories_hash);
  ASSERT_TRUE(compiled.ok()) << compiled.error().message;
  EXPECT_TRUE(compiled->repacked.empty());
}

std::string cli(const TempDir& dir) {
  return "BITNET_CACHE_DIR=" + shell_quote((dir / "cache").string()) + " " +
         shell_quote(testing::bitnet_cli().string());
}

TEST(LmHeadPlan, CommandLine) {
  BITNET_REQUIRE_SHARED(shared);
  TempDir dir;
  const std::string model = shell_quote(tiny(shared).string());
  const std::string plan = shell_quote((dir / "t.bnplan").string());
  auto compiled = run_command(cli(dir) + " compile -m " + model + " -o " + plan + " --lm-head q8_0");
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  EXPECT_TRUE(contains(compiled.out, "LM head token_embd.weight requantized to q8_0")) << compiled.out;
  EXPECT_TRUE(std::filesystem::exists(dir / "t.bnplan.weights"));

  const std::string args = " -p 'Once upon a time' -n 12 --greedy -t 2";
  auto jit = run_command(cli(dir) + " run -m " + model + args + " --lm-head q8_0 --no-cache");
  ASSERT_EQ(jit.exit_code, 0) << jit.err;
  const std::string rt = shell_quote((testing::binary_dir() / "bin" / "bitnet-rt").string());
  auto lean = run_command(rt + " run --plan " + plan + args);
  ASSERT_EQ(lean.exit_code, 0) << lean.err;
  EXPECT_EQ(lean.out, jit.out);

  // Through the cache: a miss stores plan and sidecar, a hit gives the same text; f16 is
  // another key.
  auto miss = run_command(cli(dir) + " run -m " + model + args + " --lm-head q8_0 -v");
  ASSERT_EQ(miss.exit_code, 0) << miss.err;
  EXPECT_TRUE(contains(miss.err, "plan cache: miss")) << miss.err;
  auto hit = run_command(cli(dir) + " run -m " + model + args + " --lm-head q8_0 -v");
  ASSERT_EQ(hit.exit_code, 0) << hit.err;
  EXPECT_TRUE(contains(hit.err, "plan cache: hit")) << hit.err;
  EXPECT_EQ(hit.out, jit.out);
  auto f16 = run_command(cli(dir) + " run -m " + model + args + " -v");
  ASSERT_EQ(f16.exit_code, 0) << f16.err;
  EXPECT_TRUE(contains(f16.err, "plan cache: miss")) << f16.err;
  size_t plans = 0, sidecars = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "cache" / "plans")) {
    plans += e.path().extension() == ".bnplan";
    sidecars += e.path().extension() == ".weights";
  }
  EXPECT_EQ(plans, 2u);
  EXPECT_EQ(sidecars, 1u);

  auto bench = run_command(cli(dir) + " bench -m " + model + " -p 4 -n 4 -r 1 -t 1 --no-membw --json --lm-head q8_0");
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  EXPECT_TRUE(contains(bench.out, "\"lm_head\": \"q8_0\"")) << bench.out;

  // Refused where it cannot apply; a no-op with a note on an F32 head.
  auto interp = run_command(cli(dir) + " run -m " + model + args + " --lm-head q8_0 --backend interp");
  EXPECT_NE(interp.exit_code, 0);
  EXPECT_TRUE(contains(interp.err, "needs --backend jit")) << interp.err;
  auto on_plan = run_command(cli(dir) + " run --plan " + plan + args + " --lm-head q6_k");
  EXPECT_NE(on_plan.exit_code, 0);
  EXPECT_TRUE(contains(on_plan.err, "bitnet compile --lm-head")) << on_plan.err;
  const std::string stories = shell_quote(testing::stories_model().string());
  auto plain = run_command(cli(dir) + " run -m " + stories + args + " --no-cache");
  auto noop = run_command(cli(dir) + " run -m " + stories + args + " --no-cache --lm-head q8_0");
  ASSERT_EQ(noop.exit_code, 0) << noop.err;
  EXPECT_TRUE(contains(noop.err, "applies only to F16 LM heads")) << noop.err;
  EXPECT_EQ(noop.out, plain.out);
}

}  // namespace
}  // namespace bitnet
