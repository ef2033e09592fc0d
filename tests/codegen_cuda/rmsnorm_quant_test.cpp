// The fused RMSNorm + int8 quantization kernel on the host emulator against ref::rms_norm, the
// gain multiply and ref::quantize_row_i8: codes, sums, scales and normalised rows bit for bit.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "codegen_cuda/emit_rmsnorm_quant.h"
#include "emu_module.h"
#include "kernel_test_data.h"
#include "reference/kernels.h"

namespace bitnet::testing {
namespace {

using codegen_cuda::emit_rmsnorm_quant;
using codegen_cuda::RmsNormQuantShape;

struct Case {
  int64_t n;
  bool has_gain;
  bool write_normed;
};

// 2B4T (2560 hidden, 6912 ffn), the shared models' 256/768 and 384/1152, and n = 96 (one block
// of 96 threads, the last warp partly used by no element).
const std::vector<Case> kCases = {{2560, true, false}, {6912, true, true}, {256, true, true}, {768, true, false},
                                  {384, true, false},  {1152, true, true}, {96, false, true}};

void check(const EmuModule& module, const Case& c, int n_tokens, uint32_t seed) {
  const RmsNormQuantShape shape{c.n, 1e-5f, c.has_gain, c.write_normed};
  const codegen_cuda::KernelSource k = emit_rmsnorm_quant(shape);
  std::vector<float> x = random_normal(static_cast<size_t>(c.n * n_tokens), seed, 3.0f);
  const std::vector<float> gain = random_normal(static_cast<size_t>(c.n), seed + 1);
  // Row 0: one large outlier (most codes round to 0); last row all zeros (amax clamps at 1e-5).
  x[7] = 250.0f;
  if (n_tokens > 1) std::fill(x.end() - c.n, x.end(), 0.0f);
  std::vector<int8_t> q(x.size(), 99);
  std::vector<float> scale(n_tokens), normed(x.size(), -1.0f);
  std::vector<int32_t> sum(n_tokens);
  const std::string error = module.launch(
      k.name, codegen_cuda::rmsnorm_quant_grid(n_tokens), k.threads, static_cast<const float*>(x.data()),
      static_cast<const float*>(c.has_gain ? gain.data() : nullptr), reinterpret_cast<signed char*>(q.data()),
      scale.data(), reinterpret_cast<int*>(sum.data()), c.write_normed ? normed.data() : nullptr, n_tokens);
  ASSERT_EQ(error, "");

  std::vector<float> y(static_cast<size_t>(c.n));
  std::vector<int8_t> q_ref(static_cast<size_t>(c.n));
  for (int t = 0; t < n_tokens; ++t) {
    const float* xt = x.data() + t * c.n;
    ref::rms_norm(xt, c.n, 1e-5f, y.data());
    if (c.has_gain) {
      for (int64_t i = 0; i < c.n; ++i) y[i] = y[i] * gain[i];
    }
    const ref::I8Row row = ref::quantize_row_i8(y.data(), c.n, q_ref.data());
    SCOPED_TRACE("n=" + std::to_string(c.n) + " token " + std::to_string(t));
    EXPECT_EQ(float_bits(scale[t]), float_bits(row.scale));
    EXPECT_EQ(sum[t], row.sum);
    int mismatches = 0;
    for (int64_t i = 0; i < c.n; ++i) {
      mismatches += q[t * c.n + i] != q_ref[i];
      if (c.write_normed) mismatches += float_bits(normed[t * c.n + i]) != float_bits(y[i]);
    }
    EXPECT_EQ(mismatches, 0);
  }
}

TEST(CudaRmsNormQuant, MatchesTheReferenceBitForBitOnTheHostEmulator) {
  std::string source, error;
  for (const Case& c : kCases) source += emit_rmsnorm_quant({c.n, 1e-5f, c.has_gain, c.write_normed}).source;
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  uint32_t seed = 100;
  for (const Case& c : kCases) {
    check(*module, c, 1, seed++);
    check(*module, c, 3, seed++);
  }
}

TEST(CudaRmsNormQuant, EmitterRejectsRowsItCannotHold) {
  EXPECT_THROW(emit_rmsnorm_quant({16}), std::invalid_argument);
  EXPECT_THROW(emit_rmsnorm_quant({40000}), std::invalid_argument);
  EXPECT_EQ(emit_rmsnorm_quant({6912}).threads, 256);
  EXPECT_EQ(emit_rmsnorm_quant({16384}).threads, 512);
}

}  // namespace
}  // namespace bitnet::testing
