// The JIT infrastructure: target resolution, compiling and calling kernels, kernel reuse,
// object capture for plans, and clear failures.
#include "codegen_cpu/jit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace bitnet::codegen {
namespace {

using abi::KernelArgs;
using abi::KernelFn;

ir::Type f32(std::vector<int64_t> dims) {
  ir::Type t{ir::DType::F32, {}};
  for (int64_t d : dims) t.shape.push_back(d < 0 ? ir::Dim::tokens() : ir::Dim{d});
  return t;
}

KernelDesc add_desc(int64_t cols) {
  KernelDesc d;
  d.op = ir::OpKind::Add;
  d.operands = {f32({-1, cols}), f32({cols})};
  d.result = f32({-1, cols});
  return d;
}

TEST(Jit, ResolvesTargets) {
  TargetFeatures t;
  std::string error;
  ASSERT_TRUE(resolve_target("host", t, &error));
  EXPECT_FALSE(t.triple.empty());
  EXPECT_FALSE(t.cpu.empty());
  ASSERT_TRUE(resolve_target("x86-64-v3", t, &error));
  EXPECT_TRUE(t.avx2 && t.fma && t.f16c);
  EXPECT_FALSE(t.avx512f);
  ASSERT_TRUE(resolve_target("x86-64-v4", t, &error));
  EXPECT_TRUE(t.avx512f && t.avx512bw);
  EXPECT_FALSE(resolve_target("pentium", t, &error));
  EXPECT_NE(error.find("unknown target"), std::string::npos);
}

TEST(Jit, CompilesAndRunsAKernel) {
  auto jit = Jit::create();
  ASSERT_TRUE(jit.ok()) << jit.error().message;
  auto k = (*jit)->compile_one(add_desc(37));
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->split, abi::WorkSplit::kTokens);
  std::vector<float> a(3 * 37), b(37), out(3 * 37, -1);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i);
  KernelArgs args{};
  args.in[0] = a.data();
  args.in[1] = b.data();
  args.out = out.data();
  args.n_tokens = 3;
  k->fn(&args, 1, 3);  // rows 1 and 2 only
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t i = 0; i < 37; ++i) {
      const float want = t == 0 ? -1.0f : a[t * 37 + i] + b[i];
      EXPECT_EQ(out[t * 37 + i], want) << t << "," << i;
    }
  }
  // The same description compiles once.
  auto again = (*jit)->compile_one(add_desc(37));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->fn, k->fn);
}

TEST(Jit, CapturesObjectsForPlans) {
  std::map<std::string, size_t> objects;
  JitOptions options;
  options.on_object = [&](const std::string& symbol, std::string_view object) { objects[symbol] = object.size(); };
  auto jit = Jit::create(options);
  ASSERT_TRUE(jit.ok());
  auto k = (*jit)->compile_one(add_desc(64));
  ASSERT_TRUE(k.ok()) << k.error().message;
  ASSERT_EQ(objects.count(k->symbol), 1u);
  EXPECT_GT(objects[k->symbol], 100u);
}

TEST(Jit, BaselineTargetsRunHere) {
  for (const char* target : {"x86-64-v3"}) {
    JitOptions options;
    options.target = target;
    auto jit = Jit::create(options);
    ASSERT_TRUE(jit.ok()) << jit.error().message;
    auto k = (*jit)->compile_one(add_desc(100));
    ASSERT_TRUE(k.ok()) << k.error().message;
    std::vector<float> a(100, 1.0f), b(100, 2.0f), out(100);
    KernelArgs args{};
    args.in[0] = a.data();
    args.in[1] = b.data();
    args.out = out.data();
    k->fn(&args, 0, 1);
    EXPECT_EQ(out[99], 3.0f);
  }
}

// SiLU uses the builder's exp: within a few ulp of libm across the whole float range.
TEST(Jit, ExpIsAccurate) {
  auto jit = Jit::create();
  ASSERT_TRUE(jit.ok());
  KernelDesc d;
  d.op = ir::OpKind::Silu;
  d.operands = {f32({-1, 1000})};
  d.result = f32({-1, 1000});
  auto k = (*jit)->compile_one(d);
  ASSERT_TRUE(k.ok()) << k.error().message;
  std::vector<float> x(1000), y(1000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -100.0f + 200.0f * static_cast<float>(i) / 999.0f;
  x[0] = -0.0f;
  x[1] = 1e-30f;
  KernelArgs args{};
  args.in[0] = x.data();
  args.out = y.data();
  k->fn(&args, 0, 1);
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = x[i] / (1.0 + std::exp(-static_cast<double>(x[i])));
    EXPECT_NEAR(y[i], want, 4e-7 * std::fabs(want) + 1e-30) << "x = " << x[i];
  }
}

TEST(Jit, UnknownTargetFailsCleanly) {
  JitOptions options;
  options.target = "sparc";
  auto jit = Jit::create(options);
  ASSERT_FALSE(jit.ok());
  EXPECT_NE(jit.error().message.find("unknown target"), std::string::npos);
}

}  // namespace
}  // namespace bitnet::codegen
