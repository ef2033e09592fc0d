// The compiled path end to end (passes -> LLVM kernels -> executor) against the C++
// reference's outputs and against the interpreter: logits within 1e-3 over the first
// positions, greedy ids equal wherever the reference's top-2 margin exceeds 1e-3,
// stories260K's 200 greedy tokens equal llama2.c's, and no dependence on the thread count.
#include "compiler/jit_model.h"
#include "compiler/load_model.h"
#include "crossval_cases.h"
#include "npy.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "test_support.h"

#include <cmath>
#include <fstream>

namespace bitnet {
namespace {

using testing::CrossvalCase;
using testing::load_crossval_cases;

std::unique_ptr<runtime::Model> jit_model(const std::filesystem::path& path, const std::string& target = "host") {
  auto model = compiler::load_model(path.string());
  EXPECT_TRUE(model.ok()) << model.error().message;
  if (!model.ok()) return nullptr;
  auto status = compiler::attach_backend(**model, {.backend = "jit", .target = target});
  EXPECT_TRUE(status.ok()) << status.error().message;
  return std::move(*model);
}

std::unique_ptr<runtime::Session> session(const runtime::Model& model, bool all_logits, int64_t n_ctx = 512,
                                          int threads = 2) {
  auto s = model.new_session(all_logits, n_ctx, threads);
  EXPECT_TRUE(s.ok()) << s.error().message;
  if (!s.ok()) return nullptr;
  EXPECT_EQ((*s)->backend(), "jit");
  return std::move(*s);
}

TEST(JitEndToEnd, PromptLogitsMatchTheReference) {
  BITNET_REQUIRE_SHARED(shared);
  for (const CrossvalCase& c : load_crossval_cases(shared)) {
    SCOPED_TRACE(c.model + " " + c.seq);
    auto model = jit_model(shared / "models/bitnet-i2s" / (c.model + ".i2_s.gguf"));
    ASSERT_TRUE(model);
    auto s = session(*model, true);
    ASSERT_TRUE(s);
    auto out = s->run(c.tokens);
    ASSERT_TRUE(out.ok()) << out.error().message;
    const runtime::Matrix& logits = out->at("logits");
    auto want = testing::read_npy(shared / "crossval" / c.model / (c.seq + ".logits.npy"));
    ASSERT_TRUE(want.ok());
    double max_diff = 0;
    for (int64_t p = 0; p < std::min<int64_t>(4, logits.rows); ++p) {
      for (int64_t v = 0; v < logits.cols; ++v) {
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(logits.data[p * logits.cols + v]) -
                                                want->f32[static_cast<size_t>(p * logits.cols + v)]));
      }
    }
    EXPECT_LE(max_diff, 1e-3) << "max |diff| over the first 4 positions";
  }
}

TEST(JitEndToEnd, GreedyIdsMatchWhereTheMarginAllows) {
  BITNET_REQUIRE_SHARED(shared);
  for (const CrossvalCase& c : load_crossval_cases(shared)) {
    SCOPED_TRACE(c.model + " " + c.seq);
    auto model = jit_model(shared / "models/bitnet-i2s" / (c.model + ".i2_s.gguf"));
    ASSERT_TRUE(model);
    auto s = session(*model, true);
    ASSERT_TRUE(s);
    auto out = s->run(c.tokens);
    ASSERT_TRUE(out.ok());
    int32_t next = runtime::greedy_pick(out->at("logits").row(out->at("logits").rows - 1));
    size_t compared = 0;
    for (size_t step = 0; step < c.greedy_ids.size(); ++step) {
      // Once a choice is fragile, the reference itself could have gone either way: stop there.
      if (c.margins[step] <= 1e-3) break;
      ASSERT_EQ(next, c.greedy_ids[step]) << "step " << step << " (margin " << c.margins[step] << ")";
      ++compared;
      auto step_out = s->run(std::span<const int32_t>(&next, 1));
      ASSERT_TRUE(step_out.ok());
      next = runtime::greedy_pick(step_out->at("logits").row(0));
    }
    EXPECT_GT(compared, 0u);
  }
}

TEST(JitEndToEnd, Stories260KMatchesLlama2c) {
  BITNET_REQUIRE_SHARED(shared);
  for (const char* target : {"host", "x86-64-v3"}) {
    SCOPED_TRACE(target);
    auto model = jit_model(testing::source_dir() / "models/stories260K.gguf", target);
    ASSERT_TRUE(model);
    auto s = session(*model, false);
    ASSERT_TRUE(s);
    runtime::GenerateOptions o;
    o.n_predict = 200;
    o.sampling.greedy = true;
    o.stop_at_eog = false;
    auto result = runtime::generate(*s, model->tokenizer(), {1}, o);
    ASSERT_TRUE(result.ok()) << result.error().message;
    std::vector<int32_t> ids = result->generated_ids;
    if (auto bos = std::find(ids.begin(), ids.end(), 1); bos != ids.end()) ids.erase(bos, ids.end());
    std::ifstream in(shared / "models/llama2c/stories260K.run_c_greedy_n200.expected.txt", std::ios::binary);
    const std::string expected((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(model->tokenizer().decode(ids), expected);
  }
}

TEST(JitEndToEnd, CloseToTheInterpreterAndIndependentOfThreads) {
  BITNET_REQUIRE_SHARED(shared);
  const auto path = shared / "models/bitnet-i2s/b158-small-gqa.i2_s.gguf";
  auto interp_model = compiler::load_model(path.string());
  ASSERT_TRUE(interp_model.ok());
  auto jit = jit_model(path);
  ASSERT_TRUE(jit);
  const std::vector<int32_t> prompt = {1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278};
  auto ref_session = (*interp_model)->new_session(true, 64, 2);
  ASSERT_TRUE(ref_session.ok());
  auto want = (*ref_session)->run(prompt);
  ASSERT_TRUE(want.ok());
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    auto s = session(*jit, true, 64, threads);
    ASSERT_TRUE(s);
    auto got = s->run(prompt);
    ASSERT_TRUE(got.ok()) << got.error().message;
    const auto& g = got->at("logits").data;
    const auto& w = want->at("logits").data;
    double max_diff = 0;
    for (int64_t i = 0; i < 4 * 32000; ++i) max_diff = std::max(max_diff, std::fabs(static_cast<double>(g[i]) - w[i]));
    EXPECT_LE(max_diff, 1e-3) << threads << " threads, first 4 positions";
    if (first.empty()) {
      first = g;
    } else {
      EXPECT_EQ(g, first) << threads << " threads give other logits than 1 thread";
    }
  }
}

TEST(JitEndToEnd, LongPromptsRunInChunks) {
  // More tokens than the executor's arena holds at once (t_max 512) still match one batch.
  auto model = jit_model(testing::source_dir() / "models/stories260K.gguf");
  ASSERT_TRUE(model);
  std::vector<int32_t> tokens(600);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(3 + (i * 37) % 500);
  auto s = session(*model, true, 1024, 2);
  ASSERT_TRUE(s);
  auto out = s->run(tokens);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->at("logits").rows, 600);
  EXPECT_EQ(s->pos(), 600);
  auto last = session(*model, false, 1024, 2);
  auto last_out = last->run(tokens);
  ASSERT_TRUE(last_out.ok());
  ASSERT_EQ(last_out->at("logits").rows, 1);
  for (int64_t v = 0; v < 512; ++v) {
    EXPECT_NEAR(last_out->at("logits").data[v], out->at("logits").data[599 * 512 + v], 1e-4);
  }
}

TEST(JitEndToEnd, UnknownTargetsAndBackendsAreErrors) {
  auto model = compiler::load_model((testing::source_dir() / "models/stories260K.gguf").string());
  ASSERT_TRUE(model.ok());
  // The target is checked against this CPU before anything is compiled: an unknown one is an
  // error naming it, not a silent fall back to the interpreter.
  const Status unknown = compiler::attach_backend(**model, {.backend = "jit", .target = "sparc"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("sparc"), std::string::npos) << unknown.error().message;
  EXPECT_FALSE(compiler::attach_backend(**model, {.backend = "gpu"}).ok());
}

}  // namespace
}  // namespace bitnet
