// The schedule: the split of every kernel kind (the op table's), its unit count, and the
// kernel count the schedule pass records.
#include "passes/schedule.h"
#include "schema/abi.h"

#include <gtest/gtest.h>

namespace bitnet {
namespace {

using passes::WorkSplit;

TEST(Schedule, SplitsAndUnits) {
  using ir::Dim;
  using ir::DType;
  ir::Graph g("schedule");
  ir::Builder b(g);
  const auto ids = *b.input_tokens();
  const auto x = *b.embed(*b.weight("e", ir::Type::of(DType::F32, {Dim{10}, Dim{16}})), ids);
  const auto wq = *b.weight("wq", ir::Type::of(DType::F32, {Dim{16}, Dim{16}}));
  const auto wkv = *b.weight("wkv", ir::Type::of(DType::F32, {Dim{8}, Dim{16}}));
  const auto qkv = *g.add(ir::OpKind::MatMulCat, {x, wq, wkv, wkv});
  const auto attn = *g.add(ir::OpKind::RopeAttention, {qkv},
                           {{"layer", int64_t{0}},
                            {"n_head", int64_t{4}},
                            {"n_head_kv", int64_t{2}},
                            {"head_dim", int64_t{4}},
                            {"style", std::string("neox")},
                            {"freq_base", 1e4},
                            {"freq_scale", 1.0}});
  const auto ffn = *g.add(ir::OpKind::GatedFfn, {attn, wq, wq}, {{"act", std::string("silu")}});
  const auto last = *b.select_rows(ffn);
  ASSERT_TRUE(b.output(last, "out").ok());
  const auto work = [&](ir::ValueId v) { return passes::work_of(g, g.def(v)); };
  EXPECT_EQ(work(qkv)->split, WorkSplit::kRows);
  EXPECT_EQ(work(qkv)->units, Dim{32});  // 16 + 8 + 8 output features
  EXPECT_EQ(work(attn)->split, WorkSplit::kHeads);
  EXPECT_EQ(passes::units_for(*work(attn), 9), 4);
  EXPECT_EQ(work(ffn)->split, WorkSplit::kRows);
  EXPECT_EQ(work(x)->split, WorkSplit::kTokens);
  EXPECT_EQ(passes::units_for(*work(x), 9), 9);
  EXPECT_FALSE(work(ids).has_value());
  EXPECT_FALSE(work(wq).has_value());
  EXPECT_FALSE(work(last).has_value());
  EXPECT_EQ(passes::kernel_count(g), 4);

  passes::PassManager pm;
  pm.add(passes::schedule());
  ASSERT_TRUE(pm.run(g).ok());
  ASSERT_TRUE(pm.run(g).ok());  // rerunning replaces the property
  int found = 0;
  for (const auto& [key, value] : g.properties()) found += key == "kernels" && value == "4";
  EXPECT_EQ(found, 1);
}

}  // namespace
}  // namespace bitnet
