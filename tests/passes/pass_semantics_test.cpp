// interpret(before) == interpret(after), bit for bit, for every pass of the default pipeline
// on the real small models (prompt and decode calls): each pass where the pipeline runs it,
// and each pass alone on the lowered graph.
#include "pass_test_util.h"
#include "passes/pass_manager.h"

#include <optional>

namespace bitnet {
namespace {

struct Loaded {
  gguf::GgufFile file;
  ir::Graph lowered;
};

// Fatal on failure (the caller wraps it in ASSERT_NO_FATAL_FAILURE): a model that does not
// load must stop the test, not be dereferenced.
void load(const std::filesystem::path& path, bool all_logits, std::optional<Loaded>& out) {
  auto file = gguf::GgufFile::open(path.string());
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto graph = gguf::lower_to_ir(*file, {.all_logits = all_logits});
  ASSERT_TRUE(graph.ok()) << graph.error().message;
  out.emplace(Loaded{std::move(*file), std::move(*graph)});
}

ir::Graph after(ir::Graph g, const passes::Pass& pass) {
  passes::PassManager pm;
  pm.add(pass);
  auto s = pm.run(g);
  EXPECT_TRUE(s.ok()) << pass.name << ": " << s.error().message;
  return g;
}

class PassSemantics : public ::testing::TestWithParam<bool> {};  // param: logits of every token

TEST_P(PassSemantics, EachPassInThePipelineKeepsEveryBit) {
  BITNET_REQUIRE_SHARED(shared);
  const passes::PassManager pipeline = passes::default_pipeline();
  for (const auto& path : testing::semantic_models(shared)) {
    SCOPED_TRACE(path.filename().string());
    std::optional<Loaded> loaded;
    ASSERT_NO_FATAL_FAILURE(load(path, GetParam(), loaded));
    Loaded& m = *loaded;
    ir::Graph g = m.lowered;
    std::vector<float> want = testing::run_prompt_and_decode(g, m.file);
    ASSERT_FALSE(want.empty());
    for (const passes::Pass& pass : pipeline.passes()) {
      SCOPED_TRACE(std::string(pass.name));
      g = after(std::move(g), pass);
      const std::vector<float> got = testing::run_prompt_and_decode(g, m.file);
      EXPECT_TRUE(testing::bit_identical(got, want));
      want = got;
    }
  }
}

TEST_P(PassSemantics, EachPassAloneKeepsEveryBit) {
  BITNET_REQUIRE_SHARED(shared);
  const passes::PassManager pipeline = passes::default_pipeline();
  for (const auto& path : testing::semantic_models(shared)) {
    SCOPED_TRACE(path.filename().string());
    std::optional<Loaded> loaded;
    ASSERT_NO_FATAL_FAILURE(load(path, GetParam(), loaded));
    const Loaded& m = *loaded;
    const std::vector<float> want = testing::run_prompt_and_decode(m.lowered, m.file);
    for (const passes::Pass& pass : pipeline.passes()) {
      SCOPED_TRACE(std::string(pass.name));
      EXPECT_TRUE(testing::bit_identical(testing::run_prompt_and_decode(after(m.lowered, pass), m.file), want));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Logits, PassSemantics, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "all" : "last"; });

// The fused graphs really are fused: the kernels per layer of ARCHITECTURE.md's decode step.
TEST(PassSemantics, KernelsPerLayer) {
  BITNET_REQUIRE_SHARED(shared);
  for (const auto& path : testing::semantic_models(shared)) {
    SCOPED_TRACE(path.filename().string());
    std::optional<Loaded> loaded;
    ASSERT_NO_FATAL_FAILURE(load(path, false, loaded));
    Loaded& m = *loaded;
    ASSERT_TRUE(passes::default_pipeline().run(m.lowered).ok());
    std::vector<std::string> layer0;
    for (const ir::Node& n : m.lowered.nodes()) {
      if (n.op != ir::OpKind::Weight && m.lowered.value(n.result).name.starts_with("blk0.")) {
        layer0.emplace_back(ir::op_name(n.op));
      }
    }
    const bool llama = path.filename() == "stories260K.gguf";
    const std::vector<std::string> want =
        llama ? std::vector<std::string>{"norm", "matmul_cat", "rope_attention", "matmul_add",
                                         "norm", "gated_ffn",  "matmul_add"}
              : std::vector<std::string>{"norm_quantize", "matmul_cat", "rope_attention", "norm_quantize", "matmul_add",
                                         "norm_quantize", "gated_ffn",  "norm_quantize",  "matmul_add"};
    EXPECT_EQ(layer0, want);
  }
}

}  // namespace
}  // namespace bitnet
