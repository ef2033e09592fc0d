// The reference interpreter against the C++ reference's outputs in ../shared/crossval:
// prompt-mode logits, decode-mode logits and greedy generation, bit for bit, with and
// without the optimisation passes, and independent of the thread count.
#include "crossval_cases.h"
#include "frontend_gguf/lowering.h"
#include "npy.h"
#include "passes/pass_manager.h"
#include "reference/interpreter.h"
#include "runtime/sampler.h"
#include "test_support.h"

#include <cmath>

namespace bitnet::runtime {
namespace {

using reference::Interpreter;

using testing::CrossvalCase;
using testing::load_crossval_cases;

// A model file, its lowered (optionally optimised) graph, and interpreters over it.
struct Fixture {
  gguf::GgufFile file;
  ir::Graph graph;

  static Fixture load(const std::filesystem::path& path, bool optimize) {
    auto file = gguf::GgufFile::open(path.string());
    EXPECT_TRUE(file.ok()) << file.error().message;
    auto graph = gguf::lower_to_ir(*file, {.all_logits = true});
    EXPECT_TRUE(graph.ok()) << graph.error().message;
    if (optimize) {
      auto s = passes::default_pipeline().run(*graph);
      EXPECT_TRUE(s.ok()) << s.error().message;
    }
    return Fixture{std::move(*file), std::move(*graph)};
  }
  std::unique_ptr<Interpreter> session(int threads = 2) const {
    auto interp = Interpreter::create(graph, file, {512, threads});
    EXPECT_TRUE(interp.ok()) << interp.error().message;
    return std::move(*interp);
  }
};

// max |a - b| over a row range, and the number of differing values.
struct Diff {
  double max_abs = 0;
  int64_t differing = 0;
};
Diff compare(std::span<const float> got, std::span<const float> want) {
  Diff d;
  for (size_t i = 0; i < want.size(); ++i) {
    const double delta = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (got[i] != want[i]) ++d.differing;
    d.max_abs = std::max(d.max_abs, std::isnan(delta) ? INFINITY : delta);
  }
  return d;
}

std::filesystem::path model_path(const std::filesystem::path& shared, const std::string& name) {
  return shared / "models/bitnet-i2s" / (name + ".i2_s.gguf");
}

testing::NpyArray read_reference(const std::filesystem::path& path) {
  auto a = testing::read_npy(path);
  EXPECT_TRUE(a.ok()) << path << ": " << (a.ok() ? "" : a.error().message);
  return a.ok() ? std::move(*a) : testing::NpyArray{};
}

class CrossVal : public ::testing::TestWithParam<bool> {};  // param: optimised graph

TEST_P(CrossVal, PromptLogitsBitExact) {
  BITNET_REQUIRE_SHARED(shared);
  for (const CrossvalCase& c : load_crossval_cases(shared)) {
    SCOPED_TRACE(c.model + " " + c.seq);
    const Fixture f = Fixture::load(model_path(shared, c.model), GetParam());
    auto session = f.session();
    auto out = session->run(c.tokens);
    ASSERT_TRUE(out.ok()) << out.error().message;
    const Matrix& logits = out->at("logits");
    const auto want = read_reference(shared / "crossval" / c.model / (c.seq + ".logits.npy"));
    ASSERT_EQ(logits.rows, want.shape[0]);
    ASSERT_EQ(logits.cols, want.shape[1]);
    const Diff d = compare(logits.data, want.f32);
    EXPECT_EQ(d.differing, 0) << "max |diff| = " << d.max_abs;
  }
}

TEST_P(CrossVal, DecodeLogitsBitExact) {
  BITNET_REQUIRE_SHARED(shared);
  for (const CrossvalCase& c : load_crossval_cases(shared)) {
    if (c.seq != "seq16") continue;
    SCOPED_TRACE(c.model);
    const Fixture f = Fixture::load(model_path(shared, c.model), GetParam());
    auto session = f.session();
    const auto want = read_reference(shared / "crossval" / c.model / "seq16.decode_logits.npy");
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      auto out = session->run(std::span<const int32_t>(&c.tokens[i], 1));
      ASSERT_TRUE(out.ok()) << out.error().message;
      const Matrix& logits = out->at("logits");
      const std::span<const float> row(want.f32.data() + i * logits.cols, static_cast<size_t>(logits.cols));
      const Diff d = compare(logits.data, row);
      EXPECT_EQ(d.differing, 0) << "position " << i << ": max |diff| = " << d.max_abs;
    }
  }
}

TEST_P(CrossVal, GreedyGenerationBitExact) {
  BITNET_REQUIRE_SHARED(shared);
  for (const CrossvalCase& c : load_crossval_cases(shared)) {
    if (c.greedy_ids.empty()) continue;
    SCOPED_TRACE(c.model + " " + c.seq);
    const Fixture f = Fixture::load(model_path(shared, c.model), GetParam());
    auto session = f.session();
    testing::NpyArray want;  // logits of every step, where the reference kept them
    if (c.has_gen_logits) want = read_reference(shared / "crossval" / c.model / (c.seq + ".gen_logits.npy"));
    // As the reference program did: the prompt in one call with all logits, then one call per token.
    auto out = session->run(c.tokens);
    ASSERT_TRUE(out.ok()) << out.error().message;
    int32_t next = greedy_pick(out->at("logits").row(out->at("logits").rows - 1));
    std::vector<int32_t> generated;
    for (size_t step = 0; step < c.greedy_ids.size(); ++step) {
      generated.push_back(next);
      auto step_out = session->run(std::span<const int32_t>(&next, 1));
      ASSERT_TRUE(step_out.ok()) << step_out.error().message;
      const Matrix& logits = step_out->at("logits");
      if (c.has_gen_logits) {
        const std::span<const float> row(want.f32.data() + step * logits.cols, static_cast<size_t>(logits.cols));
        const Diff d = compare(logits.data, row);
        EXPECT_EQ(d.differing, 0) << "step " << step << ": max |diff| = " << d.max_abs;
      }
      next = greedy_pick(logits.data);
    }
    EXPECT_EQ(generated, c.greedy_ids);
  }
}

INSTANTIATE_TEST_SUITE_P(Graphs, CrossVal, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "optimized" : "lowered"; });

TEST(Interpreter, ResultsDoNotDependOnThreads) {
  BITNET_REQUIRE_SHARED(shared);
  const Fixture f = Fixture::load(model_path(shared, "b158-small-gqa"), true);
  const std::vector<int32_t> tokens = {1, 450, 4996, 17354, 1701, 29916, 432, 17204};
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    auto session = f.session(threads);
    auto out = session->run(tokens);
    ASSERT_TRUE(out.ok());
    if (first.empty()) {
      first = out->at("logits").data;
    } else {
      EXPECT_EQ(out->at("logits").data, first) << threads << " threads";
    }
  }
}

TEST(Interpreter, RejectsBadBatches) {
  BITNET_REQUIRE_SHARED(shared);
  const Fixture f = Fixture::load(model_path(shared, "b158-tiny-gqa"), true);
  auto interp = Interpreter::create(f.graph, f.file, {8, 1});
  ASSERT_TRUE(interp.ok());
  auto& s = **interp;
  EXPECT_FALSE(s.run(std::vector<int32_t>{}).ok());
  auto bad_id = s.run(std::vector<int32_t>{1, 32000});
  ASSERT_FALSE(bad_id.ok());
  EXPECT_NE(bad_id.error().message.find("32000"), std::string::npos);
  EXPECT_FALSE(s.run(std::vector<int32_t>{-1}).ok());
  EXPECT_EQ(s.pos(), 0);
  ASSERT_TRUE(s.run(std::vector<int32_t>{1, 2, 3, 4, 5, 6}).ok());
  auto full = s.run(std::vector<int32_t>{7, 8, 9});
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.error().message.find("context"), std::string::npos);
  EXPECT_EQ(s.pos(), 6);
}

}  // namespace
}  // namespace bitnet::runtime
