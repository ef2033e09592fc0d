// The default pipeline as a whole: its order, the T_max option, and the pass options reaching
// the pipeline that compiler::load_model runs (what `bitnet run --time-passes` relies on).
#include "compiler/load_model.h"
#include "passes/pass_manager.h"
#include "runtime/model.h"
#include "test_support.h"

namespace bitnet {
namespace {

TEST(Pipeline, Order) {
  std::vector<std::string> names;
  const passes::PassManager pipeline = passes::default_pipeline();
  for (const passes::Pass& p : pipeline.passes()) {
    names.emplace_back(p.name);
    EXPECT_FALSE(p.summary.empty()) << p.name;
  }
  const std::vector<std::string> want = {
      "share-quantize", "dce",           "fuse-norm", "fuse-norm-quantize", "fuse-rope-attention",
      "fuse-gated-ffn", "fuse-residual", "dce",       "schedule",           "plan-memory"};
  EXPECT_EQ(names, want);
}

// rope_attention appends to the KV cache: dce must keep it even when its result is unused.
TEST(Pipeline, DceKeepsRopeAttention) {
  ir::Graph g("dce");
  ir::Builder b(g);
  const auto x = *b.embed(*b.weight("e", ir::Type::of(ir::DType::F32, {ir::Dim{10}, ir::Dim{32}})), *b.input_tokens());
  ASSERT_TRUE(g.add(ir::OpKind::RopeAttention, {x},
                    {{"layer", int64_t{0}},
                     {"n_head", int64_t{2}},
                     {"n_head_kv", int64_t{1}},
                     {"head_dim", int64_t{8}},
                     {"style", std::string("neox")},
                     {"freq_base", 1e4},
                     {"freq_scale", 1.0}},
                    "kv_side_effect")
                  .ok());
  ASSERT_TRUE(b.output(x, "out").ok());
  passes::PassManager pm;
  pm.add(passes::dead_code_elimination());
  ASSERT_TRUE(pm.run(g).ok());
  EXPECT_EQ(g.nodes().size(), 5u);
}

TEST(Pipeline, ModelLoadPassesTheOptionsOn) {
  std::string log;
  compiler::LoadOptions options;
  options.passes.time_passes = true;
  options.passes.print_after = {"fuse-residual"};
  options.passes.sink = [&](std::string_view s) { log += s; };
  auto model = compiler::load_model((testing::source_dir() / "models/stories260K.gguf").string(), options);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_NE(log.find("pass plan-memory"), std::string::npos);
  EXPECT_NE(log.find("// ----- IR after fuse-residual -----"), std::string::npos);
  EXPECT_EQ(log.find("IR after dce"), std::string::npos);
  // The graphs the model runs are the fused ones.
  int fused = 0;
  for (const ir::Node& n : (*model)->graph(false).nodes()) fused += n.op == ir::OpKind::RopeAttention;
  EXPECT_EQ(fused, 5);
}

// A misspelt --print-after is an error naming the passes, before any pass runs.
TEST(Pipeline, PrintAfterAnUnknownPassIsAnError) {
  ir::Graph g("empty");
  ir::Builder b(g);
  ASSERT_TRUE(b.output(*b.input_tokens(), "out").ok());
  std::string log;
  passes::PassOptions options;
  options.print_after = {"fuse-residual", "fuse-nrm"};
  options.sink = [&](std::string_view s) { log += s; };
  const auto status = passes::default_pipeline().run(g, options);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("no pass named 'fuse-nrm'"), std::string::npos) << status.error().message;
  EXPECT_NE(status.error().message.find("fuse-norm-quantize, fuse-rope-attention"), std::string::npos);
  EXPECT_TRUE(log.empty()) << log;
}

}  // namespace
}  // namespace bitnet
