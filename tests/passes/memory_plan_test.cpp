// The memory plan: checked against an independent liveness computation (no two values live
// at the same node share a byte), alignment, reuse, and end to end: the interpreter keeping
// every activation only in the planned arena gives the same logits bit for bit.
#include "passes/memory_plan.h"
#include "frontend_gguf/model_generator.h"
#include "pass_test_util.h"
#include "passes/pass_manager.h"

namespace bitnet {
namespace {

// The graphs under test: the fused and the lowered graph of each model file.
std::vector<ir::Graph> graphs_of(const std::filesystem::path& path) {
  auto file = gguf::GgufFile::open(path.string());
  EXPECT_TRUE(file.ok()) << file.error().message;
  std::vector<ir::Graph> out;
  for (bool all : {false, true}) {
    auto g = gguf::lower_to_ir(*file, {.all_logits = all});
    EXPECT_TRUE(g.ok());
    out.push_back(*g);
    EXPECT_TRUE(passes::default_pipeline().run(*g).ok());
    out.push_back(std::move(*g));
  }
  return out;
}

// Checks one plan without trusting its own live ranges.
void check_plan(const ir::Graph& g, const passes::MemoryPlan& plan) {
  const auto& nodes = g.nodes();
  const auto n_nodes = static_cast<int32_t>(nodes.size());
  // Liveness from scratch: def index, last reader, outputs (and what they mark) to the end.
  std::vector<int32_t> def(g.values().size(), -1);
  std::vector<int32_t> last(g.values().size(), -1);
  std::vector<ir::ValueId> owner(g.values().size(), -1);  // the value whose memory this is
  for (int32_t i = 0; i < n_nodes; ++i) {
    const ir::Node& n = nodes[static_cast<size_t>(i)];
    def[static_cast<size_t>(n.result)] = last[static_cast<size_t>(n.result)] = i;
    owner[static_cast<size_t>(n.result)] = n.result;
    for (ir::ValueId v : n.operands) last[static_cast<size_t>(v)] = i;
    if (n.op == ir::OpKind::Output) owner[static_cast<size_t>(n.result)] = owner[static_cast<size_t>(n.operands[0])];
  }
  for (const ir::Node& n : nodes) {
    if (n.op == ir::OpKind::Output) last[static_cast<size_t>(owner[static_cast<size_t>(n.result)])] = n_nodes;
  }
  int64_t total = 0;
  std::vector<ir::ValueId> owners;
  for (const ir::Node& n : nodes) {
    const passes::Slot& s = plan.slots[static_cast<size_t>(n.result)];
    if (n.op == ir::OpKind::Weight) {
      EXPECT_LT(s.offset, 0);
      continue;
    }
    if (n.op == ir::OpKind::Output) {
      const passes::Slot& target = plan.slots[static_cast<size_t>(n.operands[0])];
      EXPECT_EQ(s.offset, target.offset);
      continue;
    }
    const std::string& name = g.value(n.result).name;
    EXPECT_EQ(s.offset % passes::kArenaAlignment, 0) << name;
    EXPECT_EQ(s.bytes % passes::kArenaAlignment, 0) << name;
    EXPECT_GE(s.bytes, ir::activation_bytes(g.value(n.result).type, plan.t_max)) << name;
    EXPECT_LE(s.offset + s.bytes, plan.arena_bytes) << name;
    EXPECT_GE(s.offset, 0) << name;
    total += s.bytes;
    owners.push_back(n.result);
  }
  for (int32_t i = 0; i <= n_nodes; ++i) {
    std::vector<ir::ValueId> live;
    for (ir::ValueId v : owners) {
      if (def[static_cast<size_t>(v)] <= i && i <= last[static_cast<size_t>(v)]) live.push_back(v);
    }
    for (size_t a = 0; a < live.size(); ++a) {
      for (size_t b = a + 1; b < live.size(); ++b) {
        const passes::Slot& x = plan.slots[static_cast<size_t>(live[a])];
        const passes::Slot& y = plan.slots[static_cast<size_t>(live[b])];
        EXPECT_TRUE(x.offset + x.bytes <= y.offset || y.offset + y.bytes <= x.offset)
            << g.value(live[a]).name << " and " << g.value(live[b]).name << " overlap at node " << i;
      }
    }
  }
  if (owners.size() > 3) {
    EXPECT_LT(plan.arena_bytes, total) << "no reuse at all";
  }
  // No plan beats the most bytes live at one node; greedy-by-size stays close to it (it meets
  // it on the 2B4T and b158 shapes).
  int64_t peak = 0;
  for (int32_t i = 0; i <= n_nodes; ++i) {
    int64_t live = 0;
    for (ir::ValueId v : owners) {
      if (def[static_cast<size_t>(v)] <= i && i <= last[static_cast<size_t>(v)]) {
        live += plan.slots[static_cast<size_t>(v)].bytes;
      }
    }
    peak = std::max(peak, live);
  }
  EXPECT_GE(plan.arena_bytes, peak);
  EXPECT_LE(plan.arena_bytes, peak + peak / 4);
}

TEST(MemoryPlan, ValueBytes) {
  using ir::Dim;
  EXPECT_EQ(ir::activation_bytes(ir::Type::of(ir::DType::F32, {Dim::tokens(), Dim{10}}), 3), 120);
  EXPECT_EQ(ir::activation_bytes(ir::Type::of(ir::DType::I32, {Dim::tokens()}), 5), 20);
  // i8q: the int8 rows, then a float scale per row, then an int32 sum per row.
  EXPECT_EQ(ir::activation_bytes(ir::Type::of(ir::DType::I8Q, {Dim::tokens(), Dim{128}}), 2), 256 + 16);
  EXPECT_EQ(ir::activation_bytes(ir::Type::of(ir::DType::I8Q, {Dim::tokens(), Dim{5}}), 3), 15 + 24);
  EXPECT_EQ(ir::activation_bytes(ir::Type::of(ir::DType::F32, {Dim{1}, Dim{7}}), 512), 28);
  EXPECT_FALSE(passes::plan_memory(ir::Graph{}, 0).ok());
}

TEST(MemoryPlan, NoLiveValuesOverlap) {
  BITNET_REQUIRE_SHARED(shared);
  for (const auto& path : testing::semantic_models(shared)) {
    SCOPED_TRACE(path.filename().string());
    for (const ir::Graph& g : graphs_of(path)) {
      for (int64_t t_max : {1, 7, 512}) {
        SCOPED_TRACE(t_max);
        auto plan = passes::plan_memory(g, t_max);
        ASSERT_TRUE(plan.ok()) << plan.error().message;
        check_plan(g, *plan);
      }
    }
  }
}

TEST(MemoryPlan, ThePassRecordsTheArenaSize) {
  testing::TempDir dir;
  const auto path = (dir / "t.gguf").string();
  ASSERT_TRUE(gguf::generate_model(*gguf::model_preset("test"), path).ok());
  auto file = gguf::GgufFile::open(path);
  auto g = gguf::lower_to_ir(*file, {});
  ASSERT_TRUE(passes::default_pipeline(16).run(*g).ok());
  auto plan = passes::plan_memory(*g, 16);
  ASSERT_TRUE(plan.ok());
  check_plan(*g, *plan);
  bool found = false;
  for (const auto& [key, value] : g->properties()) {
    if (key == "arena_bytes") found = value == std::to_string(plan->arena_bytes);
  }
  EXPECT_TRUE(found);
}

// The end-to-end proof: values stored only at their planned offsets give the same logits.
TEST(MemoryPlan, InterpreterInThePlannedArenaIsBitIdentical) {
  BITNET_REQUIRE_SHARED(shared);
  for (const auto& path : testing::semantic_models(shared)) {
    SCOPED_TRACE(path.filename().string());
    auto file = gguf::GgufFile::open(path.string());
    ASSERT_TRUE(file.ok());
    for (const ir::Graph& g : graphs_of(path)) {
      const std::vector<float> want = testing::run_prompt_and_decode(g, *file);
      const std::vector<float> got = testing::run_prompt_and_decode(g, *file, {64, 2, 7});
      EXPECT_TRUE(testing::bit_identical(got, want));
    }
  }
}

TEST(MemoryPlan, InterpreterRefusesBatchesOverTheArenaSize) {
  BITNET_REQUIRE_SHARED(shared);
  auto file = gguf::GgufFile::open((shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string());
  auto g = gguf::lower_to_ir(*file, {});
  ASSERT_TRUE(passes::default_pipeline().run(*g).ok());
  auto interp = reference::Interpreter::create(*g, *file, {64, 1, 2});
  ASSERT_TRUE(interp.ok());
  runtime::Batch batch;
  for (int32_t i = 0; i < 3; ++i) batch.add(i + 1, i, {0}, i == 2);
  auto r = (*interp)->decode(batch);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("exceeds the 2 tokens a call takes"), std::string::npos) << r.error().message;
  EXPECT_EQ((*interp)->pos(), 0);
  // run() feeds longer inputs in calls of the arena's size.
  EXPECT_TRUE((*interp)->run(std::vector<int32_t>{1, 2, 3}).ok());
  EXPECT_EQ((*interp)->pos(), 3);
}

}  // namespace
}  // namespace bitnet
