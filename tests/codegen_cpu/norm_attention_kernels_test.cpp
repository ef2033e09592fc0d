// The non-matmul CPU kernels (embed, norms, quantization, rope, softmax, attention,
// rope_attention) against the reference kernels, on random inputs and teacher-forced on the
// C++ reference's own intermediates (../shared/crossval/*/intermediates_seq16), for the host
// and the x86-64-v3 target, over whole and partial work ranges.
#include "codegen_cpu/jit.h"
#include "reference/kernels.h"
#include "runtime/reference_test_util.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

namespace bitnet::codegen {
namespace {

using abi::KernelArgs;
using abi::KernelFn;

using testing::CrossvalModel;

constexpr double kTolerance = 1e-5;  // relative, per op (the float tolerance of the kernels)
// Positions below which the rope kernels reproduce glibc's sinf/cosf (codegen_cpu/emit_rope.h,
// which this test cannot include: it brings LLVM).
constexpr int64_t kRopeExactPositions = 4096;

ir::Type type(ir::DType dtype, std::vector<int64_t> dims) {
  ir::Type t{dtype, {}};
  for (int64_t d : dims) t.shape.push_back(d < 0 ? ir::Dim::tokens() : ir::Dim{d});
  return t;
}
ir::Type f32(std::vector<int64_t> dims) {
  return type(ir::DType::F32, std::move(dims));
}

KernelDesc desc(ir::OpKind op, std::vector<ir::Type> operands, ir::Type result, std::vector<ir::Attr> attrs = {}) {
  KernelDesc d;
  d.op = op;
  d.operands = std::move(operands);
  d.result = std::move(result);
  d.attrs = std::move(attrs);
  return d;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// How far `got` is from `want`: values that differ at all, and the largest relative error,
// each error relative to max(|want|, 1e-3 * max |want|) so cancellation near 0 does not count.
struct Diff {
  int64_t differing = 0;
  double max_rel = 0;
};
Diff compare(const float* got, const float* want, size_t n) {
  double scale = 0;
  for (size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  Diff d;
  for (size_t i = 0; i < n; ++i) {
    if (got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i]))) continue;
    ++d.differing;
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double rel = err / std::max(std::fabs(static_cast<double>(want[i])), 1e-3 * scale);
    d.max_rel = std::isnan(rel) ? INFINITY : std::max(d.max_rel, rel);
  }
  return d;
}
Diff compare(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  return compare(got.data(), want.data(), std::min(got.size(), want.size()));
}

// Largest error seen per kernel over the whole run, printed at the end (for the report).
std::map<std::string, Diff>& worst() {
  static std::map<std::string, Diff> w;
  return w;
}
void record(const std::string& what, const Diff& d) {
  Diff& w = worst()[what];
  w.differing += d.differing;
  w.max_rel = std::max(w.max_rel, d.max_rel);
}
class Report : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& [name, d] : worst())
      std::printf("[ max error ] %-34s rel %.3g (%lld values not bit-equal)\n", name.c_str(), d.max_rel,
                  static_cast<long long>(d.differing));
  }
};
[[maybe_unused]] ::testing::Environment* const kReport = ::testing::AddGlobalTestEnvironment(new Report);

// One compiled kernel per test, for the target of the test's parameter.
class KernelTest : public ::testing::TestWithParam<std::string> {
 public:
  KernelFn compile(const KernelDesc& d) {
    if (!jit_) {
      JitOptions options;
      options.target = GetParam();
      auto jit = Jit::create(options);
      EXPECT_TRUE(jit.ok()) << jit.error().message;
      if (!jit.ok()) return nullptr;
      jit_ = std::move(*jit);
    }
    auto k = jit_->compile_one(d);
    EXPECT_TRUE(k.ok()) << (k.ok() ? "" : k.error().message);
    return k.ok() ? k->fn : nullptr;
  }
  // Runs `fn` on [0, units) split into the given pieces (sequential calls, thread 0).
  static void run(KernelFn fn, KernelArgs& args, int64_t units, std::vector<int64_t> cuts = {}) {
    cuts.insert(cuts.begin(), 0);
    cuts.push_back(units);
    for (size_t i = 0; i + 1 < cuts.size(); ++i) fn(&args, cuts[i], cuts[i + 1]);
  }

 private:
  std::unique_ptr<Jit> jit_;
};

// ---- quantization and norms -------------------------------------------------------------

// Rows with ties (x * s exactly k + 0.5), a zero row (amax floor), tiny and huge values.
std::vector<float> quantize_inputs(int64_t rows, int64_t k, uint32_t seed) {
  std::vector<float> x = random_floats(static_cast<size_t>(rows * k), seed);
  if (rows > 1) std::fill(x.begin() + k, x.begin() + 2 * k, 0.0f);
  if (rows > 2) {
    for (int64_t i = 0; i < k; ++i) x[2 * k + i] = static_cast<float>(i % 255 - 127) + 0.5f;  // amax 127.5: many ties
  }
  if (rows > 3) {
    for (int64_t i = 0; i < k; ++i) x[3 * k + i] *= i % 2 ? 1e-7f : 1e4f;
  }
  return x;
}

struct I8q {
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> sum;
};
// Unpacks the i8q layout of schema/abi.h: q[rows][k], float scale[rows], int32 sum[rows].
I8q unpack(const std::vector<uint8_t>& buf, int64_t rows, int64_t k) {
  I8q r;
  r.q.resize(static_cast<size_t>(rows * k));
  r.scale.resize(static_cast<size_t>(rows));
  r.sum.resize(static_cast<size_t>(rows));
  std::memcpy(r.q.data(), buf.data(), r.q.size());
  std::memcpy(r.scale.data(), buf.data() + rows * k, 4 * static_cast<size_t>(rows));
  std::memcpy(r.sum.data(), buf.data() + rows * k + 4 * rows, 4 * static_cast<size_t>(rows));
  return r;
}
void expect_quantized_like_reference(const I8q& got, const float* x, int64_t rows, int64_t k, const std::string& what) {
  std::vector<int8_t> q(static_cast<size_t>(k));
  for (int64_t t = 0; t < rows; ++t) {
    const ref::I8Row want = ref::quantize_row_i8(x + t * k, k, q.data());
    EXPECT_EQ(std::memcmp(&got.scale[t], &want.scale, 4), 0) << what << " row " << t;
    EXPECT_EQ(got.sum[t], want.sum) << what << " row " << t;
    EXPECT_EQ(std::memcmp(got.q.data() + t * k, q.data(), static_cast<size_t>(k)), 0) << what << " row " << t;
  }
}

TEST_P(KernelTest, QuantizeI8IsBitExact) {
  for (int64_t k : {2560, 100, 7}) {
    const int64_t rows = 6;
    KernelFn fn = compile(desc(ir::OpKind::QuantizeI8, {f32({-1, k})}, type(ir::DType::I8Q, {-1, k})));
    ASSERT_NE(fn, nullptr);
    const std::vector<float> x = quantize_inputs(rows, k, 7);
    std::vector<uint8_t> out(static_cast<size_t>(rows * k + 8 * rows), 0xAA);
    KernelArgs args{};
    args.in[0] = x.data();
    args.out = out.data();
    args.n_tokens = rows;
    run(fn, args, rows, {1, 4});
    expect_quantized_like_reference(unpack(out, rows, k), x.data(), rows, k, "quantize_i8 K=" + std::to_string(k));
  }
}

TEST_P(KernelTest, NormsMatchTheReference) {
  const int64_t k = 2560, rows = 5;
  const float eps = 1e-5f;
  const std::vector<ir::Attr> attrs = {{"eps", static_cast<double>(eps)}};
  const std::vector<float> x = quantize_inputs(rows, k, 3);
  const std::vector<float> gain = random_floats(static_cast<size_t>(k), 4);
  KernelFn rms = compile(desc(ir::OpKind::RmsNorm, {f32({-1, k})}, f32({-1, k}), attrs));
  KernelFn norm = compile(desc(ir::OpKind::Norm, {f32({-1, k}), f32({k})}, f32({-1, k}), attrs));
  KernelFn nq = compile(desc(ir::OpKind::NormQuantize, {f32({-1, k}), f32({k})}, type(ir::DType::I8Q, {-1, k}), attrs));
  ASSERT_TRUE(rms && norm && nq);
  std::vector<float> want_rms(x.size()), want_norm(x.size()), got_rms(x.size()), got_norm(x.size());
  for (int64_t t = 0; t < rows; ++t) ref::rms_norm(x.data() + t * k, k, eps, want_rms.data() + t * k);
  for (size_t i = 0; i < x.size(); ++i) want_norm[i] = want_rms[i] * gain[i % k];
  KernelArgs args{};
  args.in[0] = x.data();
  args.in[1] = gain.data();
  args.n_tokens = rows;
  args.out = got_rms.data();
  run(rms, args, rows, {2});
  args.out = got_norm.data();
  run(norm, args, rows, {3});
  const Diff d_rms = compare(got_rms, want_rms), d_norm = compare(got_norm, want_norm);
  record("rms_norm", d_rms);
  record("norm", d_norm);
  EXPECT_LE(d_rms.max_rel, kTolerance);
  EXPECT_LE(d_norm.max_rel, kTolerance);
  // norm_quantize: bit-identical to quantizing the kernel's own normed rows, and (ties of the
  // double sum aside, which these inputs do not hit) to the reference norm -> mul -> quantize.
  std::vector<uint8_t> out(static_cast<size_t>(rows * k + 8 * rows));
  args.out = out.data();
  run(nq, args, rows, {1});
  const I8q got = unpack(out, rows, k);
  expect_quantized_like_reference(got, got_norm.data(), rows, k, "norm_quantize vs own norm");
  expect_quantized_like_reference(got, want_norm.data(), rows, k, "norm_quantize vs reference");
}

// ---- embed ---------------------------------------------------------------------------------

TEST_P(KernelTest, EmbedDequantizesEveryWeightType) {
  struct Case {
    ir::DType dtype;
    gguf::GgmlType ggml;
  };
  const int64_t vocab = 5, cols = 512;
  for (const Case c : {Case{ir::DType::F32, gguf::GgmlType::F32}, Case{ir::DType::F16, gguf::GgmlType::F16},
                       Case{ir::DType::BF16, gguf::GgmlType::BF16}, Case{ir::DType::Q8_0, gguf::GgmlType::Q8_0},
                       Case{ir::DType::Q4_0, gguf::GgmlType::Q4_0}, Case{ir::DType::Q6_K, gguf::GgmlType::Q6_K},
                       Case{ir::DType::TQ1_0, gguf::GgmlType::TQ1_0}, Case{ir::DType::TQ2_0, gguf::GgmlType::TQ2_0},
                       Case{ir::DType::I2_S, gguf::GgmlType::I2_S}}) {
    const std::string name(ir::dtype_name(c.dtype));
    KernelFn fn =
        compile(desc(ir::OpKind::Embed, {type(c.dtype, {vocab, cols}), type(ir::DType::I32, {-1})}, f32({-1, cols})));
    ASSERT_NE(fn, nullptr) << name;
    const std::vector<uint8_t> table =
        testing::random_tensor_data(c.ggml, {static_cast<uint64_t>(cols), static_cast<uint64_t>(vocab)}, 11);
    const std::vector<int32_t> ids = {3, 0, 4, 4, 1, 2, -1, 5};  // the last two are out of range: zero rows
    const auto rows = static_cast<int64_t>(ids.size());
    std::vector<float> got(static_cast<size_t>(rows * cols), -7.0f), want(got.size(), 0.0f);
    KernelArgs args{};
    args.in[0] = table.data();
    args.in[1] = ids.data();
    args.out = got.data();
    args.n_tokens = rows;
    run(fn, args, rows, {3});
    const ref::WeightView w{c.ggml, table.data(), vocab, cols};
    for (int64_t t = 0; t < rows - 2; ++t) ref::dequantize_row(w, ids[t], want.data() + t * cols);
    const Diff d = compare(got, want);
    EXPECT_EQ(d.differing, 0) << name << ": max rel " << d.max_rel;
    record("embed", d);
  }
}

// ---- rope and softmax ----------------------------------------------------------------------

std::vector<ir::Attr> rope_attrs(const std::string& style, int64_t heads, int64_t dim, double base, double scale) {
  return {{"style", style}, {"n_head", heads}, {"head_dim", dim}, {"freq_base", base}, {"freq_scale", scale}};
}

void ref_rope(float* x, int64_t rows, int64_t heads, int64_t dim, int64_t pos0, bool neox, float base, float scale) {
  for (int64_t t = 0; t < rows; ++t) {
    float* row = x + t * heads * dim;
    if (neox)
      ref::rope_neox(row, dim, heads, pos0 + t, base, scale);
    else
      ref::rope_normal(row, dim, heads, pos0 + t, base, scale);
  }
}

// RoPE rotates pairs: its error is relative to the pair's norm |(x0, x1)| (an output element
// near 0 by cancellation has no meaningful relative error of its own). Below
// kRopeExactPositions the kernel reproduces glibc's sinf/cosf bit for bit; beyond, its values
// are correctly rounded where glibc's are 1 ulp off in ~1 % of cases.
Diff compare_rope(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& x,
                  int64_t dim, bool neox) {
  Diff d;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] == want[i]) continue;
    ++d.differing;
    const size_t head = i / static_cast<size_t>(dim) * static_cast<size_t>(dim);
    const size_t e = i % static_cast<size_t>(dim), half = static_cast<size_t>(dim / 2);
    const size_t i0 = neox ? head + e % half : head + e / 2 * 2;
    const size_t i1 = neox ? i0 + half : i0 + 1;
    const double norm = std::hypot(static_cast<double>(x[i0]), static_cast<double>(x[i1]));
    d.max_rel = std::max(d.max_rel, std::fabs(static_cast<double>(got[i]) - want[i]) / norm);
  }
  return d;
}

TEST_P(KernelTest, RopeMatchesTheReference) {
  struct Case {
    const char* style;
    int64_t heads, dim, pos;
    double base, scale;
  };
  for (const Case c :
       {Case{"neox", 4, 128, 0, 10000, 1}, Case{"neox", 3, 64, 1000, 500000, 1}, Case{"normal", 2, 32, 17, 10000, 0.5},
        Case{"normal", 5, 80, 4000, 10000, 1}, Case{"neox", 1, 256, 100000, 10000, 1}}) {
    const int64_t rows = 7, width = c.heads * c.dim;
    KernelFn fn = compile(desc(ir::OpKind::Rope, {f32({-1, width})}, f32({-1, width}),
                               rope_attrs(c.style, c.heads, c.dim, c.base, c.scale)));
    ASSERT_NE(fn, nullptr);
    const std::vector<float> x = random_floats(static_cast<size_t>(rows * width), 5);
    std::vector<float> got(x.size()), want = x;
    KernelArgs args{};
    args.in[0] = x.data();
    args.out = got.data();
    args.n_tokens = rows;
    args.pos = c.pos;
    run(fn, args, rows, {2, 5});
    ref_rope(want.data(), rows, c.heads, c.dim, c.pos, std::string(c.style) == "neox", static_cast<float>(c.base),
             static_cast<float>(c.scale));
    const Diff d = compare_rope(got, want, x, c.dim, std::string(c.style) == "neox");
    record("rope", d);
    EXPECT_LE(d.max_rel, kTolerance) << c.style << " dim " << c.dim << " pos " << c.pos;
    if (c.pos + rows <= kRopeExactPositions) {  // glibc's sinf/cosf reproduced: bit-exact
      EXPECT_EQ(d.differing, 0) << c.style << " dim " << c.dim << " pos " << c.pos;
    }
  }
}

TEST_P(KernelTest, SoftmaxMatchesTheReference) {
  for (int64_t n : {32000, 37, 5}) {
    const int64_t rows = 3;
    const double scale = 0.125;
    KernelFn fn = compile(desc(ir::OpKind::Softmax, {f32({-1, n})}, f32({-1, n}), {{"scale", scale}}));
    ASSERT_NE(fn, nullptr);
    const std::vector<float> x = random_floats(static_cast<size_t>(rows * n), 9, 20.0f);
    std::vector<float> got(x.size()), want(x.size());
    KernelArgs args{};
    args.in[0] = x.data();
    args.out = got.data();
    args.n_tokens = rows;
    run(fn, args, rows, {1});
    for (int64_t t = 0; t < rows; ++t)
      ref::softmax(x.data() + t * n, nullptr, n, static_cast<float>(scale), want.data() + t * n);
    const Diff d = compare(got, want);
    record("softmax", d);
    EXPECT_LE(d.max_rel, kTolerance) << "n " << n;
    if (n % 16 == 0) {  // no libm leftovers: bit-exact
      EXPECT_EQ(d.differing, 0) << "n " << n;
    }
  }
}

// ---- attention -----------------------------------------------------------------------------

struct AttnShape {
  int64_t heads, kv_heads, dim;
};

// One layer's attention run step by step by the kernel and by the reference side by side.
class AttentionRun {
  static constexpr size_t kGuard = 64;
  static constexpr float kGuardValue = -1234.5f;

 public:
  AttentionRun(KernelTest& test, AttnShape s, int64_t cells, bool fused, const std::string& style = "neox",
               float base = 10000.0f)
      : s_(s), cells_(cells), fused_(fused), neox_(style == "neox"), base_(base) {
    const int64_t hd = s.heads * s.dim, kvd = s.kv_heads * s.dim;
    std::vector<ir::Attr> attrs = {
        {"layer", int64_t{0}}, {"n_head", s.heads}, {"n_head_kv", s.kv_heads}, {"head_dim", s.dim}};
    if (fused) {
      attrs.push_back({"style", style});
      attrs.push_back({"freq_base", static_cast<double>(base)});
      attrs.push_back({"freq_scale", 1.0});
      fn_ = test.compile(desc(ir::OpKind::RopeAttention, {f32({-1, hd + 2 * kvd})}, f32({-1, hd}), attrs));
    } else {
      fn_ = test.compile(
          desc(ir::OpKind::Attention, {f32({-1, hd}), f32({-1, kvd}), f32({-1, kvd})}, f32({-1, hd}), attrs));
    }
    k_.assign(static_cast<size_t>(cells * kvd), 0);
    v_.assign(k_.size(), 0);
    ref_k_.assign(k_.size(), 0);
    ref_v_.assign(k_.size(), 0);
    // The documented scratch, 16 * kv_cells + 48 * head_dim bytes, then a guard checked after each call.
    scratch_.assign(static_cast<size_t>(4 * cells + 12 * s.dim + kGuard), kGuardValue);
  }
  bool ok() const { return fn_ != nullptr; }

  // q [T][H*D], k/v [T][HKV*D] before RoPE when fused. Returns the comparison of the outputs.
  Diff step(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v, int64_t rows,
            const std::vector<int64_t>& cuts) {
    const int64_t hd = s_.heads * s_.dim, kvd = s_.kv_heads * s_.dim;
    std::vector<float> got(static_cast<size_t>(rows * hd)), want(got.size());
    KernelArgs args{};
    std::vector<float> qkv;
    if (fused_) {
      for (int64_t t = 0; t < rows; ++t) {
        qkv.insert(qkv.end(), q.begin() + t * hd, q.begin() + (t + 1) * hd);
        qkv.insert(qkv.end(), k.begin() + t * kvd, k.begin() + (t + 1) * kvd);
        qkv.insert(qkv.end(), v.begin() + t * kvd, v.begin() + (t + 1) * kvd);
      }
      args.in[0] = qkv.data();
    } else {
      args.in[0] = q.data();
      args.in[1] = k.data();
      args.in[2] = v.data();
    }
    args.out = got.data();
    args.n_tokens = rows;
    args.pos = pos_;
    args.kv_k = k_.data();
    args.kv_v = v_.data();
    args.kv_cells = cells_;
    args.scratch = scratch_.data();
    args.scratch_stride = static_cast<int64_t>(scratch_.size() * 4);
    KernelTest::run(fn_, args, s_.heads, cuts);
    for (size_t i = scratch_.size() - kGuard; i < scratch_.size(); ++i)
      EXPECT_EQ(scratch_[i], kGuardValue) << "scratch overrun";

    std::vector<float> rq = q, rk = k;
    if (fused_) {
      ref_rope(rq.data(), rows, s_.heads, s_.dim, pos_, neox_, base_, 1.0f);
      ref_rope(rk.data(), rows, s_.kv_heads, s_.dim, pos_, neox_, base_, 1.0f);
    }
    const ref::AttentionShape shape{s_.heads, s_.kv_heads, s_.dim};
    const ref::KvLayerView kv{ref_k_.data(), ref_v_.data(), cells_};
    ref::kv_store(rk.data(), v.data(), rows, pos_, shape, kv);
    ref::attention(rq.data(), rows, pos_, shape, kv, rows == 1 ? ref::Mode::kDecode : ref::Mode::kPrompt, want.data());
    pos_ += rows;
    last_ = got;
    return compare(got, want);
  }

  // Cache entries of the kernel (K [HKV][cell][D], V [HKV][cell / 32][D][cell % 32], see
  // schema/abi.h) that differ from the reference's (K [cell][HKV * D], V [HKV * D][cell]).
  int64_t cache_mismatches() const {
    int64_t n = 0;
    const int64_t kvd = s_.kv_heads * s_.dim;
    for (int64_t g = 0; g < s_.kv_heads; ++g) {
      for (int64_t c = 0; c < cells_; ++c) {
        for (int64_t d = 0; d < s_.dim; ++d) {
          n += k_[(g * cells_ + c) * s_.dim + d] != ref_k_[c * kvd + g * s_.dim + d];
          n += v_[((g * cells_ / 32 + c / 32) * s_.dim + d) * 32 + c % 32] != ref_v_[(g * s_.dim + d) * cells_ + c];
        }
      }
    }
    return n;
  }
  int64_t pos() const { return pos_; }
  const std::vector<float>& last_output() const { return last_; }

 private:
  AttnShape s_;
  int64_t cells_;
  bool fused_, neox_;
  float base_;
  KernelFn fn_ = nullptr;
  int64_t pos_ = 0;
  std::vector<uint16_t> k_, v_, ref_k_, ref_v_;
  std::vector<float> scratch_;
  std::vector<float> last_;
};

// A prompt of 16 tokens, a second prompt chunk of 7, then decode steps past 32 and 64 cells,
// each call split into head ranges (group-aligned or not: sequential calls may split anywhere).
void run_attention_sequence(KernelTest& test, AttnShape s, bool fused, float q_scale, const std::string& label,
                            bool sparse_v = false) {
  const int64_t cells = 96;
  AttentionRun run(test, s, cells, fused);
  ASSERT_TRUE(run.ok());
  const int64_t hd = s.heads * s.dim, kvd = s.kv_heads * s.dim;
  uint32_t seed = 100;
  const std::vector<std::vector<int64_t>> splits = {{}, {s.heads / 2}, {1, s.heads - 1}};
  int step = 0;
  while (run.pos() < 90) {
    const int64_t rows = run.pos() == 0 ? 16 : run.pos() == 16 ? 7 : 1;
    const auto q = random_floats(static_cast<size_t>(rows * hd), seed++, q_scale);
    const auto k = random_floats(static_cast<size_t>(rows * kvd), seed++);
    auto v = random_floats(static_cast<size_t>(rows * kvd), seed++);
    // Exact zeros (an I2_S projection gives them): outputs that only tiny probabilities reach.
    if (sparse_v) {
      for (size_t i = 0; i < v.size(); ++i) v[i] = (i * 2654435761u) % 7 < 5 ? 0.0f : v[i];
    }
    const int64_t pos = run.pos();
    const Diff d = run.step(q, k, v, rows, splits[static_cast<size_t>(step++) % splits.size()]);
    record(label, d);
    EXPECT_LE(d.max_rel, kTolerance) << label << " at pos " << pos << " (" << rows << " tokens)";
    EXPECT_EQ(d.differing, 0) << label << " at pos " << pos;
  }
  EXPECT_EQ(run.cache_mismatches(), 0) << label;
}

TEST_P(KernelTest, AttentionIsBitExactGqa) {
  run_attention_sequence(*this, {8, 2, 32}, false, 1.0f, "attention");
}
TEST_P(KernelTest, AttentionIsBitExactMha) {
  run_attention_sequence(*this, {4, 4, 64}, false, 3.0f, "attention");
}
TEST_P(KernelTest, AttentionIsBitExact2b4tShape) {
  run_attention_sequence(*this, {20, 5, 128}, false, 1.0f, "attention");
}
TEST_P(KernelTest, RopeAttentionIsBitExactGqa) {
  run_attention_sequence(*this, {8, 2, 32}, true, 1.0f, "rope_attention");
}
TEST_P(KernelTest, RopeAttentionIsBitExactMha) {
  run_attention_sequence(*this, {4, 4, 64}, true, 3.0f, "rope_attention");
}
// Scores spread over hundreds (q scaled by 40): many probabilities fall below 2^-126, where
// the kernels avoid float multiplies on subnormals (exp by integer scaling, p = e * inv in
// double, prompt-mode V sums of such chunks by an exact FMA in double) and must still match.
TEST_P(KernelTest, AttentionWideScoresAreBitExact) {
  run_attention_sequence(*this, {4, 4, 64}, false, 40.0f, "attention", true);
  run_attention_sequence(*this, {8, 2, 32}, true, 60.0f, "rope_attention", true);
  run_attention_sequence(*this, {20, 5, 128}, false, 30.0f, "attention", true);
}
// Long prompts in two chunks (the second one attending to the first one's cells), then decode.
TEST_P(KernelTest, LongPromptChunks) {
  for (const bool fused : {false, true}) {
    const AttnShape s = fused ? AttnShape{4, 4, 64} : AttnShape{8, 2, 32};
    AttentionRun run(*this, s, 512, fused);
    ASSERT_TRUE(run.ok());
    uint32_t seed = 500;
    for (const int64_t rows : {300, 150, 1}) {
      const auto q = random_floats(static_cast<size_t>(rows * s.heads * s.dim), seed++);
      const auto k = random_floats(static_cast<size_t>(rows * s.kv_heads * s.dim), seed++);
      const auto v = random_floats(static_cast<size_t>(rows * s.kv_heads * s.dim), seed++);
      const Diff d = run.step(q, k, v, rows, {s.heads / 2});
      record(fused ? "rope_attention" : "attention", d);
      EXPECT_LE(d.max_rel, kTolerance) << rows << " tokens";
      EXPECT_EQ(d.differing, 0) << rows << " tokens";
    }
  }
}

// Groups that do not fill whole query blocks (6 = 4 + 2, 3), head dims that are not a
// multiple of 16 (40) or 8 (36, the one-row fallback), and above 64 but not a multiple of it
// (96, 80: a float part and a double tail per score).
TEST_P(KernelTest, AttentionOddShapes) {
  run_attention_sequence(*this, {6, 1, 64}, false, 1.0f, "attention");
  run_attention_sequence(*this, {6, 2, 40}, false, 2.0f, "attention");
  run_attention_sequence(*this, {3, 1, 36}, false, 1.0f, "attention");
  run_attention_sequence(*this, {6, 2, 40}, true, 1.0f, "rope_attention");
  run_attention_sequence(*this, {3, 1, 36}, true, 1.0f, "rope_attention");
  run_attention_sequence(*this, {4, 2, 96}, false, 2.0f, "attention");
  run_attention_sequence(*this, {4, 2, 80}, true, 1.0f, "rope_attention");
}

// ---- teacher-forced on the reference's intermediates -----------------------------------------

std::string layer_name(const std::string& base, int64_t layer) {
  return base + "-" + std::to_string(layer);
}

class CrossvalKernelTest : public KernelTest {};

TEST_P(CrossvalKernelTest, TeacherForcedOnReferenceIntermediates) {
  BITNET_REQUIRE_SHARED(shared);
  const int64_t kTokens = 16;
  for (const std::string& model : testing::crossval_models()) {
    SCOPED_TRACE(model);
    CrossvalModel m;
    ASSERT_TRUE(m.load(shared, model));
    const int64_t n = m.n_embd, hd = m.n_head * m.head_dim, kvd = m.n_head_kv * m.head_dim;

    // Embed: the F16 token_embd rows of seq16, exactly.
    const ref::WeightView embd = m.weight("token_embd.weight");
    KernelFn embed = compile(desc(
        ir::OpKind::Embed, {type(ir::DType::F16, {embd.rows, embd.cols}), type(ir::DType::I32, {-1})}, f32({-1, n})));
    ASSERT_NE(embed, nullptr);
    std::vector<float> x(static_cast<size_t>(kTokens * n));
    KernelArgs args{};
    args.in[0] = embd.data;
    args.in[1] = testing::seq16_tokens().data();
    args.out = x.data();
    args.n_tokens = kTokens;
    KernelTest::run(embed, args, kTokens, {5});
    EXPECT_EQ(compare(x, m.tensor("inp_embd", "GET_ROWS")).differing, 0);

    // Every RMS_NORM (input: the entry before it) and its gain MUL; quantize_i8 of the MUL
    // output and norm_quantize, both bit-exact.
    for (size_t i = 1; i + 1 < m.entries.size(); ++i) {
      if (m.entries[i].op != "RMS_NORM") continue;
      const std::vector<float> input = m.tensor(static_cast<int>(i - 1));
      const auto k = static_cast<int64_t>(input.size()) / kTokens;
      const std::string& mul = m.entries[i + 1].name;
      std::string gain_name = "output_norm.weight";
      if (const size_t dash = mul.rfind('-'); dash != std::string::npos) {
        gain_name = "blk." + mul.substr(dash + 1) + "." + mul.substr(0, dash) + ".weight";
      }
      const std::vector<float> gain = m.vector_f32(gain_name);
      const std::vector<ir::Attr> eps = {{"eps", static_cast<double>(m.eps)}};
      KernelFn rms = compile(desc(ir::OpKind::RmsNorm, {f32({-1, k})}, f32({-1, k}), eps));
      KernelFn norm = compile(desc(ir::OpKind::Norm, {f32({-1, k}), f32({k})}, f32({-1, k}), eps));
      KernelFn nq =
          compile(desc(ir::OpKind::NormQuantize, {f32({-1, k}), f32({k})}, type(ir::DType::I8Q, {-1, k}), eps));
      KernelFn quant = compile(desc(ir::OpKind::QuantizeI8, {f32({-1, k})}, type(ir::DType::I8Q, {-1, k})));
      ASSERT_TRUE(rms && norm && nq && quant);
      std::vector<float> got(input.size());
      std::vector<uint8_t> q8(static_cast<size_t>(kTokens * k + 8 * kTokens));
      KernelArgs a{};
      a.in[0] = input.data();
      a.in[1] = gain.data();
      a.n_tokens = kTokens;
      a.out = got.data();
      KernelTest::run(rms, a, kTokens, {9});
      const Diff d_rms = compare(got, m.tensor(static_cast<int>(i)));
      record("rms_norm (crossval)", d_rms);
      EXPECT_EQ(d_rms.differing, 0) << m.entries[i].file;
      KernelTest::run(norm, a, kTokens);
      const std::vector<float> want_mul = m.tensor(static_cast<int>(i + 1));
      const Diff d_norm = compare(got, want_mul);
      record("norm (crossval)", d_norm);
      EXPECT_EQ(d_norm.differing, 0) << m.entries[i + 1].file;
      a.out = q8.data();
      KernelTest::run(nq, a, kTokens, {1});
      expect_quantized_like_reference(unpack(q8, kTokens, k), want_mul.data(), kTokens, k,
                                      "norm_quantize " + m.entries[i + 1].file);
      a.in[0] = want_mul.data();
      KernelTest::run(quant, a, kTokens, {15});
      expect_quantized_like_reference(unpack(q8, kTokens, k), want_mul.data(), kTokens, k,
                                      "quantize_i8 " + m.entries[i + 1].file);
    }

    for (int64_t layer = 0; layer < m.n_layer; ++layer) {
      const std::vector<float> q_raw = m.tensor(layer_name("Qcur", layer), "MUL_MAT");
      const std::vector<float> k_raw = m.tensor(layer_name("Kcur", layer), "MUL_MAT");
      const std::vector<float> v = m.tensor(layer_name("Vcur", layer), "MUL_MAT");
      const std::vector<float> q_rope = m.tensor(layer_name("Qcur", layer), "ROPE");
      const std::vector<float> k_rope = m.tensor(layer_name("Kcur", layer), "ROPE");
      const std::vector<float> want_out = m.tensor(layer_name("kqv_out", layer), "CONT");

      // Rope on q and k.
      for (int which = 0; which < 2; ++which) {
        const int64_t heads = which == 0 ? m.n_head : m.n_head_kv;
        KernelFn rope = compile(desc(ir::OpKind::Rope, {f32({-1, heads * m.head_dim})}, f32({-1, heads * m.head_dim}),
                                     rope_attrs("neox", heads, m.head_dim, m.freq_base, 1.0)));
        ASSERT_NE(rope, nullptr);
        std::vector<float> got(static_cast<size_t>(kTokens * heads * m.head_dim));
        KernelArgs a{};
        a.in[0] = which == 0 ? q_raw.data() : k_raw.data();
        a.out = got.data();
        a.n_tokens = kTokens;
        KernelTest::run(rope, a, kTokens, {4});
        const Diff d = compare_rope(got, which == 0 ? q_rope : k_rope, which == 0 ? q_raw : k_raw, m.head_dim, true);
        record("rope (crossval)", d);
        EXPECT_EQ(d.differing, 0) << "layer " << layer;
      }

      // Prompt attention (T = 16) from the reference's roped q, k, and rope_attention from the
      // raw projections: both bit-exact. Then the same tokens one at a time (decode mode),
      // against the reference kernels.
      for (const bool fused : {false, true}) {
        const std::string label = fused ? "rope_attention (crossval)" : "attention (crossval)";
        AttentionRun prompt(*this, {m.n_head, m.n_head_kv, m.head_dim}, 64, fused, "neox", m.freq_base);
        ASSERT_TRUE(prompt.ok());
        const std::vector<float>& q = fused ? q_raw : q_rope;
        const std::vector<float>& k = fused ? k_raw : k_rope;
        Diff d = prompt.step(q, k, v, kTokens, {m.n_head_kv > 1 ? m.n_head / m.n_head_kv : 1});
        record(label, d);
        EXPECT_LE(d.max_rel, kTolerance) << label << " layer " << layer;
        EXPECT_EQ(d.differing, 0) << "layer " << layer;
        // And against the reference binary's own kqv_out.
        const Diff d_ref = compare(prompt.last_output(), want_out);
        record(label + " vs kqv_out", d_ref);
        EXPECT_LE(d_ref.max_rel, kTolerance) << label << " layer " << layer;
        EXPECT_EQ(d_ref.differing, 0) << "layer " << layer;

        AttentionRun decode(*this, {m.n_head, m.n_head_kv, m.head_dim}, 64, fused, "neox", m.freq_base);
        for (int64_t t = 0; t < kTokens; ++t) {
          auto row = [&](const std::vector<float>& a, int64_t width) {
            return std::vector<float>(a.begin() + t * width, a.begin() + (t + 1) * width);
          };
          d = decode.step(row(q, hd), row(k, kvd), row(v, kvd), 1, {});
          record(label, d);
          EXPECT_LE(d.max_rel, kTolerance) << label << " decode layer " << layer << " pos " << t;
        }
      }
    }
  }
}

std::string target_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) c = (c == '-') ? '_' : c;
  return name;
}

INSTANTIATE_TEST_SUITE_P(Targets, KernelTest, ::testing::Values("host", "x86-64-v3"), target_name);
INSTANTIATE_TEST_SUITE_P(Targets, CrossvalKernelTest, ::testing::Values("host", "x86-64-v3"), target_name);

}  // namespace
}  // namespace bitnet::codegen
