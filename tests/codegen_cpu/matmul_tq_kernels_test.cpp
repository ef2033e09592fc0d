// The TQ1_0 / TQ2_0 integer kernels (emit_matmul_tq.cpp) against ref::matmul_i8q_rows_tq, bit for
// bit: rows whose blocks share one scale (files converted from I2_S), rows with per-block scales,
// and tiles mixing both; every ISA path (VNNI, AVX2 vpmaddubsw, portable), matmul, matmul_cat and
// gated_ffn, over arbitrary output ranges.
#include "codegen_cpu/jit.h"
#include "codegen_cpu/matmul_tuning.h"
#include "frontend_gguf/ternary_codec.h"
#include "reference/kernels.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

namespace bitnet::codegen {
namespace {

using abi::KernelArgs;
using ir::DType;

// How the block scales of each row are drawn.
enum class Scales { kUniformRows, kPerBlock, kMixed };

struct TqWeight {
  DType dtype;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  ref::WeightView view() const {
    return {dtype == DType::TQ2_0 ? gguf::GgmlType::TQ2_0 : gguf::GgmlType::TQ1_0, bytes.data(), rows, cols};
  }
};

TqWeight make_weight(DType dtype, int64_t rows, int64_t cols, Scales scales, uint32_t seed) {
  std::mt19937 rng(seed);
  TqWeight w{dtype, rows, cols, {}};
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int8_t> values(static_cast<size_t>(cols));
    for (auto& v : values) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
    const auto row_scale = ref::fp32_to_fp16(0.01f + 0.001f * static_cast<float>(rng() % 1000));
    const bool per_block = scales == Scales::kPerBlock || (scales == Scales::kMixed && r % 3 == 1);
    std::vector<uint16_t> d(static_cast<size_t>(cols / 256), row_scale);
    if (per_block) {
      for (auto& h : d) h = ref::fp32_to_fp16(0.01f + 0.001f * static_cast<float>(rng() % 1000));
      if (d.size() > 1) d[1] = static_cast<uint16_t>(d[0] ^ 1);  // at least two different scales
    }
    const auto bytes =
        dtype == DType::TQ2_0 ? gguf::ternary::encode_tq2_0(values, d) : gguf::ternary::encode_tq1_0(values, d);
    w.bytes.insert(w.bytes.end(), bytes.begin(), bytes.end());
  }
  return w;
}

// i8q activations as the executor passes them: int8 [T][K], T f32 scales, T i32 sums.
struct I8q {
  std::vector<uint8_t> buffer;
  std::vector<int8_t> q;
  std::vector<ref::I8Row> rows;
};

I8q quantize(int64_t tokens, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<float> x(static_cast<size_t>(tokens * cols));
  for (auto& v : x) v = u(rng);
  I8q a;
  a.q.resize(x.size());
  for (int64_t t = 0; t < tokens; ++t)
    a.rows.push_back(ref::quantize_row_i8(x.data() + t * cols, cols, a.q.data() + t * cols));
  a.buffer.resize(static_cast<size_t>(tokens * cols + 8 * tokens));
  std::memcpy(a.buffer.data(), a.q.data(), a.q.size());
  for (int64_t t = 0; t < tokens; ++t) {
    std::memcpy(a.buffer.data() + tokens * cols + 4 * t, &a.rows[static_cast<size_t>(t)].scale, 4);
    std::memcpy(a.buffer.data() + tokens * cols + 4 * tokens + 4 * t, &a.rows[static_cast<size_t>(t)].sum, 4);
  }
  return a;
}

ir::Type type(DType dtype, int64_t rows, int64_t cols) {
  return ir::Type::of(dtype, {rows < 0 ? ir::Dim::tokens() : ir::Dim{rows}, ir::Dim{cols}});
}

KernelDesc desc(ir::OpKind op, const std::vector<const TqWeight*>& weights) {
  KernelDesc d;
  d.op = op;
  d.operands.push_back(type(DType::I8Q, -1, weights[0]->cols));
  int64_t total = 0;
  for (const TqWeight* w : weights) {
    d.operands.push_back(type(w->dtype, w->rows, w->cols));
    total += w->rows;
  }
  if (op == ir::OpKind::GatedFfn) {
    total = weights[0]->rows;
    d.attrs.push_back({"act", std::string("relu2")});
  }
  d.result = type(DType::F32, -1, total);
  return d;
}

std::vector<float> run(const CompiledKernel& k, const I8q& a, const std::vector<const TqWeight*>& weights,
                       int64_t tokens, int64_t width, int64_t begin, int64_t end) {
  std::vector<float> out(static_cast<size_t>(tokens * width), -12345.0f);
  KernelArgs args{};
  args.in[0] = a.buffer.data();
  for (size_t i = 0; i < weights.size(); ++i) args.in[i + 1] = weights[i]->bytes.data();
  args.out = out.data();
  args.n_tokens = tokens;
  args.n_threads = 1;
  k.fn(&args, begin, end);
  return out;
}

std::vector<float> reference(const TqWeight& w, const I8q& a, int64_t tokens) {
  std::vector<float> y(static_cast<size_t>(tokens * w.rows));
  ref::matmul_i8q_rows(a.q.data(), a.rows.data(), tokens, w.view(), 0, w.rows, y.data());
  return y;
}

// The kernel's output equals `want` bit for bit inside [begin, end) and is untouched outside.
void expect_bits(const std::vector<float>& out, const std::vector<float>& want, int64_t tokens, int64_t width,
                 int64_t begin, int64_t end, const std::string& what) {
  int bad = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t c = 0; c < width; ++c) {
      const float got = out[static_cast<size_t>(t * width + c)];
      const float w = c >= begin && c < end ? want[static_cast<size_t>(t * width + c)] : -12345.0f;
      if (std::memcmp(&got, &w, 4) != 0 && bad++ < 5) {
        ADD_FAILURE() << what << ": t=" << t << " col=" << c << " got " << got << " want " << w;
      }
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

struct Variant {
  const char* name;
  const char* target;
  bool portable;
  bool vnni;
};
// VNNI where the host has it, AVX2 vpmaddubsw (x86-64-v3 and v4 have no VNNI, and the host with
// VNNI switched off), and the portable code.
constexpr Variant kVariants[] = {{"host", "host", false, true},
                                 {"host-no-vnni", "host", false, false},
                                 {"x86-64-v3", "x86-64-v3", false, true},
                                 {"x86-64-v4", "x86-64-v4", false, true},
                                 {"portable", "host", true, true}};

std::unique_ptr<Jit> jit_for(const Variant& v) {
  MatmulTuning& t = matmul_tuning();
  t.portable_only = v.portable;
  t.i2s_allow_vnni = v.vnni;
  JitOptions options;
  options.target = v.target;
  auto jit = Jit::create(options);
  EXPECT_TRUE(jit.ok()) << jit.error().message;
  return jit.ok() ? std::move(*jit) : nullptr;
}

class TqKernelPaths : public ::testing::TestWithParam<Variant> {};

TEST_P(TqKernelPaths, MatmulIsBitExact) {
  const MatmulTuning saved = matmul_tuning();
  const Variant& v = GetParam();
  // Mixed: rows 1, 4, 7, ... have per-block scales, the others one scale (both in most tiles).
  const std::vector<TqWeight> weights = {
      make_weight(DType::TQ2_0, 9, 768, Scales::kMixed, 3),
      make_weight(DType::TQ1_0, 13, 512, Scales::kMixed, 4),
  };
  {
    auto jit = jit_for(v);
    ASSERT_NE(jit, nullptr);
    for (const TqWeight& w : weights) {
      auto k = jit->compile_one(desc(ir::OpKind::MatMul, {&w}));
      ASSERT_TRUE(k.ok()) << k.error().message;
      for (int64_t tokens : {1, 3, 6}) {
        const I8q a = quantize(tokens, w.cols, 100 + static_cast<uint32_t>(tokens));
        const std::vector<float> want = reference(w, a, tokens);
        for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, w.rows}, {1, w.rows - 1}, {w.rows - 1, w.rows}}) {
          expect_bits(run(*k, a, {&w}, tokens, w.rows, begin, end), want, tokens, w.rows, begin, end,
                      std::string(v.name) + " " + std::string(ir::dtype_name(w.dtype)) + " " + std::to_string(w.rows) +
                          "x" + std::to_string(w.cols) + " T=" + std::to_string(tokens) + " [" + std::to_string(begin) +
                          "," + std::to_string(end) + ")");
        }
      }
    }
  }
  matmul_tuning() = saved;
}

INSTANTIATE_TEST_SUITE_P(Isa, TqKernelPaths, ::testing::ValuesIn(kVariants),
                         [](const ::testing::TestParamInfo<Variant>& info) {
                           std::string name = info.param.name;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

// Uniform rows are I2_S's arithmetic: the same codes as I2_S with the TQ scale give the same bits.
TEST(TqKernels, UniformRowsEqualTheI2sProduct) {
  constexpr int64_t rows = 6, cols = 512, tokens = 3;
  std::mt19937 rng(9);
  std::vector<int8_t> values(static_cast<size_t>(rows * cols));
  for (auto& v : values) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  const uint16_t d = ref::fp32_to_fp16(0.0371f);
  const std::vector<uint16_t> scales(static_cast<size_t>(rows * cols / 256), d);
  const auto i2s = gguf::ternary::encode_i2s(values, ref::fp16_to_fp32(d));
  const I8q a = quantize(tokens, cols, 4);
  std::vector<float> want(static_cast<size_t>(tokens * rows));
  ref::matmul_i8q_rows(a.q.data(), a.rows.data(), tokens, {gguf::GgmlType::I2_S, i2s.data(), rows, cols}, 0, rows,
                       want.data());
  for (DType dtype : {DType::TQ2_0, DType::TQ1_0}) {
    TqWeight w{dtype, rows, cols,
               dtype == DType::TQ2_0 ? gguf::ternary::encode_tq2_0(values, scales)
                                     : gguf::ternary::encode_tq1_0(values, scales)};
    EXPECT_EQ(reference(w, a, tokens), want) << ir::dtype_name(dtype);
    auto jit = Jit::create();
    ASSERT_TRUE(jit.ok());
    auto k = (*jit)->compile_one(desc(ir::OpKind::MatMul, {&w}));
    ASSERT_TRUE(k.ok()) << k.error().message;
    expect_bits(run(*k, a, {&w}, tokens, rows, 0, rows), want, tokens, rows, 0, rows, "tq vs i2s");
  }
}

TEST(TqKernels, CatAndGatedFfnPlaceEachProduct) {
  const TqWeight q = make_weight(DType::TQ2_0, 7, 512, Scales::kUniformRows, 11);
  const TqWeight k = make_weight(DType::TQ2_0, 3, 512, Scales::kMixed, 12);
  const TqWeight gate = make_weight(DType::TQ1_0, 6, 512, Scales::kUniformRows, 13);
  const TqWeight up = make_weight(DType::TQ1_0, 6, 512, Scales::kMixed, 14);
  auto jit = Jit::create();
  ASSERT_TRUE(jit.ok());
  for (int64_t tokens : {1, 4, 6}) {
    const I8q a = quantize(tokens, 512, 30 + static_cast<uint32_t>(tokens));
    // matmul_cat: q's columns then k's.
    auto cat = (*jit)->compile_one(desc(ir::OpKind::MatMulCat, {&q, &k}));
    ASSERT_TRUE(cat.ok()) << cat.error().message;
    const auto yq = reference(q, a, tokens);
    const auto yk = reference(k, a, tokens);
    std::vector<float> want(static_cast<size_t>(tokens * 10));
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t r = 0; r < 7; ++r) want[static_cast<size_t>(t * 10 + r)] = yq[static_cast<size_t>(t * 7 + r)];
      for (int64_t r = 0; r < 3; ++r) want[static_cast<size_t>(t * 10 + 7 + r)] = yk[static_cast<size_t>(t * 3 + r)];
    }
    expect_bits(run(*cat, a, {&q, &k}, tokens, 10, 2, 9), want, tokens, 10, 2, 9, "matmul_cat");
    // gated_ffn (relu2): relu(gate)^2 * up, as the interpreter.
    auto ffn = (*jit)->compile_one(desc(ir::OpKind::GatedFfn, {&gate, &up}));
    ASSERT_TRUE(ffn.ok()) << ffn.error().message;
    const auto yg = reference(gate, a, tokens);
    const auto yu = reference(up, a, tokens);
    std::vector<float> want_ffn(yg.size());
    for (size_t i = 0; i < yg.size(); ++i) {
      const float r = yg[i] > 0.0f ? yg[i] : 0.0f;
      want_ffn[i] = r * r * yu[i];
    }
    expect_bits(run(*ffn, a, {&gate, &up}, tokens, 6, 0, 6), want_ffn, tokens, 6, 0, 6, "gated_ffn");
  }
}

}  // namespace
}  // namespace bitnet::codegen
