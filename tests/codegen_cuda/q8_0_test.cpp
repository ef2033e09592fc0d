// The Q8_0 token-table kernels (codegen_cuda/emit_q8_0.h) on the host emulator against the
// reference: the lookup against ref::dequantize_row, the LM head against ref::matmul (dequantize,
// then tinyBLAS's F32 chain, the same for one token and for several), bit for bit.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "codegen_cuda/emit_embed.h"
#include "codegen_cuda/emit_q8_0.h"
#include "emu_module.h"
#include "kernel_test_data.h"
#include "reference/kernels.h"

namespace bitnet::testing {
namespace {

namespace cc = codegen_cuda;

// A random Q8_0 matrix: every int8 value (-128 too), scales of both signs, a zero scale and a
// subnormal one among them.
std::vector<uint8_t> random_q8_0(int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * cc::q8_0_row_bytes(cols)));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(-0.02f, 0.02f);
  for (size_t at = 0; at < bytes.size(); at += 34) {
    const size_t block = at / 34;
    const uint16_t d = block == 3 ? 0 : block == 5 ? 0x0007 : ref::fp32_to_fp16(scale(rng));
    std::memcpy(&bytes[at], &d, 2);
    for (int j = 0; j < 32; ++j) bytes[at + 2 + j] = static_cast<uint8_t>(rng());
  }
  return bytes;
}

TEST(CudaQ8_0, EmbeddingRowsDequantizeExactlyAndBadIdsGiveZeros) {
  const cc::EmbedShape shape{384, 50};
  const cc::KernelSource k = cc::emit_embed_q8_0(shape);
  std::string error;
  const auto module = EmuModule::build(k.source, &error);
  ASSERT_TRUE(module) << error;
  const std::vector<uint8_t> table = random_q8_0(shape.n_vocab, shape.n_embd, 11);
  const ref::WeightView view{gguf::GgmlType::Q8_0, table.data(), shape.n_vocab, shape.n_embd};
  const std::vector<int> tokens = {0, 49, 17, -1, 50};
  std::vector<float> x(tokens.size() * shape.n_embd, -3.0f);
  ASSERT_EQ(module->launch(k.name, cc::embed_grid(5), k.threads, static_cast<const unsigned char*>(table.data()),
                           tokens.data(), x.data(), 5),
            "");
  std::vector<float> want(static_cast<size_t>(shape.n_embd));
  for (size_t t = 0; t < tokens.size(); ++t) {
    const bool valid = tokens[t] >= 0 && tokens[t] < shape.n_vocab;
    if (valid) {
      ref::dequantize_row(view, tokens[t], want.data());
    } else {
      std::fill(want.begin(), want.end(), 0.0f);
    }
    for (int64_t i = 0; i < shape.n_embd; ++i) {
      ASSERT_EQ(float_bits(x[t * shape.n_embd + i]), float_bits(want[i])) << t << " " << i;
    }
  }
}

struct HeadCase {
  cc::LmHeadQ8_0Shape shape;
  int n_tokens;
};

// The shared models' 256 x 32000 and 384 x 2000; 2B4T's 2560 with an odd row count (a half-warp
// past the last row); one block per row (k = 32); the largest k (48 KB of staged x); rows 2 and
// 6 at a time.
const std::vector<HeadCase> kHeadCases = {{{256, 32000}, 1},  {{384, 2000, 2, 4}, 3}, {{2560, 1003}, 1},
                                          {{32, 7, 2, 1}, 2}, {{12288, 40}, 1},       {{384, 101, 6, 2}, 2}};

TEST(CudaQ8_0, LmHeadMatchesTheReferenceMatmulBitForBit) {
  std::string source, error;
  for (const HeadCase& c : kHeadCases) source += cc::emit_lm_head_q8_0(c.shape).source;
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  uint32_t seed = 900;
  for (const HeadCase& c : kHeadCases) {
    const auto [k, m] = std::pair(c.shape.k, c.shape.m);
    const std::vector<uint8_t> w = random_q8_0(m, k, seed++);
    const std::vector<float> x = random_normal(static_cast<size_t>(k * c.n_tokens), seed++, 1.5f);
    std::vector<float> y(static_cast<size_t>(m * c.n_tokens), -1.0f);
    const cc::KernelSource kern = cc::emit_lm_head_q8_0(c.shape);
    ASSERT_EQ(module->launch(kern.name, cc::lm_head_q8_0_grid(c.shape, c.n_tokens), kern.threads,
                             static_cast<const unsigned char*>(w.data()), static_cast<const float*>(x.data()), y.data(),
                             c.n_tokens),
              "");
    const ref::WeightView view{gguf::GgmlType::Q8_0, w.data(), m, k};
    for (const ref::Mode mode : {ref::Mode::kDecode, ref::Mode::kPrompt}) {
      std::vector<float> want(y.size());
      ref::matmul(x.data(), c.n_tokens, view, mode, want.data());
      int mismatches = 0;
      for (size_t i = 0; i < want.size(); ++i) mismatches += float_bits(y[i]) != float_bits(want[i]);
      EXPECT_EQ(mismatches, 0) << kern.name << " of " << want.size();
    }
  }
}

TEST(CudaQ8_0, RefusesShapesItCannotTake) {
  EXPECT_THROW(cc::emit_lm_head_q8_0({100, 10}), std::invalid_argument);  // k % 32 != 0
  EXPECT_THROW(cc::emit_lm_head_q8_0({12320, 10}), std::invalid_argument);
  EXPECT_THROW(cc::emit_lm_head_q8_0({256, 10, 3, 8}), std::invalid_argument);  // odd rows per warp
  EXPECT_THROW(cc::emit_embed_q8_0({100, 10}), std::invalid_argument);
}

}  // namespace
}  // namespace bitnet::testing
