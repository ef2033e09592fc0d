// retarget_lm_head: the logits matmul of an F16 head reads `<source>@q8_0` (or q6_k) of the
// same shape, inserted just before it, while the embed keeps the original table; f16 and heads
// that are not F16 leave the graph as it was; what cannot be requantized is refused.
#include "passes/lm_head.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "pass_test_util.h"
#include "passes/pass_manager.h"
#include "passes/schedule.h"

namespace bitnet {
namespace {

using ir::DType;

// tokens -> embed(table) -> logits = matmul(embd, table): the smallest tied-head graph.
ir::Graph tied_graph(DType table_dtype, int64_t cols) {
  ir::Graph g("tied");
  ir::Builder b(g);
  auto tokens = b.input_tokens();
  auto table = b.weight("token_embd.weight", ir::Type::of(table_dtype, {ir::Dim{64}, ir::Dim{cols}}));
  auto embd = b.embed(*table, *tokens);
  auto logits = b.matmul(*embd, *table, "logits.mm");
  EXPECT_TRUE(b.output(*logits, "logits").ok());
  return g;
}

const ir::Node& node_of(const ir::Graph& g, ir::OpKind op) {
  for (const ir::Node& n : g.nodes()) {
    if (n.op == op) return n;
  }
  ADD_FAILURE() << "no " << ir::op_name(op);
  return g.nodes().front();
}

TEST(LmHead, RetargetsTheTiedHeadAndKeepsTheEmbed) {
  for (DType dtype : {DType::Q8_0, DType::Q6_K}) {
    ir::Graph g = tied_graph(DType::F16, 256);
    auto head = passes::retarget_lm_head(g, dtype);
    ASSERT_TRUE(head.ok()) << head.error().message;
    const std::string name = "token_embd.weight@" + std::string(ir::dtype_name(dtype));
    EXPECT_EQ(head->source, "token_embd.weight");
    EXPECT_EQ(head->tensor, name);
    EXPECT_TRUE(head->retargeted());
    EXPECT_EQ(head->type, ir::Type::of(dtype, {ir::Dim{64}, ir::Dim{256}}));
    ASSERT_TRUE(ir::verify(g).ok()) << ir::verify(g).error().message;
    EXPECT_EQ(g.nodes().size(), 6u);  // one weight node more
    const ir::Node& mm = node_of(g, ir::OpKind::MatMul);
    EXPECT_EQ(g.def(mm.operands[1]).attr_string("tensor"), name);
    EXPECT_EQ(g.def(node_of(g, ir::OpKind::Embed).operands[0]).attr_string("tensor"), "token_embd.weight");
    // The new weight sits just before the matmul, as lowering places weights.
    EXPECT_EQ(&g.nodes()[static_cast<size_t>(g.value(mm.result).def) - 1], &g.def(mm.operands[1]));
    // find_lm_head reads the source back from the name (what a plan's graph has).
    auto found = passes::find_lm_head(g);
    ASSERT_TRUE(found.ok());
    EXPECT_EQ(found->source, "token_embd.weight");
    EXPECT_EQ(found->tensor, name);
    EXPECT_NE(ir::print(g).find("@" + name + " = weight : " + std::string(ir::dtype_name(dtype)) + "[64, 256]"),
              std::string::npos)
        << ir::print(g);
  }
}

TEST(LmHead, F16AndHeadsThatAreNotF16AreLeftAlone) {
  ir::Graph g = tied_graph(DType::F16, 256);
  const std::string before = ir::print(g);
  auto head = passes::retarget_lm_head(g, DType::F16);
  ASSERT_TRUE(head.ok());
  EXPECT_FALSE(head->retargeted());
  EXPECT_EQ(ir::print(g), before);

  ir::Graph f32 = tied_graph(DType::F32, 256);
  const std::string f32_before = ir::print(f32);
  head = passes::retarget_lm_head(f32, DType::Q8_0);
  ASSERT_TRUE(head.ok());
  EXPECT_FALSE(head->retargeted());
  EXPECT_EQ(head->type.dtype, DType::F32);
  EXPECT_EQ(ir::print(f32), f32_before);
}

TEST(LmHead, RefusesWhatCannotBeRequantized) {
  ir::Graph g = tied_graph(DType::F16, 64);
  auto q6 = passes::retarget_lm_head(g, DType::Q6_K);  // 64 columns: not one 256-weight block
  ASSERT_FALSE(q6.ok());
  EXPECT_NE(q6.error().message.find("multiple of q6_k"), std::string::npos) << q6.error().message;
  EXPECT_FALSE(passes::retarget_lm_head(g, DType::I2_S).ok());
  ASSERT_TRUE(passes::retarget_lm_head(g, DType::Q8_0).ok());
  auto twice = passes::retarget_lm_head(g, DType::Q8_0);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message.find("already"), std::string::npos);
}

TEST(LmHead, TheSharedModelsThroughThePipeline) {
  BITNET_REQUIRE_SHARED(shared);
  for (const char* name : {"b158-tiny-gqa", "bitnet-tiny-mha", "b158-small-gqa"}) {
    SCOPED_TRACE(name);
    auto file = gguf::GgufFile::open((shared / "models/bitnet-i2s" / (std::string(name) + ".i2_s.gguf")).string());
    ASSERT_TRUE(file.ok());
    for (bool all : {false, true}) {
      auto plain = gguf::lower_to_ir(*file, {.all_logits = all});
      ASSERT_TRUE(plain.ok());
      ir::Graph retargeted = *plain;
      ASSERT_TRUE(passes::retarget_lm_head(retargeted, DType::Q8_0).ok());
      ASSERT_TRUE(passes::default_pipeline().run(*plain).ok());
      ASSERT_TRUE(passes::default_pipeline().run(retargeted).ok());
      // The same kernels (the head's matmul only reads another weight), one weight node more.
      EXPECT_EQ(passes::kernel_count(retargeted), passes::kernel_count(*plain));
      EXPECT_EQ(retargeted.nodes().size(), plain->nodes().size() + 1);
      auto head = passes::find_lm_head(retargeted);
      ASSERT_TRUE(head.ok());
      EXPECT_EQ(head->tensor, "token_embd.weight@q8_0");
    }
  }
}

}  // namespace
}  // namespace bitnet
