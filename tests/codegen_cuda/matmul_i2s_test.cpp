// The I2_S dp4a GEMV/GEMM on the host emulator against ref::matmul_i8q_rows, bit for bit, at the
// 2B4T and shared models' shapes; the repacked layout against ref::i2s_unpack_row; and a real
// weight of a shared model.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "codegen_cuda/emit_matmul_i2s.h"
#include "codegen_cuda/repack.h"
#include "emu_module.h"
#include "frontend_gguf/gguf_file.h"
#include "kernel_test_data.h"
#include "reference/kernels.h"
#include "test_support.h"

namespace bitnet::testing {
namespace {

using codegen_cuda::MatmulI2sShape;

// Quantized activations as the norm kernel makes them (ref::quantize_row_i8 of random rows).
struct Activations {
  std::vector<int8_t> q;
  std::vector<ref::I8Row> rows;
  std::vector<float> scale;
  std::vector<int32_t> sum;
};

Activations quantized(int64_t k, int n_tokens, uint32_t seed) {
  Activations a;
  const std::vector<float> x = random_normal(static_cast<size_t>(k * n_tokens), seed, 2.0f);
  a.q.resize(x.size());
  for (int t = 0; t < n_tokens; ++t) {
    a.rows.push_back(ref::quantize_row_i8(x.data() + t * k, k, a.q.data() + t * k));
    a.scale.push_back(a.rows.back().scale);
    a.sum.push_back(a.rows.back().sum);
  }
  return a;
}

// Runs the kernel for `shape` on `data` (GGUF I2_S bytes) and compares every output's bits.
void check(const EmuModule& module, const MatmulI2sShape& shape, const uint8_t* data, int n_tokens, uint32_t seed) {
  const codegen_cuda::KernelSource k = codegen_cuda::emit_matmul_i2s(shape);
  const ref::WeightView w{gguf::GgmlType::I2_S, data, shape.m, shape.k};
  const auto packed = codegen_cuda::repack_i2s(data, shape.m, shape.k);
  ASSERT_TRUE(packed) << packed.error().message;
  const Activations a = quantized(shape.k, n_tokens, seed);
  std::vector<float> y(static_cast<size_t>(shape.m * n_tokens), -7.0f), expect(y.size());
  ref::matmul_i8q_rows(a.q.data(), a.rows.data(), n_tokens, w, 0, shape.m, expect.data());
  const std::string error =
      module.launch(k.name, codegen_cuda::matmul_i2s_grid(shape, n_tokens), k.threads,
                    static_cast<const unsigned int*>(packed->data()), ref::i2s_scale(w),
                    reinterpret_cast<const signed char*>(a.q.data()), static_cast<const float*>(a.scale.data()),
                    reinterpret_cast<const int*>(a.sum.data()), y.data(), n_tokens);
  ASSERT_EQ(error, "");
  int mismatches = 0;
  for (size_t i = 0; i < y.size(); ++i) mismatches += float_bits(y[i]) != float_bits(expect[i]);
  EXPECT_EQ(mismatches, 0) << k.name << " T=" << n_tokens << " first: " << y[0] << " vs " << expect[0];
}

struct Case {
  MatmulI2sShape shape;
  int n_tokens;
};

// 2B4T decode (q/o 2560x2560, k/v 2560->640, gate/up 2560->6912, down 6912->2560), GEMM tiles
// with partial token tiles, and the shared models' projections (256/64/768, 384/128/1152).
const std::vector<Case> kCases = {
    {{2560, 2560, 1}, 1},     {{2560, 640, 1}, 1}, {{2560, 6912, 1}, 1},       {{6912, 2560, 1}, 1},
    {{2560, 2560, 4}, 5},     {{6912, 640, 8}, 8}, {{2560, 640, 2, 1, 4}, 3},  {{256, 256, 1}, 1},
    {{256, 64, 1}, 1},        {{256, 768, 1}, 2},  {{768, 256, 4}, 3},         {{384, 384, 1}, 1},
    {{384, 128, 2, 3, 2}, 3}, {{384, 1152, 1}, 1}, {{1152, 384, 8, 1, 8}, 11},
};

// Every case's kernel in one module, each run on random weights (scale `scale` + 0.001 * seed).
void check_cases(const std::vector<Case>& cases, uint32_t seed, float scale) {
  std::string source, error;
  for (const Case& c : cases) source += codegen_cuda::emit_matmul_i2s(c.shape).source;
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  for (const Case& c : cases) {
    const std::vector<uint8_t> data = random_i2s(c.shape.m, c.shape.k, scale + 0.001f * seed, seed);
    check(*module, c.shape, data.data(), c.n_tokens, seed + 1000);
    ++seed;
  }
}

TEST(CudaMatmulI2s, MatchesTheReferenceBitForBitOnTheHostEmulator) {
  check_cases(kCases, 1, 0.0371f);
}

// The decode tilings (decode_gemv_shape: K split between warps, reduced in shared memory) and
// explicit split-K tilings, including GEMM tiles and partial blocks, at the same shapes: the
// same bits as the reference whatever the split.
TEST(CudaMatmulI2s, SplitKAndDecodeTilingsMatchTheReferenceBitForBit) {
  std::vector<Case> cases;
  for (const auto& [k, m] : std::vector<std::pair<int64_t, int64_t>>{
           {2560, 2560}, {2560, 640}, {2560, 6912}, {6912, 2560}, {2560, 3840}, {256, 64}, {768, 256}, {1152, 384}}) {
    cases.push_back({codegen_cuda::decode_gemv_shape(k, m), 1});
  }
  cases.push_back({{6912, 2560, 1, 2, 10, 5}, 1});  // one step per warp
  cases.push_back({{6912, 640, 1, 4, 6, 3}, 1});
  cases.push_back({{6912, 2560, 1, 1, 4, 2}, 1});
  cases.push_back({{6912, 100, 4, 3, 6, 3}, 6});  // GEMM tiles, partial row group and token tile
  cases.push_back({{2560, 130, 2, 2, 4, 2}, 3});
  cases.push_back({{1152, 384, 8, 1, 8, 2}, 11});
  check_cases(cases, 500, 0.0291f);
  EXPECT_EQ(codegen_cuda::matmul_i2s_k_steps(2560), 2);
  EXPECT_EQ(codegen_cuda::matmul_i2s_k_steps(6912), 5);
  EXPECT_THROW(codegen_cuda::emit_matmul_i2s({2560, 64, 1, 2, 6, 4}), std::invalid_argument);  // warps % split
  EXPECT_THROW(codegen_cuda::emit_matmul_i2s({2560, 64, 1, 2, 3, 3}), std::invalid_argument);  // split > steps
}

// The tensor-core tiles (MatmulI2sShape::mma): whole and tail chunk groups (K = 6912: 3 tiles +
// 48 chunks; 256: 16 chunks only), rows past the end of a warp's tiles (m = 100, 640 with 64-row
// warps), partial and several token blocks, one to four tiles each way: the reference's bits.
TEST(CudaMatmulI2s, TensorCoreTilesMatchTheReferenceBitForBit) {
  auto mma = [](int64_t k, int64_t m, int tokens, int rows, int warps) {
    MatmulI2sShape s{k, m, tokens, rows, warps};
    s.mma = true;
    return s;
  };
  const std::vector<Case> cases = {
      {mma(2560, 2560, 32, 32, 4), 37}, {mma(6912, 256, 16, 16, 4), 16}, {mma(2560, 640, 8, 64, 2), 5},
      {mma(256, 768, 32, 32, 4), 64},   {mma(384, 1152, 24, 32, 1), 50}, {mma(1152, 384, 8, 16, 8), 3},
      {mma(256, 100, 16, 16, 2), 9},
  };
  check_cases(cases, 900, 0.0313f);
  EXPECT_THROW(codegen_cuda::emit_matmul_i2s(mma(2560, 64, 12, 16, 4)), std::invalid_argument);  // tokens % 8
  EXPECT_THROW(codegen_cuda::emit_matmul_i2s(mma(2560, 64, 8, 24, 4)), std::invalid_argument);   // rows % 16
  EXPECT_THROW(codegen_cuda::emit_matmul_i2s(mma(2560, 64, 32, 64, 4)), std::invalid_argument);  // 16 tiles
  EXPECT_THROW(codegen_cuda::emit_matmul_i2s(mma(2560, 64, 32, 32, 8)), std::invalid_argument);  // 8 at 256 threads
  MatmulI2sShape split = mma(2560, 64, 8, 16, 4);
  split.k_split = 2;
  EXPECT_THROW(codegen_cuda::emit_matmul_i2s(split), std::invalid_argument);
}

// The tensor-core tiles with every epilogue of the batched step, several tokens: q|k|v stacked
// with a scale per segment, gate|up interleaved through relu2 and silu, the residual add; against
// the reference ops token by token, bit for bit. Rows past the end in the last tiles: q|k|v has
// 172 rows, the gated launches 96 (relu2's blocks of 64 rows: the second half empty).
TEST(CudaMatmulI2s, TensorCoreEpiloguesMatchTheReferenceOpsBitForBit) {
  constexpr int64_t k = 384, n_embd = 100, n_kv = 36, n_ff = 48;  // silu: n_ff % 16 == 0
  constexpr int n = 19;
  const Activations a = quantized(k, n, 77);
  auto tensor = [&](int64_t rows, float scale, uint32_t seed) { return random_i2s(rows, k, scale, seed); };
  auto words = [&](const std::vector<uint8_t>& t, int64_t rows) {
    auto w = codegen_cuda::repack_i2s(t.data(), rows, k);
    EXPECT_TRUE(w);
    return w ? *w : std::vector<uint32_t>{};
  };
  // y[tok][row] of one tensor as the reference computes it.
  auto ref_rows = [&](const std::vector<uint8_t>& t, int64_t rows) {
    const ref::WeightView w{gguf::GgmlType::I2_S, t.data(), rows, k};
    std::vector<float> y(static_cast<size_t>(rows * n));
    ref::matmul_i8q_rows(a.q.data(), a.rows.data(), n, w, 0, rows, y.data());
    return y;
  };
  const auto q = tensor(n_embd, 0.031f, 1), kk = tensor(n_kv, 0.047f, 2), v = tensor(n_kv, 0.013f, 3);
  const auto gate = tensor(n_ff, 0.021f, 4), up = tensor(n_ff, 0.017f, 5), o = tensor(n_embd, 0.029f, 6);
  const int64_t n_qkv = n_embd + 2 * n_kv;
  std::vector<uint32_t> qkv_w = words(q, n_embd);
  for (const auto* t : {&kk, &v}) {
    const auto w = words(*t, n_kv);
    qkv_w.insert(qkv_w.end(), w.begin(), w.end());
  }
  std::vector<float> want_qkv(static_cast<size_t>(n * n_qkv));
  const auto yq = ref_rows(q, n_embd), yk = ref_rows(kk, n_kv), yv = ref_rows(v, n_kv);
  for (int t = 0; t < n; ++t) {
    std::copy_n(yq.begin() + t * n_embd, n_embd, want_qkv.begin() + t * n_qkv);
    std::copy_n(yk.begin() + t * n_kv, n_kv, want_qkv.begin() + t * n_qkv + n_embd);
    std::copy_n(yv.begin() + t * n_kv, n_kv, want_qkv.begin() + t * n_qkv + n_embd + n_kv);
  }
  const auto gw = words(gate, n_ff), uw = words(up, n_ff);
  std::vector<uint32_t> gu_w;
  for (int64_t r = 0; r < n_ff; ++r) {
    gu_w.insert(gu_w.end(), gw.begin() + r * (k / 16), gw.begin() + (r + 1) * (k / 16));
    gu_w.insert(gu_w.end(), uw.begin() + r * (k / 16), uw.begin() + (r + 1) * (k / 16));
  }
  const auto g_ref = ref_rows(gate, n_ff), u_ref = ref_rows(up, n_ff);
  std::vector<float> want_relu2(g_ref.size()), want_silu(g_ref.size());
  ref::silu_row(g_ref.data(), static_cast<int64_t>(g_ref.size()), want_silu.data());
  for (size_t i = 0; i < g_ref.size(); ++i) {
    const float r = g_ref[i] > 0.0f ? g_ref[i] : 0.0f;
    want_relu2[i] = (r * r) * u_ref[i];
    want_silu[i] = want_silu[i] * u_ref[i];
  }
  const std::vector<float> residual = random_normal(static_cast<size_t>(n * n_embd), 9, 5.0f);
  const auto o_ref = ref_rows(o, n_embd);
  std::vector<float> want_add(residual.size());
  for (size_t i = 0; i < residual.size(); ++i) want_add[i] = residual[i] + o_ref[i];

  auto mma = [](int64_t m, codegen_cuda::MatmulI2sEpilogue e, int tokens, int rows, int warps) {
    MatmulI2sShape s{k, m, tokens, rows, warps};
    s.mma = true;
    s.epilogue = e;
    return s;
  };
  using E = codegen_cuda::MatmulI2sEpilogue;
  MatmulI2sShape qkv = mma(n_qkv, E::kStore, 16, 16, 4);
  qkv.segment_end[0] = n_embd;
  qkv.segment_end[1] = n_embd + n_kv;
  const MatmulI2sShape relu2 = mma(2 * n_ff, E::kGluRelu2, 8, 32, 2), silu = mma(2 * n_ff, E::kGluSilu, 24, 16, 1),
                       add = mma(n_embd, E::kResidualAdd, 32, 16, 4);
  std::string source, error;
  for (const MatmulI2sShape* s : std::initializer_list<const MatmulI2sShape*>{&qkv, &relu2, &silu, &add})
    source += codegen_cuda::emit_matmul_i2s(*s).source;
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  auto run = [&](const MatmulI2sShape& shape, const std::vector<uint32_t>& w, const std::vector<float>& scales,
                 std::vector<float>& y) {
    const codegen_cuda::KernelSource kern = codegen_cuda::emit_matmul_i2s(shape);
    ASSERT_EQ(
        module->launch(kern.name, codegen_cuda::matmul_i2s_grid(shape, n), kern.threads,
                       static_cast<const unsigned int*>(w.data()), scales.data(),
                       reinterpret_cast<const signed char*>(a.q.data()), static_cast<const float*>(a.scale.data()),
                       reinterpret_cast<const int*>(a.sum.data()), y.data(), n),
        "");
  };
  auto mismatches = [](const std::vector<float>& got, const std::vector<float>& want) {
    int m = 0;
    for (size_t i = 0; i < want.size(); ++i) m += float_bits(got[i]) != float_bits(want[i]);
    return m;
  };
  std::vector<float> y_qkv(want_qkv.size(), -3.0f), y_relu(want_relu2.size(), -3.0f), y_silu(want_silu.size(), -3.0f),
      y_add = residual;
  run(qkv, qkv_w, {0.031f, 0.047f, 0.013f}, y_qkv);
  run(relu2, gu_w, {0.021f, 0.017f}, y_relu);
  run(silu, gu_w, {0.021f, 0.017f}, y_silu);
  run(add, words(o, n_embd), {0.029f}, y_add);
  EXPECT_EQ(mismatches(y_qkv, want_qkv), 0);
  EXPECT_EQ(mismatches(y_relu, want_relu2), 0);
  EXPECT_EQ(mismatches(y_silu, want_silu), 0);
  EXPECT_EQ(mismatches(y_add, want_add), 0);
}

// Extremes of the integer path: all codes +1 against all activations -128 and +127.
TEST(CudaMatmulI2s, ExtremeCodesAndActivationsStayExact) {
  const MatmulI2sShape shape{6912, 64, 2};
  std::string error;
  const auto module = EmuModule::build(codegen_cuda::emit_matmul_i2s(shape).source, &error);
  ASSERT_TRUE(module) << error;
  std::vector<uint8_t> data(static_cast<size_t>(shape.m * shape.k / 4 + 32), 0xAA);  // code 2 everywhere
  std::fill(data.begin() + shape.k / 4, data.begin() + shape.k / 2, 0x00);           // row 1: code 0
  const float scale = 1.5f;
  std::memcpy(data.data() + shape.m * shape.k / 4, &scale, 4);
  const codegen_cuda::KernelSource k = codegen_cuda::emit_matmul_i2s(shape);
  const ref::WeightView w{gguf::GgmlType::I2_S, data.data(), shape.m, shape.k};
  const auto packed = codegen_cuda::repack_i2s(data.data(), shape.m, shape.k);
  ASSERT_TRUE(packed);
  std::vector<int8_t> q(static_cast<size_t>(2 * shape.k));
  std::fill(q.begin(), q.begin() + shape.k, int8_t{-128});
  std::fill(q.begin() + shape.k, q.end(), int8_t{127});
  std::vector<ref::I8Row> rows = {{0.25f, static_cast<int32_t>(-128 * shape.k)},
                                  {3.0f, static_cast<int32_t>(127 * shape.k)}};
  const std::vector<float> scales = {rows[0].scale, rows[1].scale};
  const std::vector<int32_t> sums = {rows[0].sum, rows[1].sum};
  std::vector<float> y(static_cast<size_t>(2 * shape.m)), expect(y.size());
  ref::matmul_i8q_rows(q.data(), rows.data(), 2, w, 0, shape.m, expect.data());
  ASSERT_EQ(module->launch(k.name, codegen_cuda::matmul_i2s_grid(shape, 2), k.threads,
                           static_cast<const unsigned int*>(packed->data()), scale,
                           reinterpret_cast<const signed char*>(q.data()), scales.data(),
                           reinterpret_cast<const int*>(sums.data()), y.data(), 2),
            "");
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(float_bits(y[i]), float_bits(expect[i])) << i;
  EXPECT_EQ(y[0], -128.0f * 6912 / 0.25f * 1.5f);  // code 2 = +1 on every column
  EXPECT_EQ(y[1], 128.0f * 6912 / 0.25f * 1.5f);   // code 0 = -1
}

// Decoding the repacked words as the kernel does gives back ref::i2s_unpack_row's codes.
TEST(CudaMatmulI2s, RepackedWordsDecodeToTheReferenceCodes) {
  for (int64_t cols : {128, 2048, 2560, 6912}) {
    const int64_t rows = 3;
    const std::vector<uint8_t> data = random_i2s(rows, cols, 1.0f, static_cast<uint32_t>(cols));
    const ref::WeightView w{gguf::GgmlType::I2_S, data.data(), rows, cols};
    const auto packed = codegen_cuda::repack_i2s(data.data(), rows, cols);
    ASSERT_TRUE(packed);
    const int64_t chunks = cols / 16, tiled = chunks / 128 * 128;
    std::vector<uint8_t> codes(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      ref::i2s_unpack_row(w, r, codes.data());
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t slot = c < tiled ? c / 128 * 128 + (c % 128 % 32) * 4 + c % 128 / 32 : c;
        const uint32_t word = (*packed)[r * chunks + slot];
        for (int i = 0; i < 4; ++i) {
          for (int lane = 0; lane < 4; ++lane) {
            ASSERT_EQ((word >> (8 * lane + 2 * i)) & 3u, codes[c * 16 + 4 * i + lane]) << cols << " " << r << " " << c;
          }
        }
      }
    }
  }
  EXPECT_FALSE(codegen_cuda::repack_i2s(nullptr, 2, 100));
}

// A real projection of a shared model (b158-tiny-gqa: ffn_down 768 -> 256 and attn_k 256 -> 64).
TEST(CudaMatmulI2s, SharedModelWeightsMatchTheReference) {
  BITNET_REQUIRE_SHARED(shared);
  auto file = gguf::GgufFile::open((shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string());
  ASSERT_TRUE(file) << file.error().message;
  std::string source, error;
  std::vector<std::pair<const gguf::TensorInfo*, MatmulI2sShape>> picks;
  for (const char* name : {"blk.0.ffn_down.weight", "blk.1.attn_k.weight"}) {
    const gguf::TensorInfo* t = file->find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_EQ(t->type, gguf::GgmlType::I2_S);
    const MatmulI2sShape shape{static_cast<int64_t>(t->ne[0]), static_cast<int64_t>(t->ne[1]), 1};
    picks.emplace_back(t, shape);
    source += codegen_cuda::emit_matmul_i2s(shape).source;
  }
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  for (const auto& [tensor, shape] : picks) check(*module, shape, tensor->data.data(), 1, 77);
}

}  // namespace
}  // namespace bitnet::testing
