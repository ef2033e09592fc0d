// Running a plan gives logits bit-identical to running the same model with the in-process JIT:
// prompt mode (the all-logits graph, one batch) and decode mode (the last-token graph, then
// one token per call), on the shared models and stories260K, for this CPU and for the
// x86-64-v3 baseline.
#include "compiler/jit_model.h"
#include "compiler/load_model.h"
#include "plan_test_util.h"
#include "runtime/plan_model.h"

namespace bitnet {
namespace {

std::vector<int32_t> test_tokens(int64_t n_vocab, size_t n) {
  std::vector<int32_t> out = {1};
  for (size_t i = 1; i < n; ++i) out.push_back(static_cast<int32_t>(2 + (i * 7919) % static_cast<size_t>(n_vocab - 2)));
  return out;
}

void check_equivalence(const std::filesystem::path& model_path, const std::string& target) {
  SCOPED_TRACE(model_path.filename().string() + " " + target);
  testing::TempDir dir;
  const auto plan_path = dir / "model.bnplan";
  ASSERT_NO_FATAL_FAILURE(testing::compile_to(model_path, plan_path, target));

  auto jit = compiler::load_model(model_path.string());
  ASSERT_TRUE(jit.ok()) << jit.error().message;
  ASSERT_TRUE(compiler::attach_backend(**jit, {.backend = "jit", .target = target}).ok());
  auto plan = runtime::load_model_from_plan(plan_path.string(), {});
  ASSERT_TRUE(plan.ok()) << plan.error().message;

  const std::vector<int32_t> prompt = test_tokens((*jit)->config().n_vocab, 16);
  for (bool all_logits : {true, false}) {
    auto a = (*jit)->new_session(all_logits, 128, 2);
    auto b = (*plan)->new_session(all_logits, 128, 2);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ((*a)->backend(), "jit");
    ASSERT_EQ((*b)->backend(), "plan");
    const std::string graph = all_logits ? "all-logits graph" : "last-token graph";
    testing::expect_same_logits(**a, **b, prompt, "prompt, " + graph);
    // Decode: one token per call through the KV cache.
    for (int32_t step = 0; step < 8; ++step) {
      const int32_t next = prompt[static_cast<size_t>(step) + 1];
      testing::expect_same_logits(**a, **b, std::span<const int32_t>(&next, 1),
                                  "decode step " + std::to_string(step) + ", " + graph);
    }
  }
}

TEST(PlanEquivalence, Stories260KHostAndBaseline) {
  check_equivalence(testing::stories_model(), "host");
  check_equivalence(testing::stories_model(), "x86-64-v3");
}

TEST(PlanEquivalence, SharedBitnetModels) {
  BITNET_REQUIRE_SHARED(shared);
  for (const char* name : {"b158-tiny-gqa", "bitnet-tiny-mha", "b158-small-gqa"}) {
    check_equivalence(shared / "models/bitnet-i2s" / (std::string(name) + ".i2_s.gguf"), "host");
  }
  check_equivalence(shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf", "x86-64-v3");
}

TEST(PlanEquivalence, ModelPathDefaultsToTheCompiledOne) {
  // Without -m, the plan finds its model where it was compiled; the result is the same model.
  testing::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(testing::compile_to(testing::stories_model(), dir / "s.bnplan"));
  auto plan = runtime::load_model_from_plan((dir / "s.bnplan").string(), {});
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  EXPECT_EQ((*plan)->file().path(), std::filesystem::absolute(testing::stories_model()).lexically_normal().string());
  EXPECT_EQ((*plan)->tokenizer().vocab_size(), 512);
}

}  // namespace
}  // namespace bitnet
