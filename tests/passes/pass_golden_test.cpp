// Golden IR per pass: a small graph before and after one pass, stored as text in
// tests/passes/golden/<case>.ir. Each file says which pass ran and shows what it matched and
// what it left alone (the negative cases). A mismatch writes the actual text to the build
// directory; BITNET_UPDATE_GOLDEN=1 rewrites the expected files.
#include "frontend_gguf/lowering.h"
#include "frontend_gguf/model_generator.h"
#include "ir/printer.h"
#include "passes/memory_plan.h"
#include "passes/pass_manager.h"
#include "test_support.h"

#include <cstdlib>
#include <fstream>

namespace bitnet {
namespace {

using ir::Dim;
using ir::DType;
using ir::Type;
using ir::ValueId;

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs `pass` on `g` and compares "before / after" with the golden file `name`.
void expect_pass_golden(const std::string& name, const std::string& what, ir::Graph g, const passes::Pass& pass) {
  std::string actual = fmt::format("// {} on {}\n// ----- before -----\n{}", pass.name, what, ir::print(g));
  passes::PassManager pm;
  pm.add(pass);
  auto s = pm.run(g);
  ASSERT_TRUE(s.ok()) << s.error().message;
  actual += fmt::format("// ----- after {} -----\n{}", pass.name, ir::print(g));
  const auto golden = testing::source_dir() / "tests/passes/golden" / (name + ".ir");
  if (const char* update = std::getenv("BITNET_UPDATE_GOLDEN"); update && std::string_view(update) == "1") {
    std::ofstream(golden, std::ios::binary) << actual;
  }
  if (actual != read_text(golden)) {
    const auto out = testing::binary_dir() / (name + ".actual.ir");
    std::ofstream(out, std::ios::binary) << actual;
    ADD_FAILURE() << name << " differs from " << golden << "\nactual written to " << out
                  << "\n(diff them; if the change is intended, rerun with BITNET_UPDATE_GOLDEN=1)";
  }
}

Type f32(std::vector<Dim> shape) {
  return Type::of(DType::F32, std::move(shape));
}
Type i2s(int64_t m, int64_t k) {
  return Type::of(DType::I2_S, {Dim{m}, Dim{k}});
}

// tokens -> embed [T, 16]: the start of every small graph.
ValueId embedded(ir::Builder& b) {
  const ValueId ids = *b.input_tokens();
  return *b.embed(*b.weight("embd", f32({Dim{32}, Dim{16}})), ids, "x");
}

TEST(PassGolden, FuseNorm) {
  ir::Graph g("fuse-norm");
  ir::Builder b(g);
  const ValueId x = embedded(b);
  // At most one argument of a builder call makes a node: the order in which a call's arguments
  // are evaluated is unspecified (GCC and clang differ), and the printed IR lists nodes in the
  // order they were made.
  const ValueId gain = *b.weight("gain", f32({Dim{16}}));
  const ValueId fused = *b.mul(*b.rms_norm(x, 1e-5f, "a.rms"), gain, "a");
  // Not fused: a scalar gain, and an rms_norm that is read twice.
  const ValueId s = *b.weight("s", f32({Dim{1}}));
  const ValueId scalar = *b.mul(*b.rms_norm(fused, 1e-5f, "b.rms"), s, "b");
  const ValueId twice = *b.rms_norm(scalar, 1e-6f, "c.rms");
  const ValueId c = *b.mul(twice, *b.weight("gain2", f32({Dim{16}})), "c");
  ASSERT_TRUE(b.output(*b.add(c, twice, "sum"), "out").ok());
  expect_pass_golden("fuse-norm", "norm gains (fused), a scalar gain and a shared rms_norm (kept)", std::move(g),
                     passes::fuse_norm());
}

TEST(PassGolden, FuseNormQuantize) {
  ir::Graph g("fuse-norm-quantize");
  ir::Builder b(g);
  const ValueId x = embedded(b);
  const ValueId gain = *b.weight("gain", f32({Dim{16}}));
  const ValueId n1 = *g.add(ir::OpKind::Norm, {x, gain}, {{"eps", 1e-5}}, "attn_norm");
  const ValueId wq = *b.weight("wq", i2s(16, 16));  // before the quantize_i8: see FuseNorm
  const ValueId y = *b.matmul(*b.quantize_i8(n1, "attn_norm.q8"), wq, "y");
  // Not fused: the float row is needed too.
  const ValueId n2 = *g.add(ir::OpKind::Norm, {y, gain}, {{"eps", 1e-5}}, "ffn_norm");
  const ValueId wz = *b.weight("wz", i2s(16, 16));
  const ValueId z = *b.matmul(*b.quantize_i8(n2, "ffn_norm.q8"), wz, "z");
  ASSERT_TRUE(b.output(*b.add(z, n2, "sum"), "out").ok());
  expect_pass_golden("fuse-norm-quantize", "a norm read only by quantize_i8 (fused) and one also read by add (kept)",
                     std::move(g), passes::fuse_norm_quantize());
}

// Q/K/V products, rope and attention as the lowering writes them; `v_input` feeds V.
ValueId attention_block(ir::Builder& b, ValueId x, ValueId v_input, int64_t layer) {
  const std::string p = fmt::format("l{}.", layer);
  const ValueId q = *b.matmul(x, *b.weight(p + "wq", f32({Dim{16}, Dim{16}})), p + "q");
  const ValueId k = *b.matmul(x, *b.weight(p + "wk", f32({Dim{8}, Dim{16}})), p + "k");
  const ValueId v = *b.matmul(v_input, *b.weight(p + "wv", f32({Dim{8}, Dim{16}})), p + "v");
  const ValueId qr = *b.rope(q, "neox", 4, 4, 10000.0f, 1.0f, p + "q.rope");
  const ValueId kr = *b.rope(k, "neox", 2, 4, 10000.0f, 1.0f, p + "k.rope");
  return *b.attention(qr, kr, v, layer, 4, 2, 4, p + "attn");
}

TEST(PassGolden, FuseRopeAttention) {
  ir::Graph g("fuse-rope-attention");
  ir::Builder b(g);
  const ValueId x = embedded(b);
  const ValueId a0 = attention_block(b, x, x, 0);
  // Not fused: V is a product of another input.
  const ValueId a1 = attention_block(b, a0, x, 1);
  ASSERT_TRUE(b.output(a1, "out").ok());
  expect_pass_golden("fuse-rope-attention", "QKV of one input (fused) and V of another input (kept)", std::move(g),
                     passes::fuse_rope_attention());
}

TEST(PassGolden, FuseGatedFfn) {
  ir::Graph g("fuse-gated-ffn");
  ir::Builder b(g);
  const ValueId x = embedded(b);
  const ValueId gate = *b.matmul(x, *b.weight("w_gate", f32({Dim{16}, Dim{16}})), "gate");
  const ValueId up = *b.matmul(x, *b.weight("w_up", f32({Dim{16}, Dim{16}})), "up");
  const ValueId h = *b.mul(*b.silu(gate, "gate.silu"), up, "ffn");
  // Not fused: `up2` is read twice.
  const ValueId gate2 = *b.matmul(h, *b.weight("w_gate2", f32({Dim{16}, Dim{16}})), "gate2");
  const ValueId up2 = *b.matmul(h, *b.weight("w_up2", f32({Dim{16}, Dim{16}})), "up2");
  const ValueId h2 = *b.mul(*b.relu2(gate2, "gate2.relu2"), up2, "ffn2");
  ASSERT_TRUE(b.output(*b.add(h2, up2, "sum"), "out").ok());
  expect_pass_golden("fuse-gated-ffn", "silu gate/up of one input (fused) and relu2 with a shared up (kept)",
                     std::move(g), passes::fuse_gated_ffn());
}

TEST(PassGolden, FuseResidual) {
  ir::Graph g("fuse-residual");
  ir::Builder b(g);
  const ValueId x = embedded(b);
  const ValueId wo = *b.weight("wo", i2s(16, 16));  // before the quantize_i8: see FuseNorm
  const ValueId o = *b.matmul(*b.quantize_i8(x, "x.q8"), wo, "o");
  const ValueId h = *b.add(x, o, "h");
  // Not fused: a product read twice (d), and a product as the first operand (e).
  const ValueId d = *b.matmul(h, *b.weight("wd", f32({Dim{16}, Dim{16}})), "d");
  const ValueId y = *b.add(h, d, "y");
  const ValueId e = *b.matmul(y, *b.weight("we", f32({Dim{16}, Dim{16}})), "e");
  const ValueId z = *b.add(e, d, "z");
  ASSERT_TRUE(b.output(z, "out").ok());
  expect_pass_golden("fuse-residual", "add(r, matmul) (fused), a shared product and add(matmul, r) (kept)",
                     std::move(g), passes::fuse_residual());
}

// The lowered `test` preset (2 layers, GQA, I2_S) after every pass before `pass`.
ir::Graph preset_before(std::string_view pass) {
  testing::TempDir dir;
  const auto path = (dir / "test.gguf").string();
  auto spec = gguf::model_preset("test");
  EXPECT_TRUE(gguf::generate_model(*spec, path).ok());
  auto file = gguf::GgufFile::open(path);
  auto graph = gguf::lower_to_ir(*file, {});
  EXPECT_TRUE(graph.ok());
  passes::PassManager prefix;
  const passes::PassManager pipeline = passes::default_pipeline();
  for (const passes::Pass& p : pipeline.passes()) {
    if (p.name == pass) break;
    prefix.add(p);
  }
  EXPECT_TRUE(prefix.run(*graph).ok());
  return std::move(*graph);
}

TEST(PassGolden, ScheduleAndPlanMemoryOnThePresetModel) {
  expect_pass_golden("schedule", "the fused test preset (the kernels property)", preset_before("schedule"),
                     passes::schedule());
  expect_pass_golden("plan-memory", "the fused test preset (t_max 4: the arena_bytes property)",
                     preset_before("plan-memory"), passes::plan_memory_pass(4));
}

}  // namespace
}  // namespace bitnet
