// The IR: builder type inference, the verifier's checks, and the printer's format.
#include "ir/graph.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/pass_manager.h"

#include <gtest/gtest.h>

namespace bitnet::ir {
namespace {

Type f32(std::vector<int64_t> dims) {
  Type t{DType::F32, {}};
  for (int64_t d : dims) t.shape.push_back(d < 0 ? Dim::tokens() : Dim{d});
  return t;
}

// A two-layer toy: embed -> norm -> quantize -> matmul -> output.
Graph toy() {
  Graph g("toy");
  Builder b(g);
  const ValueId ids = *b.input_tokens();
  const ValueId table = *b.weight("token_embd.weight", Type::of(DType::F16, {Dim{100}, Dim{128}}));
  const ValueId x = *b.embed(table, ids);
  const ValueId n = *b.rms_norm(x, 1e-5f);
  const ValueId gain = *b.weight("norm.weight", f32({128}));
  const ValueId h = *b.mul(n, gain);
  const ValueId w = *b.weight("proj.weight", Type::of(DType::I2_S, {Dim{256}, Dim{128}}));
  const ValueId q = *b.quantize_i8(h);
  const ValueId y = *b.matmul(q, w, "y");
  EXPECT_TRUE(b.output(y, "logits").ok());
  return g;
}

TEST(Ir, BuilderInfersTypes) {
  const Graph g = toy();
  ASSERT_TRUE(verify(g).ok()) << verify(g).error().message;
  EXPECT_EQ(to_string(g.value(g.outputs()[0]->result).type), "f32[T, 256]");
  EXPECT_EQ(to_string(g.value(3).type), "f32[T, 128]");
}

TEST(Ir, PrinterIsStable) {
  const Graph g = toy();
  EXPECT_EQ(print(g),
            "graph \"toy\" {\n"
            "  %tokens = input.tokens : i32[T]\n"
            "  @token_embd.weight = weight : f16[100, 128]\n"
            "  %embd = embed @token_embd.weight, %tokens : f32[T, 128]\n"
            "  %norm = rms_norm %embd {eps = 1e-05} : f32[T, 128]\n"
            "  @norm.weight = weight : f32[128]\n"
            "  %mul = mul %norm, @norm.weight : f32[T, 128]\n"
            "  @proj.weight = weight : i2_s[256, 128]\n"
            "  %q8 = quantize_i8 %mul : i8q[T, 128]\n"
            "  %y = matmul %q8, @proj.weight : f32[T, 256]\n"
            "  %logits = output %y {name = \"logits\"} : f32[T, 256]\n"
            "}\n");
}

TEST(Ir, BuilderRejectsBadOperands) {
  Graph g;
  Builder b(g);
  const ValueId ids = *b.input_tokens();
  const ValueId w = *b.weight("w", Type::of(DType::Q8_0, {Dim{64}, Dim{32}}));
  const ValueId x = *b.embed(*b.weight("e", Type::of(DType::F32, {Dim{10}, Dim{48}})), ids);
  // Inner dims differ.
  auto mm = b.matmul(x, w);
  ASSERT_FALSE(mm.ok());
  EXPECT_NE(mm.error().message.find("inner dims differ"), std::string::npos);
  // i8q activations only multiply i2_s.
  auto q = b.quantize_i8(*b.embed(*b.weight("e2", Type::of(DType::F32, {Dim{10}, Dim{32}})), ids));
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(b.matmul(*q, w).ok());
  // Undefined operand, wrong operand count, missing and unknown attributes.
  EXPECT_FALSE(g.add(OpKind::Silu, {999}).ok());
  EXPECT_FALSE(g.add(OpKind::Add, {x}).ok());
  EXPECT_FALSE(g.add(OpKind::RmsNorm, {x}).ok());
  EXPECT_FALSE(g.add(OpKind::Silu, {x}, {{"bogus", int64_t{1}}}).ok());
  EXPECT_FALSE(g.add(OpKind::RmsNorm, {x}, {{"eps", std::string("x")}}).ok());
  // Weights must be static weight types; rope heads must tile the row.
  EXPECT_FALSE(b.weight("t", Type::of(DType::I8Q, {Dim{4}})).ok());
  EXPECT_FALSE(b.weight("t2", Type::of(DType::F32, {Dim::tokens()})).ok());
  EXPECT_FALSE(b.rope(x, "neox", 5, 8, 10000.f, 1.f).ok());
  EXPECT_FALSE(b.rope(x, "sideways", 6, 8, 10000.f, 1.f).ok());
  EXPECT_FALSE(b.attention(x, x, x, 0, 6, 4, 8).ok());  // 6 heads not a multiple of 4
}

TEST(Ir, VerifierCatchesCorruption) {
  {
    Graph g = toy();
    g.mutable_nodes()[5].operands[0] = 7;  // use before definition
    auto s = verify(g);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("not defined before use"), std::string::npos);
  }
  {
    Graph g = toy();
    g.mutable_nodes()[3].attrs.clear();  // rms_norm without eps
    auto s = verify(g);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("missing attribute 'eps'"), std::string::npos);
  }
  {
    Graph g = toy();
    g.mutable_nodes()[8].operands = {7, 3};  // matmul with a non-weight operand: types change
    EXPECT_FALSE(verify(g).ok());
  }
  {
    Graph g = toy();
    g.mutable_nodes().back().result = 2;  // value defined twice
    auto s = verify(g);
    ASSERT_FALSE(s.ok());
  }
  {
    Graph g("no outputs");
    Builder b(g);
    ASSERT_TRUE(b.input_tokens().ok());
    auto s = verify(g);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("no outputs"), std::string::npos);
  }
}

TEST(Ir, UniqueNames) {
  Graph g;
  Builder b(g);
  const ValueId ids = *b.input_tokens();
  const ValueId x = *b.embed(*b.weight("e", Type::of(DType::F32, {Dim{10}, Dim{8}})), ids, "h");
  const ValueId y = *b.silu(x, "h");
  const ValueId z = *b.silu(y, "h.1");
  const ValueId w = *b.silu(z, "h");
  EXPECT_EQ(g.value(x).name, "h");
  EXPECT_EQ(g.value(y).name, "h.1");
  EXPECT_NE(g.value(z).name, "h.1");
  EXPECT_NE(g.value(w).name, g.value(z).name);
  ASSERT_TRUE(b.output(w, "out").ok());
  EXPECT_TRUE(verify(g).ok());
}

TEST(Passes, ShareQuantizeThenDce) {
  Graph g("share");
  Builder b(g);
  const ValueId ids = *b.input_tokens();
  const ValueId x = *b.embed(*b.weight("e", Type::of(DType::F32, {Dim{10}, Dim{128}})), ids);
  const ValueId w1 = *b.weight("w1", Type::of(DType::I2_S, {Dim{128}, Dim{128}}));
  const ValueId w2 = *b.weight("w2", Type::of(DType::I2_S, {Dim{128}, Dim{128}}));
  const ValueId a = *b.matmul(*b.quantize_i8(x), w1);
  const ValueId c = *b.matmul(*b.quantize_i8(x), w2);
  ASSERT_TRUE(b.output(*b.add(a, c), "out").ok());
  size_t quantizes = 0;
  for (const auto& n : g.nodes()) quantizes += n.op == OpKind::QuantizeI8;
  EXPECT_EQ(quantizes, 2u);
  passes::PassManager pm;  // just these two: the fusions would fold the add into a matmul_add
  pm.add(passes::share_activation_quantization());
  pm.add(passes::dead_code_elimination());
  auto s = pm.run(g);
  ASSERT_TRUE(s.ok()) << s.error().message;
  quantizes = 0;
  for (const auto& n : g.nodes()) quantizes += n.op == OpKind::QuantizeI8;
  EXPECT_EQ(quantizes, 1u);
  // Both products now read the same quantized value.
  std::vector<ValueId> inputs;
  for (const auto& n : g.nodes()) {
    if (n.op == OpKind::MatMul) inputs.push_back(n.operands[0]);
  }
  ASSERT_EQ(inputs.size(), 2u);
  EXPECT_EQ(inputs[0], inputs[1]);
}

TEST(Passes, DceKeepsAttentionAndOutputs) {
  Graph g("dce");
  Builder b(g);
  const ValueId ids = *b.input_tokens();
  const ValueId x = *b.embed(*b.weight("e", Type::of(DType::F32, {Dim{10}, Dim{16}})), ids);
  ASSERT_TRUE(b.silu(x, "dead").ok());
  ASSERT_TRUE(b.attention(x, x, x, 0, 2, 2, 8, "kv_side_effect").ok());
  ASSERT_TRUE(b.output(x, "out").ok());
  auto s = passes::default_pipeline().run(g);
  ASSERT_TRUE(s.ok());
  const std::string text = print(g);
  EXPECT_EQ(text.find("%dead"), std::string::npos);
  EXPECT_NE(text.find("%kv_side_effect"), std::string::npos);
}

TEST(Passes, PrintAfterAndTiming) {
  Graph g = toy();
  std::string log;
  passes::PassOptions options;
  options.print_after = {"dce"};
  options.time_passes = true;
  options.sink = [&](std::string_view s) { log += s; };
  ASSERT_TRUE(passes::default_pipeline().run(g, options).ok());
  EXPECT_NE(log.find("// ----- IR after dce -----"), std::string::npos);
  EXPECT_EQ(log.find("IR after share-quantize"), std::string::npos);
  EXPECT_NE(log.find("pass share-quantize"), std::string::npos);
}

}  // namespace
}  // namespace bitnet::ir
