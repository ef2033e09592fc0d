// The matmul-family kernels (matmul, matmul_cat, matmul_add, gated_ffn) against the
// reference kernels: I2_S bit for bit, the float-accumulating types within 1e-5 of the
// product's magnitude, for the host target and the x86-64-v3/v4 baselines, on random and
// on real weights, over arbitrary feature sub-ranges.
#include "codegen_cpu/host_features.h"
#include "codegen_cpu/jit.h"
#include "codegen_cpu/matmul_tuning.h"
#include "compiler/requantize.h"
#include "frontend_gguf/gguf_file.h"
#include "npy.h"
#include "reference/kernels.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <random>

namespace bitnet::codegen {
namespace {

using abi::KernelArgs;
using abi::KernelFn;
using compiler::requantize_f16_to_q6_k;
using compiler::requantize_f16_to_q8_0;

using gguf::GgmlType;
using ir::DType;

const char* const kTargets[] = {"host", "x86-64-v3", "x86-64-v4"};

// One JIT per target for the whole suite (kernels are cached by description).
Jit& jit_for(const std::string& target) {
  static std::map<std::string, std::unique_ptr<Jit>> jits;
  auto& slot = jits[target];
  if (!slot) {
    JitOptions options;
    options.target = target;
    auto jit = Jit::create(options);
    EXPECT_TRUE(jit.ok()) << jit.error().message;
    slot = std::move(*jit);
  }
  return *slot;
}

GgmlType ggml_of(DType t) {
  return static_cast<GgmlType>(ir::dtype_info(t).ggml_type);
}

ir::Type type(DType dtype, int64_t rows, int64_t cols) {
  return ir::Type::of(dtype, {rows < 0 ? ir::Dim::tokens() : ir::Dim{rows}, ir::Dim{cols}});
}

// A weight matrix [rows, cols] of `dtype` with well-scaled random contents.
struct Weight {
  DType dtype;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  const uint8_t* data = nullptr;  // bytes.data() or a mapped tensor
  ref::WeightView view() const { return {ggml_of(dtype), data, rows, cols}; }
};

Weight random_weight(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
  Weight w{
      dtype, rows, cols,
      testing::random_tensor_data(ggml_of(dtype), {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)}, seed)};
  std::mt19937 rng(seed * 7 + 1);
  auto put_half = [&](size_t at) {
    const uint16_t h = ref::fp32_to_fp16(0.01f + 0.1f * static_cast<float>(rng() % 1000) / 1000.0f);
    std::memcpy(w.bytes.data() + at, &h, 2);
  };
  auto blocks = [&](size_t block_bytes, size_t d_offset) {
    for (size_t at = 0; at + block_bytes <= w.bytes.size(); at += block_bytes) put_half(at + d_offset);
  };
  switch (dtype) {
    case DType::Q8_0:
      blocks(34, 0);
      break;
    case DType::Q4_0:
      blocks(18, 0);
      break;
    case DType::Q6_K:
      blocks(210, 208);
      break;
    case DType::TQ1_0:
      blocks(54, 52);
      break;
    case DType::TQ2_0:
      blocks(66, 64);
      break;
    case DType::BF16:
      for (size_t at = 0; at + 2 <= w.bytes.size(); at += 2) {
        const float v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 1000.0f;
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        const auto h = static_cast<uint16_t>(bits >> 16);
        std::memcpy(w.bytes.data() + at, &h, 2);
      }
      break;
    default:
      break;
  }
  w.data = w.bytes.data();
  return w;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float amplitude = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-amplitude, amplitude);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// i8q activations as the executor passes them: int8 [T][K], T f32 scales, T i32 sums.
struct I8q {
  std::vector<uint8_t> buffer;
  std::vector<int8_t> q;
  std::vector<ref::I8Row> rows;
};

I8q quantize(const std::vector<float>& x, int64_t tokens, int64_t cols) {
  I8q a;
  a.q.resize(static_cast<size_t>(tokens * cols));
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

KernelDesc product_desc(ir::OpKind op, DType act, const std::vector<const Weight*>& weights, std::string act_fn = "") {
  KernelDesc d;
  d.op = op;
  const int64_t cols = weights[0]->cols;
  d.operands.push_back(type(act, -1, cols));
  int64_t total = 0;
  for (const Weight* w : weights) {
    d.operands.push_back(type(w->dtype, w->rows, w->cols));
    total += w->rows;
  }
  if (op == ir::OpKind::GatedFfn) {
    total = weights[0]->rows;
    d.attrs.push_back({"act", act_fn});
  }
  if (op == ir::OpKind::MatMulAdd) d.operands.push_back(type(DType::F32, -1, total));
  d.result = type(DType::F32, -1, total);
  return d;
}

CompiledKernel compile(const std::string& target, const KernelDesc& d) {
  auto k = jit_for(target).compile_one(d);
  EXPECT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->split, abi::WorkSplit::kRows);
  return k.ok() ? *k : CompiledKernel{};
}

// Runs `k` over [begin, end) on an output prefilled with a sentinel.
std::vector<float> run(const CompiledKernel& k, const void* x, const std::vector<const void*>& inputs, int64_t tokens,
                       int64_t width, int64_t begin, int64_t end, int64_t pos = 0) {
  std::vector<float> out(static_cast<size_t>(tokens * width), -12345.0f);
  KernelArgs args{};
  args.in[0] = x;
  for (size_t i = 0; i < inputs.size(); ++i) args.in[i + 1] = inputs[i];
  args.out = out.data();
  args.n_tokens = tokens;
  args.pos = pos;
  args.n_threads = 1;
  k.fn(&args, begin, end);
  return out;
}

// The float tolerance: 1e-5 of sum_k |w_k x_k| (the scale of the rounding errors of any
// summation order), plus a denormal floor.
std::vector<float> magnitudes(const Weight& w, const std::vector<float>& x, int64_t tokens) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  std::vector<float> mag(static_cast<size_t>(tokens * w.rows));
  for (int64_t r = 0; r < w.rows; ++r) {
    ref::dequantize_row(w.view(), r, row.data());
    for (int64_t t = 0; t < tokens; ++t) {
      double s = 0;
      for (int64_t k = 0; k < w.cols; ++k)
        s += std::fabs(static_cast<double>(row[static_cast<size_t>(k)]) * x[static_cast<size_t>(t * w.cols + k)]);
      mag[static_cast<size_t>(t * w.rows + r)] = static_cast<float>(s);
    }
  }
  return mag;
}

// Checks out[t][offset + r] for r in the range against want[t][r]: bit-exact or within the
// tolerance, and the sentinel everywhere else.
void expect_columns(const std::vector<float>& out, int64_t width, int64_t tokens, int64_t begin, int64_t end,
                    int64_t offset, int64_t rows, const std::vector<float>& want, const std::vector<float>* mag,
                    const std::string& what) {
  int bad = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t col = offset + r;
      const float got = out[static_cast<size_t>(t * width + col)];
      if (col < begin || col >= end) {
        if (got != -12345.0f && bad++ < 5)
          ADD_FAILURE() << what << ": wrote outside the range at t=" << t << " col=" << col;
        continue;
      }
      const float w = want[static_cast<size_t>(t * rows + r)];
      const bool ok = mag ? std::fabs(got - w) <= 1e-5f * (*mag)[static_cast<size_t>(t * rows + r)] + 1e-30f
                          : std::memcmp(&got, &w, 4) == 0;
      if (!ok && bad++ < 5) ADD_FAILURE() << what << ": t=" << t << " col=" << col << " got " << got << " want " << w;
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

struct Range {
  int64_t begin, end;
};
std::vector<Range> ranges_for(int64_t width) {
  return {{0, width},
          {1, width - 2},
          {5, std::min<int64_t>(width, 38)},
          {width - 1, width},
          {width / 2 + 3, width / 2 + 4}};
}

std::vector<float> ref_i8q(const Weight& w, const I8q& a, int64_t tokens) {
  std::vector<float> y(static_cast<size_t>(tokens * w.rows));
  ref::matmul_i8q_rows(a.q.data(), a.rows.data(), tokens, w.view(), 0, w.rows, y.data());
  return y;
}

// ---- I2_S: bit-exact -------------------------------------------------------------------

void check_i2s(const std::string& target, const Weight& w, uint32_t seed) {
  const CompiledKernel k = compile(target, product_desc(ir::OpKind::MatMul, DType::I8Q, {&w}));
  ASSERT_NE(k.fn, nullptr);
  // 4..16 tokens take the few-token tiles (8, then one of 4, then single tokens): 13 = 8 + 4 + 1,
  // 15 = 8 + 4 + 3 x 1.
  for (int64_t tokens : {1, 2, 3, 4, 6, 7, 8, 13, 15, 16, 17, 64}) {
    const std::vector<float> x =
        random_floats(static_cast<size_t>(tokens * w.cols), seed + static_cast<uint32_t>(tokens), 3.0f);
    const I8q a = quantize(x, tokens, w.cols);
    const std::vector<float> want = ref_i8q(w, a, tokens);
    for (const Range& r : ranges_for(w.rows)) {
      if (r.begin >= r.end) continue;
      const std::vector<float> out = run(k, a.buffer.data(), {w.data}, tokens, w.rows, r.begin, r.end);
      expect_columns(out, w.rows, tokens, r.begin, r.end, 0, w.rows, want, nullptr,
                     target + " i2s " + std::to_string(w.rows) + "x" + std::to_string(w.cols) + " T=" +
                         std::to_string(tokens) + " [" + std::to_string(r.begin) + "," + std::to_string(r.end) + ")");
    }
  }
}

TEST(MatmulKernels, I2sIsBitExact) {
  for (const char* target : kTargets) {
    // Even and odd block counts per row (K/128 = 2, 3, 5), row counts around the tile sizes.
    check_i2s(target, random_weight(DType::I2_S, 96, 256, 1), 10);
    check_i2s(target, random_weight(DType::I2_S, 37, 384, 2), 20);
    check_i2s(target, random_weight(DType::I2_S, 130, 640, 3), 30);
  }
}

// Extreme activations: every q at -128 or 127 with all-2 codes, the largest |D| per row.
TEST(MatmulKernels, I2sExtremesAreExact) {
  Weight w = random_weight(DType::I2_S, 8, 1024, 4);
  for (size_t i = 0; i < 8 * 1024 / 4; ++i) w.bytes[i] = i < 512 ? 0xAA : 0x00;  // codes 2 (rows 0-1), 0 (rest)
  for (const char* target : kTargets) {
    const CompiledKernel k = compile(target, product_desc(ir::OpKind::MatMul, DType::I8Q, {&w}));
    for (float v : {-1.0f, 1.0f}) {
      std::vector<float> x(2 * 1024, v);
      x[5] = -v;
      const I8q a = quantize(x, 2, 1024);
      const std::vector<float> out = run(k, a.buffer.data(), {w.data}, 2, 8, 0, 8);
      expect_columns(out, 8, 2, 0, 8, 0, 8, ref_i8q(w, a, 2), nullptr, std::string(target) + " extremes");
    }
  }
}

// An I2_S weight whose rows 0-2 hold code 2 everywhere and row 3 code 0, the rest random: the
// rows with the largest possible integer sums next to ordinary ones.
Weight extreme_i2s_weight(int64_t rows, int64_t cols, uint32_t seed) {
  Weight w = random_weight(DType::I2_S, rows, cols, seed);
  const size_t row_bytes = static_cast<size_t>(cols / 4);
  for (size_t i = 0; i < 4 * row_bytes; ++i) w.bytes[i] = i < 3 * row_bytes ? 0xAA : 0x00;
  return w;
}

// Sets every activation of token `t` to `v` (no quantizer gives -128: the kernels must not
// care), with its sum, in `a` and in its kernel buffer.
void set_token_to(I8q& a, int64_t t, int8_t v, int64_t tokens, int64_t cols) {
  for (int64_t i = 0; i < cols; ++i) a.q[static_cast<size_t>(t * cols + i)] = v;
  a.rows[static_cast<size_t>(t)].sum = static_cast<int32_t>(v) * static_cast<int32_t>(cols);
  std::memcpy(a.buffer.data() + t * cols, a.q.data() + t * cols, static_cast<size_t>(cols));
  std::memcpy(a.buffer.data() + tokens * cols + 4 * tokens + 4 * t, &a.rows[static_cast<size_t>(t)].sum, 4);
}

// The I8Q x I2_S matmul of `w` compiled by a fresh JIT for `target`, so that it reads the current
// matmul_tuning() (jit_for's JITs cache kernels by description, which does not include it). The
// JIT owns the kernel's code: keep it alive while the kernel runs.
struct TunedKernel {
  std::unique_ptr<Jit> jit;
  CompiledKernel kernel;
};
TunedKernel compile_i2s_with_tuning(const std::string& target, const Weight& w) {
  JitOptions options;
  options.target = target;
  auto jit = Jit::create(options);
  EXPECT_TRUE(jit.ok());
  if (!jit.ok()) return {};
  auto k = (*jit)->compile_one(product_desc(ir::OpKind::MatMul, DType::I8Q, {&w}));
  EXPECT_TRUE(k.ok()) << k.error().message;
  if (!k.ok()) return {};
  return {std::move(*jit), *k};
}

// The AVX2 prefill path sums up to 16 blocks (64 vpmaddubsw lanes of two products each) in
// int16 before widening: rows long enough for whole 16-block runs and a remainder, with the
// largest possible sums (codes all 2 against activations all -128 or all 127, which reach
// -32768 and 32512 per lane) and random ones, stay exact for every tile shape.
TEST(MatmulKernels, I2sAvx2LongRowsAreExact) {
  const MatmulTuning saved = matmul_tuning();
  for (int64_t cols : {int64_t{2048}, int64_t{2560}, int64_t{4352}}) {
    const Weight w = extreme_i2s_weight(13, cols, 60 + static_cast<uint32_t>(cols));
    const int64_t tokens = 7;
    I8q a = quantize(random_floats(static_cast<size_t>(tokens * cols), 61, 3.0f), tokens, cols);
    set_token_to(a, 0, -128, tokens, cols);  // tokens 0 and 1 at the int8 extremes
    set_token_to(a, 1, 127, tokens, cols);
    const std::vector<float> want = ref_i8q(w, a, tokens);
    for (auto [rows, toks] : std::vector<std::pair<int, int>>{{4, 2}, {3, 3}, {2, 4}, {1, 7}}) {
      matmul_tuning() = saved;
      matmul_tuning().i2s_gemm_rows_avx2 = rows;
      matmul_tuning().i2s_gemm_tokens_avx2 = toks;
      const TunedKernel k = compile_i2s_with_tuning("x86-64-v3", w);
      ASSERT_NE(k.kernel.fn, nullptr);
      for (const Range& r : ranges_for(w.rows)) {
        const std::vector<float> out = run(k.kernel, a.buffer.data(), {w.data}, tokens, w.rows, r.begin, r.end);
        expect_columns(out, w.rows, tokens, r.begin, r.end, 0, w.rows, want, nullptr,
                       "avx2 K=" + std::to_string(cols) + " tile " + std::to_string(rows) + "x" + std::to_string(toks));
      }
    }
  }
  matmul_tuning() = saved;
}

// The AVX2 decode path sums 8 blocks of vpmaddubsw lanes in int16, half of them with the codes
// scaled by 4 (up to -32768 per lane): one token at the int8 extremes or random, with rows of
// whole 8-block runs and remainders (odd ones too), stays exact for several tile heights.
TEST(MatmulKernels, I2sAvx2DecodeIsExact) {
  const MatmulTuning saved = matmul_tuning();
  for (int64_t cols : {int64_t{1024}, int64_t{2560}, int64_t{3200}, int64_t{4352}}) {
    const Weight w = extreme_i2s_weight(13, cols, 70 + static_cast<uint32_t>(cols));
    for (int gemv_rows : {4, 1, 3}) {
      matmul_tuning() = saved;
      matmul_tuning().i2s_gemv_rows = gemv_rows;
      const TunedKernel k = compile_i2s_with_tuning("x86-64-v3", w);
      ASSERT_NE(k.kernel.fn, nullptr);
      for (int mode = 0; mode < 3; ++mode) {
        I8q a = quantize(random_floats(static_cast<size_t>(cols), 71 + static_cast<uint32_t>(mode), 3.0f), 1, cols);
        if (mode < 2) set_token_to(a, 0, mode == 0 ? int8_t{-128} : int8_t{127}, 1, cols);
        const std::vector<float> want = ref_i8q(w, a, 1);
        for (const Range& r : ranges_for(w.rows)) {
          const std::vector<float> out = run(k.kernel, a.buffer.data(), {w.data}, 1, w.rows, r.begin, r.end);
          expect_columns(out, w.rows, 1, r.begin, r.end, 0, w.rows, want, nullptr,
                         "avx2 decode K=" + std::to_string(cols) + " rows " + std::to_string(gemv_rows) + " mode " +
                             std::to_string(mode));
        }
      }
    }
  }
  matmul_tuning() = saved;
}

// Other tile shapes and code shapes (the benchmark's variants, and the portable fallback a CPU
// without AVX2 gets) stay exact.
TEST(MatmulKernels, I2sTuningVariantsAreBitExact) {
  const MatmulTuning saved = matmul_tuning();
  const Weight w = random_weight(DType::I2_S, 45, 640, 5);
  struct Variant {
    int gemv_rows, gemm_rows, gemm_tokens, split, bits, streams, accs;
    bool vnni, portable;
    int avx2_rows = 4, avx2_tokens = 2;  // the 256-bit vpmaddubsw path's prefill tile
  };
  for (const Variant& v :
       {Variant{8, 2, 3, 2, 512, 2, 2, true, false}, Variant{2, 6, 5, 1, 512, 1, 1, true, false},
        Variant{4, 4, 4, 4, 256, 2, 2, true, false}, Variant{4, 4, 4, 4, 512, 1, 1, false, false},
        Variant{3, 3, 2, 2, 256, 2, 1, false, false, 3, 3}, Variant{3, 3, 2, 2, 256, 2, 1, false, false, 2, 5},
        Variant{3, 3, 2, 2, 256, 2, 1, false, false, 6, 2}, Variant{3, 3, 2, 2, 256, 2, 1, false, false, 1, 4},
        Variant{4, 8, 4, 4, 512, 2, 1, true, true}}) {
    MatmulTuning& t = matmul_tuning();
    t.i2s_gemv_rows = v.gemv_rows;
    t.i2s_gemm_rows = v.gemm_rows;
    t.i2s_gemm_tokens = v.gemm_tokens;
    t.i2s_gemm_rows_avx2 = v.avx2_rows;
    t.i2s_gemm_tokens_avx2 = v.avx2_tokens;
    t.i2s_gemv_split = v.split;
    t.i2s_max_vector_bits = v.bits;
    t.i2s_gemv_streams = v.streams;
    t.i2s_gemm_accs = v.accs;
    t.i2s_allow_vnni = v.vnni;
    t.portable_only = v.portable;
    auto jit = Jit::create();
    ASSERT_TRUE(jit.ok());
    auto k = (*jit)->compile_one(product_desc(ir::OpKind::MatMul, DType::I8Q, {&w}));
    ASSERT_TRUE(k.ok()) << k.error().message;
    for (int64_t tokens : {1, 4, 11}) {
      const I8q a = quantize(random_floats(static_cast<size_t>(tokens * w.cols), 50 + static_cast<uint32_t>(tokens)),
                             tokens, w.cols);
      for (const Range& r : ranges_for(w.rows)) {
        const std::vector<float> out = run(*k, a.buffer.data(), {w.data}, tokens, w.rows, r.begin, r.end);
        expect_columns(out, w.rows, tokens, r.begin, r.end, 0, w.rows, ref_i8q(w, a, tokens), nullptr,
                       "variant rows " + std::to_string(v.gemv_rows) + " avx2 tile " + std::to_string(v.avx2_rows) +
                           "x" + std::to_string(v.avx2_tokens) + " split " + std::to_string(v.split) + " bits " +
                           std::to_string(v.bits) + (v.portable ? " portable" : "") + " T=" + std::to_string(tokens));
      }
    }
  }
  matmul_tuning() = saved;
}

// ---- float-accumulating types ------------------------------------------------------------

// ref::matmul_rows in the mode the interpreter picks (decode for one token): for F16 weights
// the reference rounds the activations to F16 in decode mode and whenever K % 16 != 0, and
// so do the kernels.
std::vector<float> float_reference(const Weight& w, const std::vector<float>& x, int64_t tokens) {
  std::vector<float> want(static_cast<size_t>(tokens * w.rows));
  ref::matmul_rows(x.data(), tokens, w.view(), 0, w.rows, tokens == 1 ? ref::Mode::kDecode : ref::Mode::kPrompt,
                   want.data());
  return want;
}

void check_float(const std::string& target, const Weight& w, uint32_t seed) {
  const CompiledKernel k = compile(target, product_desc(ir::OpKind::MatMul, DType::F32, {&w}));
  ASSERT_NE(k.fn, nullptr);
  for (int64_t tokens : {1, 2, 3, 7, 16}) {
    const std::vector<float> x =
        random_floats(static_cast<size_t>(tokens * w.cols), seed + static_cast<uint32_t>(tokens));
    const std::vector<float> want = float_reference(w, x, tokens);
    const std::vector<float> mag = magnitudes(w, x, tokens);
    for (const Range& r : ranges_for(w.rows)) {
      if (r.begin >= r.end) continue;
      const std::vector<float> out = run(k, x.data(), {w.data}, tokens, w.rows, r.begin, r.end);
      expect_columns(out, w.rows, tokens, r.begin, r.end, 0, w.rows, want, &mag,
                     target + " " + std::string(ir::dtype_name(w.dtype)) + " " + std::to_string(w.rows) + "x" +
                         std::to_string(w.cols) + " T=" + std::to_string(tokens));
      // Odd positions walk the rows backwards (zigzag): the same values.
      const std::vector<float> odd = run(k, x.data(), {w.data}, tokens, w.rows, r.begin, r.end, 7);
      EXPECT_EQ(std::memcmp(odd.data(), out.data(), out.size() * 4), 0) << target << " odd position T=" << tokens;
    }
  }
}

TEST(MatmulKernels, FloatWeightsMatchTheReference) {
  for (const char* target : kTargets) {
    for (DType t : {DType::F16, DType::F32, DType::BF16}) {
      check_float(target, random_weight(t, 41, 256, 11), 100);
      check_float(target, random_weight(t, 19, 72, 12), 200);  // K % 16 != 0: the scalar tail
    }
  }
}

// The portable fallback (128-bit vectors, integer f16 decoding) and single-stream decode.
TEST(MatmulKernels, FloatVariantsMatchTheReference) {
  const MatmulTuning saved = matmul_tuning();
  for (bool portable : {true, false}) {
    matmul_tuning() = MatmulTuning{};
    matmul_tuning().portable_only = portable;
    matmul_tuning().float_gemv_streams = portable ? 2 : 1;
    matmul_tuning().float_gemv_rows = portable ? 4 : 3;
    auto jit = Jit::create();
    ASSERT_TRUE(jit.ok());
    std::vector<Weight> weights;
    for (DType t : {DType::F16, DType::BF16, DType::Q8_0, DType::Q6_K, DType::TQ1_0})
      weights.push_back(random_weight(t, 29, 256, 13));
    weights.push_back(random_weight(DType::F16, 29, 72, 14));  // K % 16 != 0: every activation rounded to F16
    for (const Weight& w : weights) {
      const DType t = w.dtype;
      auto k = (*jit)->compile_one(product_desc(ir::OpKind::MatMul, DType::F32, {&w}));
      ASSERT_TRUE(k.ok()) << k.error().message;
      for (int64_t tokens : {1, 6}) {
        const std::vector<float> x =
            random_floats(static_cast<size_t>(tokens * w.cols), 400 + static_cast<uint32_t>(tokens));
        const std::vector<float> want = float_reference(w, x, tokens);
        const std::vector<float> mag = magnitudes(w, x, tokens);
        for (const Range& r : ranges_for(w.rows)) {
          const std::vector<float> out = run(*k, x.data(), {w.data}, tokens, w.rows, r.begin, r.end);
          expect_columns(out, w.rows, tokens, r.begin, r.end, 0, w.rows, want, &mag,
                         std::string(portable ? "portable " : "streams1 ") + std::string(ir::dtype_name(t)));
        }
      }
    }
  }
  matmul_tuning() = saved;
}

// Several one-token rows in one call (KernelArgs::decode_rows: batched decode, the logits rows
// of several sequences) must give each row exactly what the kernel gives that row alone, for
// batch invariance: every float weight type (F16, BF16, F32 and Q8_0 take the chunked loop
// nest, Q6_K the generic tiles), every target and the portable code, row ranges with partial
// row tiles, token counts with partial groups, and the chunked nest with one K chunk and with
// many; also a float gated FFN (two weights per tile).
std::vector<float> run_rows(const CompiledKernel& k, const std::vector<float>& x, const std::vector<const void*>& w,
                            int64_t tokens, int64_t cols, int64_t width, int64_t begin, int64_t end, bool rows) {
  std::vector<float> out(static_cast<size_t>(tokens * width), -12345.0f);
  std::vector<float> scratch(static_cast<size_t>(tokens * cols + 64));
  KernelArgs args{};
  args.in[0] = x.data();
  for (size_t i = 0; i < w.size(); ++i) args.in[i + 1] = w[i];
  args.out = out.data();
  args.n_tokens = tokens;
  args.n_threads = 1;
  args.scratch = scratch.data();
  args.scratch_stride = static_cast<int64_t>(scratch.size() * sizeof(float));
  args.decode_rows = rows ? 1 : 0;
  k.fn(&args, begin, end);
  return out;
}

TEST(MatmulKernels, DecodeRowsMatchOneTokenCallsBitForBit) {
  const MatmulTuning saved = matmul_tuning();
  struct Tuning {
    const char* name;
    bool portable;
    int chunk_bytes;
    int64_t min_k;  // 0: the chunked nest at K = 256 too; the default keeps the generic tiles there
  };
  std::vector<Weight> weights;
  for (DType t : {DType::F16, DType::BF16, DType::F32, DType::Q8_0, DType::Q6_K})
    weights.push_back(random_weight(t, 29, 256, 90 + static_cast<uint32_t>(weights.size())));
  const Weight gate = random_weight(DType::F16, 26, 256, 97);
  const Weight up = random_weight(DType::F16, 26, 256, 98);
  const Tuning by_default{"default", false, 16384, MatmulTuning{}.float_rows_min_k};
  const Tuning one_chunk{"one chunk", false, 16384, 0};
  const Tuning one_block{"one block per chunk", false, 1, 0};
  const Tuning portable{"portable", true, 1024, 0};
  const std::vector<std::pair<const char*, Tuning>> runs = {
      {"host", by_default},     {"host", one_chunk},      {"host", one_block},     {"host", portable},
      {"x86-64-v3", one_chunk}, {"x86-64-v3", one_block}, {"x86-64-v4", one_block}};
  for (const auto& [target, tuning] : runs) {
    matmul_tuning() = MatmulTuning{};
    matmul_tuning().portable_only = tuning.portable;
    matmul_tuning().float_rows_chunk_bytes = tuning.chunk_bytes;
    matmul_tuning().float_rows_min_k = tuning.min_k;
    JitOptions options;
    options.target = target;
    auto jit = Jit::create(options);
    ASSERT_TRUE(jit.ok());
    auto check = [&](const KernelDesc& desc, const std::vector<const void*>& data, int64_t cols, int64_t width,
                     const std::string& what) {
      auto k = (*jit)->compile_one(desc);
      ASSERT_TRUE(k.ok()) << k.error().message;
      for (int64_t tokens : {2, 3, 7, 8, 13}) {
        const std::vector<float> x =
            random_floats(static_cast<size_t>(tokens * cols), 99 + static_cast<uint32_t>(tokens));
        for (const Range& r : ranges_for(width)) {
          const std::vector<float> together = run_rows(*k, x, data, tokens, cols, width, r.begin, r.end, true);
          std::vector<float> alone(together.size());
          for (int64_t t = 0; t < tokens; ++t) {
            const std::vector<float> row(x.begin() + t * cols, x.begin() + (t + 1) * cols);
            const std::vector<float> one = run_rows(*k, row, data, 1, cols, width, r.begin, r.end, false);
            std::copy(one.begin(), one.end(), alone.begin() + t * width);
          }
          EXPECT_EQ(std::memcmp(together.data(), alone.data(), together.size() * 4), 0)
              << target << " " << tuning.name << " " << what << " T=" << tokens << " [" << r.begin << "," << r.end
              << ")";
        }
      }
    };
    for (const Weight& w : weights) {
      check(product_desc(ir::OpKind::MatMul, DType::F32, {&w}), {w.data}, w.cols, w.rows,
            std::string(ir::dtype_name(w.dtype)));
    }
    check(product_desc(ir::OpKind::GatedFfn, DType::F32, {&gate, &up}, "silu"), {gate.data, up.data}, gate.cols,
          gate.rows, "gated f16");
  }
  matmul_tuning() = saved;
}

TEST(MatmulKernels, BlockQuantizedWeightsMatchTheReference) {
  for (const char* target : kTargets) {
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q6_K, DType::TQ1_0, DType::TQ2_0}) {
      check_float(target, random_weight(t, 37, 512, 21), 300);
    }
  }
}

// ---- fused epilogues -------------------------------------------------------------------------

TEST(MatmulKernels, MatmulCatPlacesEachProduct) {
  const Weight q = random_weight(DType::I2_S, 64, 256, 31);
  const Weight kw = random_weight(DType::I2_S, 16, 256, 32);
  const Weight v = random_weight(DType::I2_S, 16, 256, 33);
  for (const char* target : kTargets) {
    const CompiledKernel k = compile(target, product_desc(ir::OpKind::MatMulCat, DType::I8Q, {&q, &kw, &v}));
    for (int64_t tokens : {1, 5}) {
      const I8q a =
          quantize(random_floats(static_cast<size_t>(tokens * 256), 40 + static_cast<uint32_t>(tokens)), tokens, 256);
      for (const Range& r : {Range{0, 96}, Range{10, 70}, Range{63, 81}, Range{80, 96}, Range{70, 75}}) {
        const std::vector<float> out = run(k, a.buffer.data(), {q.data, kw.data, v.data}, tokens, 96, r.begin, r.end);
        int64_t offset = 0;
        for (const Weight* w : {&q, &kw, &v}) {
          expect_columns(out, 96, tokens, r.begin, r.end, offset, w->rows, ref_i8q(*w, a, tokens), nullptr,
                         std::string(target) + " cat part at " + std::to_string(offset));
          offset += w->rows;
        }
      }
    }
  }
  // Float weights too (the LM-head-like path), one of them F16 and one F32.
  const Weight a16 = random_weight(DType::F16, 20, 128, 34);
  const Weight b32 = random_weight(DType::F32, 12, 128, 35);
  const CompiledKernel k = compile("host", product_desc(ir::OpKind::MatMulCat, DType::F32, {&a16, &b32}));
  const std::vector<float> x = random_floats(3 * 128, 36);
  const std::vector<float> out = run(k, x.data(), {a16.data, b32.data}, 3, 32, 7, 25);
  int64_t offset = 0;
  for (const Weight* w : {&a16, &b32}) {
    std::vector<float> want(static_cast<size_t>(3 * w->rows));
    ref::matmul_rows(x.data(), 3, w->view(), 0, w->rows, ref::Mode::kPrompt, want.data());
    const std::vector<float> mag = magnitudes(*w, x, 3);
    expect_columns(out, 32, 3, 7, 25, offset, w->rows, want, &mag, "float cat");
    offset += w->rows;
  }
}

TEST(MatmulKernels, MatmulAddAddsTheResidualExactly) {
  const Weight w = random_weight(DType::I2_S, 70, 384, 41);
  for (const char* target : kTargets) {
    const CompiledKernel k = compile(target, product_desc(ir::OpKind::MatMulAdd, DType::I8Q, {&w}));
    for (int64_t tokens : {1, 6}) {
      const I8q a = quantize(random_floats(static_cast<size_t>(tokens * 384), 42), tokens, 384);
      const std::vector<float> residual = random_floats(static_cast<size_t>(tokens * 70), 43, 10.0f);
      std::vector<float> want = ref_i8q(w, a, tokens);
      for (size_t i = 0; i < want.size(); ++i) want[i] = residual[i] + want[i];
      for (const Range& r : ranges_for(70)) {
        std::vector<float> out(static_cast<size_t>(tokens * 70), -12345.0f);
        KernelArgs args{};
        args.in[0] = a.buffer.data();
        args.in[1] = w.data;
        args.in[2] = residual.data();
        args.out = out.data();
        args.n_tokens = tokens;
        k.fn(&args, r.begin, r.end);
        expect_columns(out, 70, tokens, r.begin, r.end, 0, 70, want, nullptr, std::string(target) + " matmul_add");
      }
    }
  }
}

// act(gate) * up exactly as the interpreter: silu_row over the whole row (ggml's exp for
// the 16-blocks, libm for the last F % 16 lanes, which get the float tolerance here).
std::vector<float> gated_reference(const std::vector<float>& gate, const std::vector<float>& up, int64_t tokens,
                                   int64_t features, const std::string& act) {
  std::vector<float> out(gate.size());
  for (int64_t t = 0; t < tokens; ++t) {
    const float* g = gate.data() + t * features;
    float* o = out.data() + t * features;
    if (act == "silu") {
      ref::silu_row(g, features, o);
    } else {
      for (int64_t i = 0; i < features; ++i) {
        const float r = g[i] > 0.0f ? g[i] : 0.0f;
        o[i] = r * r;
      }
    }
    for (int64_t i = 0; i < features; ++i) o[i] = o[i] * up[static_cast<size_t>(t * features + i)];
  }
  return out;
}

TEST(MatmulKernels, GatedFfnMatchesTheInterpreter) {
  for (int64_t features : {96, 100}) {
    const Weight gate = random_weight(DType::I2_S, features, 256, 51);
    const Weight up = random_weight(DType::I2_S, features, 256, 52);
    for (const char* act : {"silu", "relu2"}) {
      for (const char* target : kTargets) {
        const CompiledKernel k = compile(target, product_desc(ir::OpKind::GatedFfn, DType::I8Q, {&gate, &up}, act));
        for (int64_t tokens : {1, 3, 8}) {
          const I8q a = quantize(random_floats(static_cast<size_t>(tokens * 256), 53, 2.0f), tokens, 256);
          const std::vector<float> want =
              gated_reference(ref_i8q(gate, a, tokens), ref_i8q(up, a, tokens), tokens, features, act);
          // The libm lanes (the last features % 16) get a relative tolerance, the rest must be exact.
          const int64_t exact_end = features - features % 16;
          for (const Range& r : ranges_for(features)) {
            const std::vector<float> out =
                run(k, a.buffer.data(), {gate.data, up.data}, tokens, features, r.begin, r.end);
            const std::string what = std::string(target) + " gated " + act + " F=" + std::to_string(features) +
                                     " T=" + std::to_string(tokens);
            int bad = 0;
            for (int64_t t = 0; t < tokens; ++t) {
              for (int64_t i = 0; i < features; ++i) {
                const auto at = static_cast<size_t>(t * features + i);
                const float got = out[at];
                if (i < r.begin || i >= r.end) {
                  bad += got != -12345.0f;
                } else if (i >= exact_end && std::string(act) == "silu") {
                  bad += !(std::fabs(got - want[at]) <= 1e-5f * std::fabs(want[at]) + 1e-30f);
                } else {
                  bad += std::memcmp(&got, &want[at], 4) != 0;
                }
              }
            }
            EXPECT_EQ(bad, 0) << what;
          }
        }
      }
    }
  }
}

// Prefill in K chunks (MatmulTuning::i2s_gemm_chunk_bytes): chunk sizes that leave a short or
// odd last chunk, token counts across the blocks of partial sums (32 tokens) with remainders,
// on every prefill ISA (AVX2 never chunks and must not change), for one weight and for the gate
// and up weights of a gated FFN (two weights per row tile), stay bit-exact.
TEST(MatmulKernels, I2sPrefillInKChunksIsExact) {
  const MatmulTuning saved = matmul_tuning();
  const int64_t cols = 13 * 128;
  const Weight w = random_weight(DType::I2_S, 21, cols, 71);
  const Weight gate = random_weight(DType::I2_S, 19, cols, 72);
  const Weight up = random_weight(DType::I2_S, 19, cols, 73);
  struct Isa {
    const char* name;
    const char* target;
    int bits;
    bool vnni;
  };
  // x86-64-v4 has no VNNI: the VNNI paths need the host's (where it has them).
  for (const Isa& isa : {Isa{"vnni512", "host", 512, true}, Isa{"maddubs512", "x86-64-v4", 512, false},
                         Isa{"vnni256", "host", 256, true}, Isa{"avx2", "x86-64-v3", 512, true}}) {
    for (int chunk_bytes : {3072, 4096, 1}) {
      matmul_tuning() = MatmulTuning{};
      matmul_tuning().i2s_gemm_chunk_bytes = chunk_bytes;
      matmul_tuning().i2s_max_vector_bits = isa.bits;
      matmul_tuning().i2s_allow_vnni = isa.vnni;
      JitOptions options;
      options.target = isa.target;
      auto jit = Jit::create(options);
      ASSERT_TRUE(jit.ok());
      auto k = (*jit)->compile_one(product_desc(ir::OpKind::MatMul, DType::I8Q, {&w}));
      ASSERT_TRUE(k.ok()) << k.error().message;
      auto gated = (*jit)->compile_one(product_desc(ir::OpKind::GatedFfn, DType::I8Q, {&gate, &up}, "relu2"));
      ASSERT_TRUE(gated.ok()) << gated.error().message;
      for (int64_t tokens : {4, 9, 33, 71}) {
        const std::string what =
            std::string(isa.name) + " chunk " + std::to_string(chunk_bytes) + " B T=" + std::to_string(tokens);
        const I8q a = quantize(
            random_floats(static_cast<size_t>(tokens * cols), 80 + static_cast<uint32_t>(tokens), 3.0f), tokens, cols);
        for (const Range& r : ranges_for(w.rows)) {
          const std::vector<float> out = run(*k, a.buffer.data(), {w.data}, tokens, w.rows, r.begin, r.end);
          expect_columns(out, w.rows, tokens, r.begin, r.end, 0, w.rows, ref_i8q(w, a, tokens), nullptr, what);
        }
        const std::vector<float> want =
            gated_reference(ref_i8q(gate, a, tokens), ref_i8q(up, a, tokens), tokens, gate.rows, "relu2");
        const std::vector<float> out =
            run(*gated, a.buffer.data(), {gate.data, up.data}, tokens, gate.rows, 0, gate.rows);
        EXPECT_EQ(std::memcmp(out.data(), want.data(), out.size() * 4), 0) << what << " gated";
      }
    }
  }
  matmul_tuning() = saved;
}

// The few-token prefill tiles (fields extracted in registers, MatmulTuning::i2s_direct_*) of
// other shapes, with 512- and 256-bit VNNI, for one weight and a gated FFN's two: the tree
// epilogue (whole trees of 16 rows) and the per-row one, every token count from 4 to 17, rows
// at the largest sums and tokens at the int8 extremes, stay bit-exact.
TEST(MatmulKernels, I2sFewTokenTilesAreExact) {
  TargetFeatures host;
  std::string error;
  ASSERT_TRUE(resolve_target("host", host, &error)) << error;
  if (!host.avx512vnni && !host.avxvnni) {
    // Not a skip of the checks below (they run on the path this CPU gets), a note that the
    // few-token tiles are not among them here.
    std::cout << "note: this CPU has no VNNI; the few-token tiles are not generated for it\n";
  }
  const MatmulTuning saved = matmul_tuning();
  const int64_t cols = 7 * 128;
  const Weight w = extreme_i2s_weight(23, cols, 90);
  const Weight gate = extreme_i2s_weight(21, cols, 91);
  const Weight up = random_weight(DType::I2_S, 21, cols, 92);
  for (int bits : {512, 256}) {
    for (auto [rows, tokens] : std::vector<std::pair<int, int>>{{4, 8}, {8, 4}, {2, 16}, {6, 3}, {1, 5}}) {
      matmul_tuning() = saved;
      matmul_tuning().i2s_max_vector_bits = bits;
      matmul_tuning().i2s_direct_rows = rows;
      matmul_tuning().i2s_direct_tokens = tokens;
      matmul_tuning().i2s_direct_max_tokens = 17;
      auto jit = Jit::create();
      ASSERT_TRUE(jit.ok());
      auto k = (*jit)->compile_one(product_desc(ir::OpKind::MatMul, DType::I8Q, {&w}));
      ASSERT_TRUE(k.ok()) << k.error().message;
      auto gated = (*jit)->compile_one(product_desc(ir::OpKind::GatedFfn, DType::I8Q, {&gate, &up}, "relu2"));
      ASSERT_TRUE(gated.ok()) << gated.error().message;
      for (int64_t n = 4; n <= 17; ++n) {
        const std::string what = std::to_string(bits) + "-bit tile " + std::to_string(rows) + "x" +
                                 std::to_string(tokens) + " T=" + std::to_string(n);
        I8q a = quantize(random_floats(static_cast<size_t>(n * cols), 93 + static_cast<uint32_t>(n), 3.0f), n, cols);
        set_token_to(a, 0, -128, n, cols);
        set_token_to(a, n - 1, 127, n, cols);
        for (const Range& r : ranges_for(w.rows)) {
          const std::vector<float> out = run(*k, a.buffer.data(), {w.data}, n, w.rows, r.begin, r.end);
          expect_columns(out, w.rows, n, r.begin, r.end, 0, w.rows, ref_i8q(w, a, n), nullptr, what);
        }
        const std::vector<float> want = gated_reference(ref_i8q(gate, a, n), ref_i8q(up, a, n), n, gate.rows, "relu2");
        const std::vector<float> out = run(*gated, a.buffer.data(), {gate.data, up.data}, n, gate.rows, 0, gate.rows);
        EXPECT_EQ(std::memcmp(out.data(), want.data(), out.size() * 4), 0) << what << " gated";
      }
    }
  }
  matmul_tuning() = saved;
}

// Float-weight gated_ffn (a llama FFN in F16): the products within tolerance, so compare the
// epilogue against the kernel's own products only loosely.
TEST(MatmulKernels, GatedFfnWithFloatWeights) {
  const Weight gate = random_weight(DType::F16, 48, 128, 61);
  const Weight up = random_weight(DType::F16, 48, 128, 62);
  const CompiledKernel k = compile("host", product_desc(ir::OpKind::GatedFfn, DType::F32, {&gate, &up}, "silu"));
  const std::vector<float> x = random_floats(2 * 128, 63);
  std::vector<float> g(2 * 48), u(2 * 48);
  ref::matmul_rows(x.data(), 2, gate.view(), 0, 48, ref::Mode::kPrompt, g.data());
  ref::matmul_rows(x.data(), 2, up.view(), 0, 48, ref::Mode::kPrompt, u.data());
  const std::vector<float> want = gated_reference(g, u, 2, 48, "silu");
  const std::vector<float> out = run(k, x.data(), {gate.data, up.data}, 2, 48, 3, 45);
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t i = 3; i < 45; ++i) {
      const auto at = static_cast<size_t>(t * 48 + i);
      EXPECT_NEAR(out[at], want[at], 1e-4f * (1.0f + std::fabs(want[at]))) << t << "," << i;
    }
}

// ---- errors ----------------------------------------------------------------------------------

TEST(MatmulKernels, RejectsI2sWithFloatActivations) {
  const Weight w = random_weight(DType::I2_S, 8, 128, 71);
  auto k = jit_for("host").compile_one(product_desc(ir::OpKind::MatMul, DType::F32, {&w}));
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.error().message.find("i8q"), std::string::npos) << k.error().message;
}

// ---- real weights ------------------------------------------------------------------------------

Weight mapped(const gguf::GgufFile& file, const std::string& name) {
  const gguf::TensorInfo* t = file.find_tensor(name);
  EXPECT_NE(t, nullptr) << name;
  Weight w{t->type == GgmlType::F16 ? DType::F16 : DType::I2_S,
           static_cast<int64_t>(t->ne[1]),
           static_cast<int64_t>(t->ne[0]),
           {}};
  w.data = t->data.data();
  return w;
}

TEST(MatmulKernels, RealModelWeights) {
  BITNET_REQUIRE_SHARED(shared);
  auto file = gguf::GgufFile::open((shared / "models" / "bitnet-i2s" / "b158-small-gqa.i2_s.gguf").string());
  ASSERT_TRUE(file.ok()) << file.error().message;
  for (const char* target : {"host", "x86-64-v3"}) {
    for (const char* name :
         {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.1.ffn_down.weight", "blk.3.ffn_gate.weight"}) {
      const Weight w = mapped(*file, name);
      ASSERT_EQ(w.dtype, DType::I2_S) << name;
      check_i2s(target, w, 81);
    }
    // The tied LM head: F16 token_embd [32000, 384], decode and a few tokens, in slices.
    const Weight head = mapped(*file, "token_embd.weight");
    ASSERT_EQ(head.dtype, DType::F16);
    const CompiledKernel k = compile(target, product_desc(ir::OpKind::MatMul, DType::F32, {&head}));
    for (int64_t tokens : {1, 5}) {
      const std::vector<float> x = random_floats(static_cast<size_t>(tokens * head.cols), 90, 2.0f);
      const std::vector<float> want = float_reference(head, x, tokens);
      const std::vector<float> mag = magnitudes(head, x, tokens);
      std::vector<float> out(want.size(), -12345.0f);
      KernelArgs args{};
      args.in[0] = x.data();
      args.in[1] = head.data;
      args.out = out.data();
      args.n_tokens = tokens;
      for (int64_t begin = 0; begin < head.rows; begin += 4096) k.fn(&args, begin, std::min(head.rows, begin + 4096));
      expect_columns(out, head.rows, tokens, 0, head.rows, 0, head.rows, want, &mag, std::string(target) + " lm head");
    }
  }
}

// ---- teacher forcing on the reference's own intermediates ------------------------------------

// The crossval intermediates of one model: file by (ggml tensor name, op) from manifest.tsv.
class Intermediates {
 public:
  explicit Intermediates(const std::filesystem::path& dir) : dir_(dir) {
    const std::vector<uint8_t> bytes = testing::read_file(dir / "manifest.tsv");
    std::string text(bytes.begin(), bytes.end());
    size_t at = 0;
    while (at < text.size()) {
      const size_t end = std::min(text.find('\n', at), text.size());
      const std::string line = text.substr(at, end - at);
      at = end + 1;
      const size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1), t3 = line.find('\t', t2 + 1);
      if (t3 == std::string::npos) continue;
      files_[line.substr(t1 + 1, t2 - t1 - 1) + "/" + line.substr(t2 + 1, t3 - t2 - 1)] = line.substr(0, t1);
    }
  }
  std::vector<float> get(const std::string& name, const std::string& op) const {
    auto it = files_.find(name + "/" + op);
    EXPECT_NE(it, files_.end()) << name << " " << op;
    if (it == files_.end()) return {};
    auto a = testing::read_npy(dir_ / it->second);
    EXPECT_TRUE(a.ok()) << it->second;
    return a.ok() ? a->f32 : std::vector<float>{};
  }

 private:
  std::filesystem::path dir_;
  std::map<std::string, std::string> files_;
};

// Runs a fused kernel on the reference's input (quantized as the reference does) for all 16
// tokens at once (prefill path) and token by token (decode path); every value must be the
// reference's bit for bit.
void expect_teacher_forced(const CompiledKernel& k, const std::vector<float>& x, int64_t cols,
                           const std::vector<const void*>& weights, const std::vector<float>* residual,
                           const std::vector<float>& want, int64_t width, const std::string& what) {
  const int64_t tokens = static_cast<int64_t>(x.size()) / cols;
  ASSERT_EQ(static_cast<int64_t>(want.size()), tokens * width) << what;
  for (int64_t step : {tokens, int64_t{1}}) {
    std::vector<float> out(want.size(), -12345.0f);
    for (int64_t t0 = 0; t0 < tokens; t0 += step) {
      const std::vector<float> part(x.begin() + t0 * cols, x.begin() + (t0 + step) * cols);
      const I8q a = quantize(part, step, cols);
      KernelArgs args{};
      args.in[0] = a.buffer.data();
      for (size_t i = 0; i < weights.size(); ++i) args.in[i + 1] = weights[i];
      if (residual) args.in[2] = residual->data() + t0 * width;
      args.out = out.data() + t0 * width;
      args.n_tokens = step;
      k.fn(&args, 0, width / 2);  // two "threads"
      k.fn(&args, width / 2, width);
    }
    int bad = 0;
    for (size_t i = 0; i < want.size(); ++i) bad += std::memcmp(&out[i], &want[i], 4) != 0;
    EXPECT_EQ(bad, 0) << what << (step == 1 ? " (decode path)" : " (prefill path)");
  }
}

TEST(MatmulKernels, TeacherForcedOnReferenceIntermediates) {
  BITNET_REQUIRE_SHARED(shared);
  for (const std::string model : {"b158-tiny-gqa", "bitnet-tiny-mha"}) {
    auto file = gguf::GgufFile::open((shared / "models" / "bitnet-i2s" / (model + ".i2_s.gguf")).string());
    ASSERT_TRUE(file.ok()) << file.error().message;
    const Intermediates ref_data(shared / "crossval" / model / "intermediates_seq16");
    const bool silu = model == "bitnet-tiny-mha";
    for (const char* target : {"host", "x86-64-v3"}) {
      for (int layer = 0; layer < 4; ++layer) {
        const std::string l = "-" + std::to_string(layer);
        const std::string p = "blk." + std::to_string(layer) + ".";
        const Weight q = mapped(*file, p + "attn_q.weight"), kw = mapped(*file, p + "attn_k.weight"),
                     v = mapped(*file, p + "attn_v.weight");
        const Weight o = mapped(*file, p + "attn_output.weight"), gate = mapped(*file, p + "ffn_gate.weight");
        const Weight up = mapped(*file, p + "ffn_up.weight"), down = mapped(*file, p + "ffn_down.weight");
        const std::string what = model + " " + target + " layer " + std::to_string(layer);
        // QKV as one matmul_cat: Q | K | V side by side.
        const CompiledKernel qkv = compile(target, product_desc(ir::OpKind::MatMulCat, DType::I8Q, {&q, &kw, &v}));
        const std::vector<float> wq = ref_data.get("Qcur" + l, "MUL_MAT"), wk = ref_data.get("Kcur" + l, "MUL_MAT"),
                                 wv = ref_data.get("Vcur" + l, "MUL_MAT");
        const int64_t width = q.rows + kw.rows + v.rows;
        std::vector<float> want;
        for (int64_t t = 0; t < 16; ++t) {
          want.insert(want.end(), wq.begin() + t * q.rows, wq.begin() + (t + 1) * q.rows);
          want.insert(want.end(), wk.begin() + t * kw.rows, wk.begin() + (t + 1) * kw.rows);
          want.insert(want.end(), wv.begin() + t * v.rows, wv.begin() + (t + 1) * v.rows);
        }
        expect_teacher_forced(qkv, ref_data.get("attn_norm" + l, "MUL"), q.cols, {q.data, kw.data, v.data}, nullptr,
                              want, width, what + " qkv");
        // Output projection + residual (the layer input: the embedding or the previous l_out).
        const std::vector<float> x_in = layer == 0 ? ref_data.get("inp_embd", "GET_ROWS")
                                                   : ref_data.get("l_out-" + std::to_string(layer - 1), "ADD");
        const CompiledKernel attn_out = compile(target, product_desc(ir::OpKind::MatMulAdd, DType::I8Q, {&o}));
        const std::vector<float> ffn_inp = ref_data.get("ffn_inp" + l, "ADD");
        expect_teacher_forced(attn_out, ref_data.get("attn_sub_norm" + l, "MUL"), o.cols, {o.data}, &x_in, ffn_inp,
                              o.rows, what + " attn_out+residual");
        // Gated FFN.
        const CompiledKernel ffn =
            compile(target, product_desc(ir::OpKind::GatedFfn, DType::I8Q, {&gate, &up}, silu ? "silu" : "relu2"));
        expect_teacher_forced(ffn, ref_data.get("ffn_norm" + l, "MUL"), gate.cols, {gate.data, up.data}, nullptr,
                              ref_data.get((silu ? "ffn_sub_out" : "ffn_out") + l, "MUL"), gate.rows,
                              what + " gated_ffn");
        // Down projection + residual.
        const CompiledKernel ffn_down = compile(target, product_desc(ir::OpKind::MatMulAdd, DType::I8Q, {&down}));
        expect_teacher_forced(ffn_down, ref_data.get("ffn_sub_norm" + l, "MUL"), down.cols, {down.data}, &ffn_inp,
                              ref_data.get("l_out" + l, "ADD"), down.rows, what + " ffn_down+residual");
      }
    }
  }
}

// ---- LM-head requantization --------------------------------------------------------------------

// Requantized rows decode (with the reference dequantizer) close to the F16 originals.
TEST(Requantize, BlocksDecodeCloseToTheOriginal) {
  const Weight f16 = random_weight(DType::F16, 7, 512, 91);
  for (DType type : {DType::Q8_0, DType::Q6_K}) {
    Weight q{type, 7, 512,
             type == DType::Q8_0 ? requantize_f16_to_q8_0(f16.data, 7, 512) : requantize_f16_to_q6_k(f16.data, 7, 512)};
    q.data = q.bytes.data();
    ASSERT_EQ(static_cast<int64_t>(q.bytes.size()),
              7 * 512 / (type == DType::Q8_0 ? 32 : 256) * (type == DType::Q8_0 ? 34 : 210));
    std::vector<float> a(512), b(512);
    double err = 0, norm = 0;
    for (int64_t r = 0; r < 7; ++r) {
      ref::dequantize_row(f16.view(), r, a.data());
      ref::dequantize_row(q.view(), r, b.data());
      for (int i = 0; i < 512; ++i) {
        err += (a[static_cast<size_t>(i)] - b[static_cast<size_t>(i)]) *
               (a[static_cast<size_t>(i)] - b[static_cast<size_t>(i)]);
        norm += a[static_cast<size_t>(i)] * a[static_cast<size_t>(i)];
      }
    }
    EXPECT_LT(std::sqrt(err / norm), type == DType::Q8_0 ? 0.01 : 0.04) << ir::dtype_name(type);
  }
}

// The tied LM head of a real model on the reference's own final hidden states (result_norm of
// the crossval run): Q8_0 / Q6_K logits against F16 logits. Prints the figures for the report.
TEST(Requantize, LmHeadLogitsStayClose) {
  BITNET_REQUIRE_SHARED(shared);
  auto file = gguf::GgufFile::open((shared / "models" / "bitnet-i2s" / "b158-tiny-gqa.i2_s.gguf").string());
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto hidden =
      testing::read_npy(shared / "crossval" / "b158-tiny-gqa" / "intermediates_seq16" / "108_result_norm.npy");
  ASSERT_TRUE(hidden.ok()) << hidden.error().message;
  const Weight head = mapped(*file, "token_embd.weight");
  const int64_t tokens = hidden->shape[0];
  ASSERT_EQ(hidden->shape[1], head.cols);
  const CompiledKernel k16 = compile("host", product_desc(ir::OpKind::MatMul, DType::F32, {&head}));
  const std::vector<float> f16_logits = run(k16, hidden->f32.data(), {head.data}, tokens, head.rows, 0, head.rows);
  for (DType type : {DType::Q8_0, DType::Q6_K}) {
    Weight q{type, head.rows, head.cols,
             type == DType::Q8_0 ? requantize_f16_to_q8_0(head.data, head.rows, head.cols)
                                 : requantize_f16_to_q6_k(head.data, head.rows, head.cols)};
    q.data = q.bytes.data();
    const CompiledKernel kq = compile("host", product_desc(ir::OpKind::MatMul, DType::F32, {&q}));
    const std::vector<float> logits = run(kq, hidden->f32.data(), {q.data}, tokens, head.rows, 0, head.rows);
    double max_diff = 0, max_logit = 0;
    int same_top1 = 0;
    for (int64_t t = 0; t < tokens; ++t) {
      const float* a = f16_logits.data() + t * head.rows;
      const float* b = logits.data() + t * head.rows;
      for (int64_t i = 0; i < head.rows; ++i) {
        max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
        max_logit = std::max(max_logit, static_cast<double>(std::fabs(a[i])));
      }
      same_top1 += std::max_element(a, a + head.rows) - a == std::max_element(b, b + head.rows) - b;
    }
    std::cout << "[ requantize ] " << ir::dtype_name(type) << " LM head (b158-tiny-gqa, " << tokens
              << " reference hidden states): max |logit diff| " << max_diff << ", max |logit| " << max_logit
              << ", top-1 agrees " << same_top1 << "/" << tokens << "\n";
    EXPECT_LT(max_diff, (type == DType::Q8_0 ? 0.01 : 0.04) * max_logit) << ir::dtype_name(type);
    EXPECT_GE(same_top1, tokens - 1) << ir::dtype_name(type);
  }
}

}  // namespace
}  // namespace bitnet::codegen
