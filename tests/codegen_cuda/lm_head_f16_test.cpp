// The F16 LM head GEMV on the host emulator against ref::vec_dot_f16 on F16-rounded activations
// (the decode path of spec 8.6): bit for bit, so well within the 1e-5 relative the issue allows.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "codegen_cuda/emit_lm_head_f16.h"
#include "codegen_cuda/emit_lm_head_f16_prompt.h"
#include "codegen_cuda/repack.h"
#include "emu_module.h"
#include "kernel_test_data.h"
#include "reference/kernels.h"

namespace bitnet::testing {
namespace {

using codegen_cuda::LmHeadF16Shape;

struct Case {
  LmHeadF16Shape shape;
  int n_tokens;
};

// 2B4T's n_embd 2560 (vocab cut to 1000 for the emulator), the shared models' 256 x 32000 and
// 384 x 2000, and odd sizes covering the leftover chunks (320 = 4 + 1 chunks) and the scalar tail
// (2600 = 40 chunks + 40; 100 = 1 chunk + 36).
// Tiles of several tokens per block: full and partial tiles (11 = 8 + 3, 5 = 2 + 2 + 1), a tile
// larger than the tokens there are, each with the tail cases; rows taken 4, 2 and 1 at a time,
// with sets that end past the last row.
constexpr auto kOff = codegen_cuda::PdlMode::kOff;
const std::vector<Case> kCases = {{{2560, 1000}, 1},
                                  {{256, 32000}, 1},
                                  {{384, 2000, 2, 4}, 2},
                                  {{320, 333}, 1},
                                  {{2600, 129}, 1},
                                  {{100, 64, 1, 2}, 3},
                                  {{2560, 1000, 4, 8, kOff, 8}, 11},
                                  {{2560, 1003, 4, 8, kOff, 8}, 3},  // a last set of 4 rows with 3 in range
                                  {{2600, 129, 2, 4, kOff, 2}, 5},
                                  {{100, 64, 1, 2, kOff, 8}, 3}};

// A random F16 head of m rows of k, its repack_f16() layout, and n_tokens rows of x.
struct HeadData {
  std::vector<uint16_t> w;       // [m][k] F16, as the GGUF stores it
  std::vector<uint16_t> packed;  // what the kernels read
  std::vector<float> x;          // [n_tokens][k]
};

HeadData random_head(int64_t k, int64_t m, int n_tokens, uint32_t& seed) {
  HeadData d;
  const std::vector<float> wf = random_normal(static_cast<size_t>(k * m), seed++, 0.05f);
  d.w.resize(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) d.w[i] = ref::fp32_to_fp16(wf[i]);
  d.x = random_normal(static_cast<size_t>(k * n_tokens), seed++, 1.5f);
  d.packed = codegen_cuda::repack_f16(d.w.data(), m, k);
  return d;
}

TEST(CudaLmHeadF16, MatchesVecDotF16BitForBitOnTheHostEmulator) {
  std::string source, error;
  for (const Case& c : kCases) source += codegen_cuda::emit_lm_head_f16(c.shape).source;
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  uint32_t seed = 500;
  for (const Case& c : kCases) {
    const auto [k, m] = std::pair(c.shape.k, c.shape.m);
    const auto [w, packed, x] = random_head(k, m, c.n_tokens, seed);
    std::vector<float> y(static_cast<size_t>(m * c.n_tokens), -1.0f);
    const codegen_cuda::KernelSource kern = codegen_cuda::emit_lm_head_f16(c.shape);
    ASSERT_EQ(module->launch(kern.name, codegen_cuda::lm_head_f16_grid(c.shape, c.n_tokens), kern.threads,
                             static_cast<const unsigned short*>(packed.data()), static_cast<const float*>(x.data()),
                             y.data(), c.n_tokens),
              "");
    std::vector<uint16_t> x16(static_cast<size_t>(k));
    int mismatches = 0;
    double max_rel = 0;
    for (int t = 0; t < c.n_tokens; ++t) {
      for (int64_t i = 0; i < k; ++i) x16[i] = ref::fp32_to_fp16(x[t * k + i]);
      for (int64_t r = 0; r < m; ++r) {
        const float expect = ref::vec_dot_f16(w.data() + r * k, x16.data(), k);
        const float got = y[t * m + r];
        mismatches += float_bits(got) != float_bits(expect);
        if (expect != 0) max_rel = std::max(max_rel, std::abs((static_cast<double>(got) - expect) / expect));
      }
    }
    EXPECT_EQ(mismatches, 0) << kern.name << " max relative difference " << max_rel;
  }
}

// The prompt-mode head (spec 8.6: tinyBLAS on F32 x) against ref::tinyblas_dot_f16_f32, bit
// for bit, on the rows flagged prompt; the other rows keep what the decode-mode head wrote.
// Row lengths with and without leftover chunks (384 = 4 + 2 chunks), tiles full and partial,
// flags mixed within a tile, a tile with none, weight rows past the last.
TEST(CudaLmHeadF16, PromptModeMatchesTinyBlasBitForBitOnTheFlaggedRows) {
  struct PromptCase {
    LmHeadF16Shape shape;
    std::vector<int> prompt;  // per token
  };
  const std::vector<PromptCase> cases = {
      {{2560, 1000, 8, 8, kOff, 8}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
      {{384, 2003, 8, 8, kOff, 8}, {1, 0, 1, 1, 0}},
      {{256, 515, 2, 4, kOff, 4}, {0, 0, 0, 0, 1, 1}},
      {{64, 70, 4, 2, kOff, 1}, {1, 0, 1}},
  };
  std::string source, error;
  for (const PromptCase& c : cases) source += codegen_cuda::emit_lm_head_f16_prompt(c.shape).source;
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  uint32_t seed = 900;
  for (const PromptCase& c : cases) {
    const auto [k, m] = std::pair(c.shape.k, c.shape.m);
    const auto n_tokens = static_cast<int>(c.prompt.size());
    const auto [w, packed, x] = random_head(k, m, n_tokens, seed);
    std::vector<float> y(static_cast<size_t>(m * n_tokens), -1.0f);
    const codegen_cuda::KernelSource kern = codegen_cuda::emit_lm_head_f16_prompt(c.shape);
    ASSERT_EQ(module->launch(kern.name, codegen_cuda::lm_head_f16_prompt_grid(c.shape, n_tokens), kern.threads,
                             static_cast<const unsigned short*>(packed.data()), static_cast<const float*>(x.data()),
                             y.data(), c.prompt.data(), n_tokens),
              "");
    int mismatches = 0, untouched = 0;
    for (int t = 0; t < n_tokens; ++t) {
      for (int64_t r = 0; r < m; ++r) {
        const float got = y[t * m + r];
        if (c.prompt[t] == 0) {
          untouched += got == -1.0f;
          continue;
        }
        mismatches += float_bits(got) != float_bits(ref::tinyblas_dot_f16_f32(w.data() + r * k, x.data() + t * k, k));
      }
    }
    EXPECT_EQ(mismatches, 0) << kern.name;
    int decode_rows = 0;
    for (int p : c.prompt) decode_rows += p == 0;
    EXPECT_EQ(untouched, decode_rows * m) << kern.name;
  }
}

// With skip_prompt_tiles the decode-mode head leaves a tile whose tokens are all flagged prompt
// (the prompt-mode head writes them) and computes every other tile whole, flagged rows included,
// bit for bit: tiles all flagged (full and partial), mixed, and with no flag.
TEST(CudaLmHeadF16, DecodeModeLeavesTilesWhoseTokensAreAllPromptMode) {
  struct SkipCase {
    LmHeadF16Shape shape;
    std::vector<int> prompt;  // per token
  };
  const std::vector<SkipCase> cases = {
      {{2560, 1000, 8, 8, kOff, 8, true}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
      {{384, 203, 4, 4, kOff, 4, true}, {0, 0, 0, 0, 1, 1, 1, 1, 0, 1}},
      {{256, 70, 2, 2, kOff, 2, true}, {1, 1, 0, 0, 1}},
  };
  std::string source, error;
  for (const SkipCase& c : cases) source += codegen_cuda::emit_lm_head_f16(c.shape).source;
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  uint32_t seed = 1300;
  for (const SkipCase& c : cases) {
    const auto [k, m] = std::pair(c.shape.k, c.shape.m);
    const auto n_tokens = static_cast<int>(c.prompt.size());
    const int tile = c.shape.tokens_per_block;
    const auto [w, packed, x] = random_head(k, m, n_tokens, seed);
    std::vector<float> y(static_cast<size_t>(m * n_tokens), -1.0f);
    const codegen_cuda::KernelSource kern = codegen_cuda::emit_lm_head_f16(c.shape);
    ASSERT_EQ(module->launch(kern.name, codegen_cuda::lm_head_f16_grid(c.shape, n_tokens), kern.threads,
                             static_cast<const unsigned short*>(packed.data()), static_cast<const float*>(x.data()),
                             y.data(), c.prompt.data(), n_tokens),
              "");
    std::vector<uint16_t> x16(static_cast<size_t>(k));
    int mismatches = 0, skipped_rows = 0, expected_skipped = 0;
    for (int t = 0; t < n_tokens; ++t) {
      const int t0 = t / tile * tile;
      bool tile_all_prompt = true;
      for (int u = t0; u < std::min(t0 + tile, n_tokens); ++u) tile_all_prompt = tile_all_prompt && c.prompt[u] != 0;
      expected_skipped += tile_all_prompt;
      bool untouched = true;
      for (int64_t r = 0; r < m; ++r) untouched = untouched && y[t * m + r] == -1.0f;
      skipped_rows += untouched;
      if (tile_all_prompt) continue;
      for (int64_t i = 0; i < k; ++i) x16[i] = ref::fp32_to_fp16(x[t * k + i]);
      for (int64_t r = 0; r < m; ++r) {
        mismatches += float_bits(y[t * m + r]) != float_bits(ref::vec_dot_f16(w.data() + r * k, x16.data(), k));
      }
    }
    EXPECT_GT(expected_skipped, 0) << kern.name;
    EXPECT_EQ(skipped_rows, expected_skipped) << kern.name;
    EXPECT_EQ(mismatches, 0) << kern.name;
  }
}

TEST(CudaLmHeadF16, RepackKeepsEveryElementOnce) {
  for (int64_t k : {64, 100, 256, 320, 2600}) {
    std::vector<uint16_t> w(static_cast<size_t>(2 * k));
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(i + 1);
    const std::vector<uint16_t> p = codegen_cuda::repack_f16(w.data(), 2, k);
    const int64_t stride = codegen_cuda::f16_row_stride(k);
    ASSERT_EQ(p.size(), static_cast<size_t>(2 * stride));
    for (int r = 0; r < 2; ++r) {
      std::vector<uint16_t> row(p.begin() + r * stride, p.begin() + r * stride + k);
      std::sort(row.begin(), row.end());
      for (int64_t i = 0; i < k; ++i) ASSERT_EQ(row[i], r * k + i + 1) << k;
    }
  }
}

}  // namespace
}  // namespace bitnet::testing
