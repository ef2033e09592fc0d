// Unit tests of the reference kernels on hand-computed values: exp approximation, dot-product
// lane orders, int8 rounding, every dequantizer on hand-built blocks, F16 conversions, and the
// prompt/decode split.
#include "reference_test_util.h"
#include "test_support.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace bitnet::testing {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

uint16_t h(float x) {
  return ref::fp32_to_fp16(x);
}

// ---- F16 ---------------------------------------------------------------------------------

TEST(ReferenceHalf, EveryHalfRoundTrips) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const auto half = static_cast<uint16_t>(bits);
    const float f = ref::fp16_to_fp32(half);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(ref::fp16_to_fp32(ref::fp32_to_fp16(f)))) << bits;
    } else {
      ASSERT_EQ(ref::fp32_to_fp16(f), half) << bits;
    }
  }
}

TEST(ReferenceHalf, RoundsHalfToEven) {
  EXPECT_EQ(h(1.0f + 0x1p-11f), 0x3C00);      // halfway between 1 and 1 + 2^-10: even is 1
  EXPECT_EQ(h(1.0f + 3 * 0x1p-11f), 0x3C02);  // halfway, rounds up to the even mantissa
  EXPECT_EQ(h(65504.0f), 0x7BFF);             // largest finite
  EXPECT_EQ(h(65519.0f), 0x7BFF);             // below the rounding boundary
  EXPECT_EQ(h(65520.0f), 0x7C00);             // rounds to infinity
  EXPECT_EQ(h(0x1p-24f), 0x0001);             // smallest subnormal
  EXPECT_EQ(h(0x1p-25f), 0x0000);             // halfway to it: even is zero
  EXPECT_EQ(h(1.5f * 0x1p-25f), 0x0001);
  EXPECT_EQ(h(-2.0f), 0xC000);
  EXPECT_EQ(ref::bf16_to_fp32(0x3F80), 1.0f);
  EXPECT_EQ(ref::bf16_to_fp32(0xC040), -3.0f);
}

// ---- exp, SiLU -----------------------------------------------------------------------------

// Values of the AVX-512 ggml_v_expf computed independently with exact rational arithmetic
// (every fma / product rounded once to float). Several differ from libm expf by an ulp.
TEST(ReferenceExp, MatchesIndependentlyComputedValues) {
  const struct {
    float x, want;
  } cases[] = {
      {0.0f, 0x1p+0f},
      {1.0f, 0x1.5bf0aap+1f},
      {-1.0f, 0x1.78b566p-2f},
      {0.5f, 0x1.a61298p+0f},
      {0x1.a66666p+1f, 0x1.b1cd5cp+4f},  // 3.3f
      {-10.0f, 0x1.7cd79cp-15f},
      {-87.5f, 0x1.b2caf0p-127f},  // subnormal result
      {80.0f, 0x1.55779cp+115f},
      {-100.0f, 0x1.bp-145f},             // deep subnormal, rounded once by the scaling
      {0x1.0624dep-10f, 0x1.004192p+0f},  // 1e-3f
  };
  for (const auto& c : cases) EXPECT_EQ(ref::expf_approx(c.x), c.want) << c.x;
  // The approximation is not libm: e.g. at x = 1 it is one ulp above expf(1).
  EXPECT_NE(ref::expf_approx(1.0f), std::exp(1.0f));
}

TEST(ReferenceExp, SpecialCases) {
  EXPECT_EQ(ref::expf_approx(-kInf), 0.0f);  // how -inf mask entries become exactly 0
  EXPECT_EQ(ref::expf_approx(kInf), kInf);
  EXPECT_TRUE(std::isnan(ref::expf_approx(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(ref::expf_approx(-150.0f), 0.0f);  // |n| > 192: replaced by 0
  EXPECT_EQ(ref::expf_approx(-104.0f), 0.0f);  // underflows through the scaling
  EXPECT_GT(ref::expf_approx(-103.0f), 0.0f);
  EXPECT_EQ(ref::expf_approx(89.0f), kInf);   // overflows in the scaling
  EXPECT_EQ(ref::expf_approx(200.0f), kInf);  // |n| > 192: replaced by +inf
  EXPECT_EQ(ref::expf_approx(-0.0f), 1.0f);
}

TEST(ReferenceExp, AccurateAndMonotone) {
  // Within 2.5 ulp of exp over the normal range (ggml quotes 1.45 + 0.5 ulp for the
  // polynomial; we measure up to ~2.01 against the double exp); never decreasing.
  float previous = 0.0f;
  for (float x = -87.0f; x < 88.0f; x += 0.00071f) {
    const float got = ref::expf_approx(x);
    const double exact = std::exp(static_cast<double>(x));
    const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(exact)) - 23);
    ASSERT_LE(std::fabs(got - exact), 2.5 * ulp) << x;
    ASSERT_GE(got, previous) << x;
    previous = got;
  }
}

TEST(ReferenceExp, SiluRowUsesLibmExpOnlyForTheTail) {
  std::vector<float> x(37);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -6.0f + 0.37f * static_cast<float>(i);
  std::vector<float> y(x.size());
  ref::silu_row(x.data(), static_cast<int64_t>(x.size()), y.data());
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(y[i], x[i] / (1.0f + ref::expf_approx(0.0f - x[i]))) << i;
  for (size_t i = 32; i < x.size(); ++i) EXPECT_EQ(y[i], x[i] / (1.0f + std::exp(-x[i]))) << i;
  EXPECT_EQ(ref::silu(0.0f), 0.0f);
  EXPECT_EQ(ref::silu(-200.0f), -0.0f);
  EXPECT_EQ(ref::silu(200.0f), 200.0f);
}

// ---- dot products ----------------------------------------------------------------------------

TEST(ReferenceDot, VecDotF16TailIsAccumulatedInDouble) {
  // 4096^2 = 2^24: adding 1 twice in float would stay at 2^24, in double it reaches 2^24 + 2.
  const std::vector<uint16_t> a = {h(4096), h(1), h(1)};
  EXPECT_EQ(ref::vec_dot_f16(a.data(), a.data(), 3), 16777218.0f);
  // The same after a full 64-element chunk: its register sum is widened to double first.
  std::vector<uint16_t> b(67, 0);
  b[0] = h(4096);
  b[64] = h(1);
  b[65] = h(1);
  EXPECT_EQ(ref::vec_dot_f16(b.data(), b.data(), 67), 16777218.0f);
}

TEST(ReferenceDot, VecDotF16FoldsRegistersInTheReferenceOrder) {
  // Lane 0 of registers 0, 1, 2 (elements 0, 16, 32): 2^24, 1, -2^24. The reference folds
  // register 2 into 0 first (2^24 - 2^24 = 0), then adds register 1: the result is 1. Summing
  // in index order would lose the 1.
  std::vector<uint16_t> a(64, 0), b(64, 0);
  a[0] = h(4096), b[0] = h(4096);
  a[16] = h(1), b[16] = h(1);
  a[32] = h(-4096), b[32] = h(4096);
  EXPECT_EQ(ref::vec_dot_f16(a.data(), b.data(), 64), 1.0f);
}

TEST(ReferenceDot, TinyblasTreeSum) {
  // Lanes 0, 1, 8 hold 2^24, 1, -2^24: the tree adds lane 8 onto lane 0 first -> 1.
  std::vector<uint16_t> a(16, 0);
  std::vector<float> b(16, 0.0f);
  a[0] = h(4096), b[0] = 4096.0f;
  a[1] = h(1), b[1] = 1.0f;
  a[8] = h(-4096), b[8] = 4096.0f;
  EXPECT_EQ(ref::tinyblas_dot_f16_f32(a.data(), b.data(), 16), 1.0f);
  std::vector<float> af(16, 0.0f);
  af[0] = 16777216.0f, af[1] = 1.0f, af[8] = -16777216.0f;
  std::vector<float> ones(16, 1.0f);
  EXPECT_EQ(ref::tinyblas_dot_f32(af.data(), ones.data(), 16), 1.0f);
  // One FMA chain per lane: elements 0 and 16 share lane 0.
  std::vector<float> c(32, 0.0f);
  c[0] = 3.0f, c[16] = 4.0f;
  std::vector<float> d(32, 2.0f);
  EXPECT_EQ(ref::tinyblas_dot_f32(c.data(), d.data(), 32), 14.0f);
  EXPECT_EQ(ref::tinyblas_dot_f32(c.data(), d.data(), 20), 14.0f);  // partial last step
}

// ---- activation quantization ----------------------------------------------------------------

TEST(ReferenceQuant, I8RoundsHalfToEven) {
  // amax = 127 gives s = 1, so q = round(x) exactly.
  const std::vector<float> x = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 126.5f, -3.5f, 0.49999997f};
  std::vector<int8_t> q(x.size());
  const ref::I8Row row = ref::quantize_row_i8(x.data(), static_cast<int64_t>(x.size()), q.data());
  EXPECT_EQ(row.scale, 1.0f);
  const std::vector<int8_t> want = {127, 0, 2, 2, 0, -2, 126, -4, 0};
  EXPECT_EQ(q, want);
  EXPECT_EQ(row.sum, 127 + 0 + 2 + 2 + 0 - 2 + 126 - 4 + 0);
}

TEST(ReferenceQuant, I8ScaleIsTheDoubleQuotientRoundedOnce) {
  const std::vector<float> x = {3.0f, -1.0f, 0.25f};
  std::vector<int8_t> q(x.size());
  const ref::I8Row row = ref::quantize_row_i8(x.data(), 3, q.data());
  EXPECT_EQ(row.scale, static_cast<float>(127.0 / 3.0));
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], static_cast<int8_t>(std::nearbyint(-1.0f * row.scale)));
  // All zeros: amax is floored at 1e-5.
  const std::vector<float> zeros(3, 0.0f);
  const ref::I8Row zero_row = ref::quantize_row_i8(zeros.data(), 3, q.data());
  EXPECT_EQ(zero_row.scale, static_cast<float>(127.0 / 0.00001));
  EXPECT_EQ(zero_row.sum, 0);
}

// ---- dequantizers ------------------------------------------------------------------------------

ref::WeightView view(gguf::GgmlType type, const std::vector<uint8_t>& bytes, int64_t rows, int64_t cols) {
  return ref::WeightView{type, bytes.data(), rows, cols};
}

void put_f16(std::vector<uint8_t>& bytes, size_t at, float value) {
  const uint16_t v = h(value);
  std::memcpy(bytes.data() + at, &v, 2);
}

std::vector<float> row_of(const ref::WeightView& w, int64_t row) {
  std::vector<float> out(static_cast<size_t>(w.cols));
  ref::dequantize_row(w, row, out.data());
  return out;
}

TEST(ReferenceDequant, PlainFloatTypes) {
  std::vector<uint8_t> f32(8);
  const float values[2] = {1.25f, -7.0f};
  std::memcpy(f32.data(), values, 8);
  EXPECT_EQ(row_of(view(gguf::GgmlType::F32, f32, 1, 2), 0), (std::vector<float>{1.25f, -7.0f}));
  std::vector<uint8_t> f16(8);
  put_f16(f16, 0, 1.0f), put_f16(f16, 2, -2.0f), put_f16(f16, 4, 0.5f), put_f16(f16, 6, 65504.0f);
  EXPECT_EQ(row_of(view(gguf::GgmlType::F16, f16, 2, 2), 1), (std::vector<float>{0.5f, 65504.0f}));
  const std::vector<uint8_t> bf16 = {0x80, 0x3F, 0x40, 0xC0};  // 0x3F80, 0xC040
  EXPECT_EQ(row_of(view(gguf::GgmlType::BF16, bf16, 1, 2), 0), (std::vector<float>{1.0f, -3.0f}));
}

TEST(ReferenceDequant, Q8_0) {
  std::vector<uint8_t> block(2 * 34, 0);
  put_f16(block, 34, 0.5f);  // second block (row 1 with 32 columns)
  const int8_t qs[5] = {-128, -1, 0, 1, 127};
  std::memcpy(block.data() + 36, qs, 5);
  const std::vector<float> y = row_of(view(gguf::GgmlType::Q8_0, block, 2, 32), 1);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[1], -0.5f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], 0.5f);
  EXPECT_EQ(y[4], 63.5f);
  EXPECT_EQ(y[31], 0.0f);
}

TEST(ReferenceDequant, Q4_0) {
  std::vector<uint8_t> block(18, 0x88);  // nibble 8 = 0
  put_f16(block, 0, 2.0f);
  block[2] = 0x1F;  // weight 0: 15 - 8 = 7; weight 16: 1 - 8 = -7
  block[3] = 0x80;  // weight 1: 0 - 8 = -8; weight 17: 0
  const std::vector<float> y = row_of(view(gguf::GgmlType::Q4_0, block, 1, 32), 0);
  EXPECT_EQ(y[0], 14.0f);
  EXPECT_EQ(y[16], -14.0f);
  EXPECT_EQ(y[1], -16.0f);
  EXPECT_EQ(y[17], 0.0f);
  EXPECT_EQ(y[5], 0.0f);
}

TEST(ReferenceDequant, Q6_K) {
  // ql[128] | qh[64] | scales[16] | d
  std::vector<uint8_t> block(210, 0);
  put_f16(block, 208, 0.25f);
  auto* sc = reinterpret_cast<int8_t*>(block.data() + 192);
  sc[0] = 1, sc[1] = 5, sc[2] = 2, sc[4] = -3, sc[6] = 4, sc[8] = -7;
  block[0] = 0xA5;         // ql[0]: low 5 (weight 0), high 10 (weight 64)
  block[32] = 0x0F;        // ql[32]: low 15 (weight 32), high 0 (weight 96)
  block[128] = 0xE4;       // qh[0]: high bits 0 (w0), 1 (w32), 2 (w64), 3 (w96)
  block[16] = 0x03;        // ql[16]: weight 16 low = 3
  block[128 + 16] = 0x03;  // qh[16]: weight 16 high = 3 -> 51
  block[64] = 0x01;        // second half: ql[64] -> weight 128 low = 1
  block[128 + 32] = 0x02;  // qh[32] -> weight 128 high = 2 -> 33
  const std::vector<float> y = row_of(view(gguf::GgmlType::Q6_K, block, 1, 256), 0);
  EXPECT_EQ(y[0], 0.25f * 1 * (5 - 32));      // -6.75
  EXPECT_EQ(y[32], 0.25f * 2 * (31 - 32));    // -0.5
  EXPECT_EQ(y[64], 0.25f * -3 * (42 - 32));   // -7.5
  EXPECT_EQ(y[96], 0.25f * 4 * (48 - 32));    // 16
  EXPECT_EQ(y[16], 0.25f * 5 * (51 - 32));    // 23.75 (scale index 1: l >= 16)
  EXPECT_EQ(y[128], 0.25f * -7 * (33 - 32));  // -1.75 (second half: scales 8..)
  EXPECT_EQ(y[1], 0.25f * 1 * -32);           // empty bytes decode to -32
  EXPECT_EQ(y[17], 0.25f * 5 * -32);
  EXPECT_EQ(y[33], 0.25f * 2 * -32);
  EXPECT_EQ(y[200], 0.0f);  // scale 12 is 0
}

TEST(ReferenceDequant, TQ2_0) {
  std::vector<uint8_t> block(66, 0);
  put_f16(block, 64, 1.5f);
  block[0] = 0x92;   // codes 2, 0, 1, 2 -> weights 0, 32, 64, 96
  block[33] = 0x01;  // second group: code 1 for weight 128 + 1
  const std::vector<float> y = row_of(view(gguf::GgmlType::TQ2_0, block, 1, 256), 0);
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_EQ(y[32], -1.5f);
  EXPECT_EQ(y[64], 0.0f);
  EXPECT_EQ(y[96], 1.5f);
  EXPECT_EQ(y[129], 0.0f);
  EXPECT_EQ(y[161], -1.5f);
  EXPECT_EQ(y[1], -1.5f);
}

TEST(ReferenceDequant, TQ1_0) {
  // qs[48] | qh[4] | d. A byte holds trits t0..t4 as ceil((t0*81 + t1*27 + t2*9 + t3*3 + t4) * 256 / 243).
  std::vector<uint8_t> block(54, 0);
  put_f16(block, 52, 2.0f);
  block[0] = 181;   // trits 2,0,1,0,0 (171 * 256 / 243 rounded up)
  block[32] = 181;  // same, in the 16-wide part
  block[48] = 146;  // qh[0]: trits 1,2,0,1 (138 * 256 / 243 rounded up)
  const std::vector<float> y = row_of(view(gguf::GgmlType::TQ1_0, block, 1, 256), 0);
  const float want_first[5] = {2.0f, -2.0f, 0.0f, -2.0f, -2.0f};
  for (int n = 0; n < 5; ++n) {
    EXPECT_EQ(y[32 * n], want_first[n]) << n;
    EXPECT_EQ(y[160 + 16 * n], want_first[n]) << n;
  }
  EXPECT_EQ(y[240], 0.0f);
  EXPECT_EQ(y[244], 2.0f);
  EXPECT_EQ(y[248], -2.0f);
  EXPECT_EQ(y[252], 0.0f);
  EXPECT_EQ(y[1], -2.0f);  // byte 0 is trits 0,0,0,0,0
  EXPECT_EQ(y[241], -2.0f);
  // Every 5-trit number survives the byte encoding.
  for (int v = 0; v < 243; ++v) {
    std::vector<uint8_t> b(54, 0);
    put_f16(b, 52, 1.0f);
    b[0] = static_cast<uint8_t>((v * 256 + 242) / 243);
    const std::vector<float> z = row_of(view(gguf::GgmlType::TQ1_0, b, 1, 256), 0);
    int decoded = 0;
    for (int n = 0; n < 5; ++n) decoded = decoded * 3 + static_cast<int>(z[32 * n] + 1.0f);
    ASSERT_EQ(decoded, v);
  }
}

TEST(ReferenceDequant, I2S) {
  // 2 rows x 128 columns: 64 bytes of codes, then the f32 scale, then 28 unspecified bytes.
  std::vector<uint8_t> data(64 + 32, 0xEE);
  std::fill(data.begin(), data.begin() + 64, 0x55);  // all codes 1 (weight 0)
  data[0] = 0b10'01'00'11;                           // row 0: cols 0, 32, 64, 96 = codes 2, 1, 0, 3
  data[32 + 5] = 0b10'00'00'01;                      // row 1: col 5 = 2, cols 37, 69 = 0, col 101 = 1
  const float scale = 0.75f;
  std::memcpy(data.data() + 64, &scale, 4);
  const ref::WeightView w = view(gguf::GgmlType::I2_S, data, 2, 128);
  EXPECT_EQ(ref::i2s_scale(w), 0.75f);
  std::vector<uint8_t> codes(128);
  ref::i2s_unpack_row(w, 0, codes.data());
  EXPECT_EQ(codes[0], 2);
  EXPECT_EQ(codes[32], 1);
  EXPECT_EQ(codes[64], 0);
  EXPECT_EQ(codes[96], 3);
  EXPECT_EQ(codes[1], 1);
  const std::vector<float> r0 = row_of(w, 0);
  EXPECT_EQ(r0[0], 0.75f);
  EXPECT_EQ(r0[32], 0.0f);
  EXPECT_EQ(r0[64], -0.75f);
  EXPECT_EQ(r0[96], 0.0f);  // code 3 decodes like code 1
  const std::vector<float> r1 = row_of(w, 1);
  EXPECT_EQ(r1[5], 0.75f);
  EXPECT_EQ(r1[37], -0.75f);
  EXPECT_EQ(r1[69], -0.75f);
  EXPECT_EQ(r1[101], 0.0f);
  EXPECT_EQ(r1[6], 0.0f);

  // The integer product: x[0] = 2, x[5] = -1, x[64] = 0.5 quantize with s = 63.5 to 127, -64
  // and 32 (31.75 rounded). Row 0 is +1 at column 0 and -1 at column 64; row 1 is +1 at
  // column 5 and -1 at columns 37 and 69, where x is 0.
  std::vector<float> x(128, 0.0f);
  x[0] = 2.0f, x[5] = -1.0f, x[64] = 0.5f;
  std::vector<float> y(2);
  ref::matmul(x.data(), 1, w, ref::Mode::kPrompt, y.data());
  const float s = static_cast<float>(127.0 / 2.0);
  EXPECT_EQ(y[0], static_cast<float>(127 - 32) / s * 0.75f);  // q[64] = round(31.75) = 32
  EXPECT_EQ(y[1], static_cast<float>(-64) / s * 0.75f);
}

// ---- norm, rope --------------------------------------------------------------------------------

TEST(ReferenceNorm, RmsNormRoundingSteps) {
  // 4097^2 = 16785409 is rounded to float (16785408) before the double sum.
  const std::vector<float> x = {4097.0f, 1.0f};
  std::vector<float> y(2);
  ref::rms_norm(x.data(), 2, 1e-5f, y.data());
  const auto mean = static_cast<float>((16785408.0 + 1.0) / 2.0);
  const float scale = 1.0f / std::sqrt(mean + 1e-5f);
  EXPECT_EQ(y[0], 4097.0f * scale);
  EXPECT_EQ(y[1], scale);
}

TEST(ReferenceRope, PairsAndAngles) {
  // head_dim 4, base 10000: theta_0 = pos, theta_1 = pos * 10000^-0.5 = pos * 0.01.
  const float t1 = 1.0f * std::pow(10000.0f, -0.5f);
  std::vector<float> normal = {1.0f, 0.0f, 0.0f, 1.0f};
  ref::rope_normal(normal.data(), 4, 1, 1, 10000.0f, 1.0f);
  EXPECT_EQ(normal, (std::vector<float>{std::cos(1.0f), std::sin(1.0f), -std::sin(t1), std::cos(t1)}));
  std::vector<float> neox = {1.0f, 0.0f, 0.0f, 1.0f};
  ref::rope_neox(neox.data(), 4, 1, 1, 10000.0f, 1.0f);
  EXPECT_EQ(neox, (std::vector<float>{std::cos(1.0f), -std::sin(t1), std::sin(1.0f), std::cos(t1)}));
  // Position 0 is the identity; a second head gets the same rotation.
  std::vector<float> two = {0.3f, -1.5f, 2.0f, 7.0f, 0.3f, -1.5f, 2.0f, 7.0f};
  const std::vector<float> before = two;
  ref::rope_neox(two.data(), 4, 2, 0, 10000.0f, 1.0f);
  EXPECT_EQ(two, before);
  ref::rope_neox(two.data(), 4, 2, 9, 10000.0f, 1.0f);
  EXPECT_TRUE(std::equal(two.begin(), two.begin() + 4, two.begin() + 4));
}

// ---- attention, prompt vs decode ---------------------------------------------------------------

TEST(ReferenceAttention, PaddedWindow) {
  EXPECT_EQ(ref::padded_kv_length(1), 32);
  EXPECT_EQ(ref::padded_kv_length(32), 32);
  EXPECT_EQ(ref::padded_kv_length(33), 64);
  EXPECT_EQ(ref::padded_kv_length(33, 40), 40);
  EXPECT_EQ(ref::padded_kv_length(16, 512), 32);
}

TEST(ReferenceAttention, SoftmaxMasksToExactZero) {
  std::vector<float> s(32), mask(32, -kInf), p(32);
  for (int i = 0; i < 32; ++i) s[i] = static_cast<float>(i % 7) - 3.0f;
  for (int i = 0; i < 10; ++i) mask[i] = 0.0f;
  ref::softmax(s.data(), mask.data(), 32, 0.5f, p.data());
  double total = 0;
  for (int i = 0; i < 32; ++i) {
    if (i >= 10) {
      EXPECT_EQ(p[i], 0.0f) << i;
    }
    total += p[i];
  }
  EXPECT_NEAR(total, 1.0, 1e-6);
  EXPECT_EQ(p[1], p[1 + 7]);  // equal scores, equal probabilities
}

// Decode mode (one token per call) rounds p to F16 and uses vec_dot_f16 for o = V p; prompt
// mode keeps p in F32 and uses tinyBLAS. The scores and the softmax are the same in both.
TEST(ReferenceAttention, DecodeRoundsProbabilitiesToF16) {
  const ref::AttentionShape shape{4, 2, 32};
  const int64_t n_ctx = 64, n_embd_kv = 64, pos = 20;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> k(static_cast<size_t>((pos + 1) * n_embd_kv)), v(k.size()), q(128);
  for (float& f : k) f = normal(rng);
  for (float& f : v) f = normal(rng);
  for (float& f : q) f = 0.3f * normal(rng);
  std::vector<uint16_t> kc(static_cast<size_t>(n_ctx * n_embd_kv), 0), vc(kc.size(), 0);
  const ref::KvLayerView kv{kc.data(), vc.data(), n_ctx};
  ref::kv_store(k.data(), v.data(), pos + 1, 0, shape, kv);

  const int64_t n_kv = ref::padded_kv_length(pos + 1, n_ctx);
  std::vector<float> out_prompt(128), out_decode(128);
  std::vector<float> scores_p(static_cast<size_t>(4 * n_kv)), probs_p(scores_p.size());
  std::vector<float> scores_d(scores_p.size()), probs_d(scores_p.size());
  ref::attention(q.data(), 1, pos, shape, kv, ref::Mode::kPrompt, out_prompt.data(), scores_p.data(), probs_p.data());
  ref::attention(q.data(), 1, pos, shape, kv, ref::Mode::kDecode, out_decode.data(), scores_d.data(), probs_d.data());
  EXPECT_EQ(scores_p, scores_d);
  EXPECT_EQ(probs_p, probs_d);

  int differing = 0;
  std::vector<uint16_t> p16(static_cast<size_t>(n_kv));
  for (int64_t head = 0; head < 4; ++head) {
    const int64_t g = head / 2;
    for (int64_t j = 0; j < n_kv; ++j) p16[j] = h(probs_p[head * n_kv + j]);
    for (int64_t d = 0; d < 32; ++d) {
      const uint16_t* v_row = vc.data() + (g * 32 + d) * n_ctx;
      const float prompt = ref::tinyblas_dot_f16_f32(v_row, probs_p.data() + head * n_kv, n_kv);
      const float decode = ref::vec_dot_f16(v_row, p16.data(), n_kv);
      EXPECT_EQ(out_prompt[head * 32 + d], prompt);
      EXPECT_EQ(out_decode[head * 32 + d], decode);
      differing += prompt != decode;
    }
  }
  EXPECT_GT(differing, 0);
}

// The F16 LM head: decode rounds the activations to F16 and uses vec_dot_f16.
TEST(ReferenceMatmul, F16DecodeRoundsActivations) {
  const int64_t rows = 40, cols = 96;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<uint8_t> w(static_cast<size_t>(rows * cols * 2));
  std::vector<uint16_t> w16(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < w16.size(); ++i) {
    w16[i] = h(normal(rng));
    std::memcpy(w.data() + 2 * i, &w16[i], 2);
  }
  std::vector<float> x(static_cast<size_t>(2 * cols));
  for (float& f : x) f = normal(rng);
  const ref::WeightView view{gguf::GgmlType::F16, w.data(), rows, cols};
  std::vector<float> prompt(static_cast<size_t>(2 * rows)), decode(prompt.size());
  ref::matmul(x.data(), 2, view, ref::Mode::kPrompt, prompt.data());
  ref::matmul(x.data(), 2, view, ref::Mode::kDecode, decode.data());
  int differing = 0;
  for (int64_t t = 0; t < 2; ++t) {
    std::vector<uint16_t> x16(static_cast<size_t>(cols));
    for (int64_t k = 0; k < cols; ++k) x16[k] = h(x[t * cols + k]);
    for (int64_t r = 0; r < rows; ++r) {
      EXPECT_EQ(prompt[t * rows + r], ref::tinyblas_dot_f16_f32(w16.data() + r * cols, x.data() + t * cols, cols));
      EXPECT_EQ(decode[t * rows + r], ref::vec_dot_f16(w16.data() + r * cols, x16.data(), cols));
      differing += prompt[t * rows + r] != decode[t * rows + r];
    }
  }
  EXPECT_GT(differing, 0);
}

// Other types: dequantize, then the F32 chain, the same in both modes.
TEST(ReferenceMatmul, DequantizedTypesUseTheF32Chain) {
  std::vector<uint8_t> block(2 * 34, 0);
  for (int b = 0; b < 2; ++b) {
    put_f16(block, static_cast<size_t>(b * 34), 0.125f * static_cast<float>(b + 1));
    for (int j = 0; j < 32; ++j) block[static_cast<size_t>(b * 34 + 2 + j)] = static_cast<uint8_t>(j * 7 - 100);
  }
  const ref::WeightView w{gguf::GgmlType::Q8_0, block.data(), 2, 32};
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = 0.1f * static_cast<float>(j) - 1.0f;
  std::vector<float> prompt(2), decode(2);
  ref::matmul(x.data(), 1, w, ref::Mode::kPrompt, prompt.data());
  ref::matmul(x.data(), 1, w, ref::Mode::kDecode, decode.data());
  for (int r = 0; r < 2; ++r) {
    const std::vector<float> row = row_of(w, r);
    EXPECT_EQ(prompt[r], ref::tinyblas_dot_f32(row.data(), x.data(), 32));
    EXPECT_EQ(decode[r], prompt[r]);
  }
}

// ---- .npy reader -------------------------------------------------------------------------------

TEST(Npy, ReadsFloatAndIntArrays) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::string& descr, const std::string& shape, const void* data,
                   size_t bytes) {
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::string file = "\x93NUMPY";
    file += '\x01';
    file += '\x00';
    file += static_cast<char>(header.size() & 0xff);
    file += static_cast<char>(header.size() >> 8);
    file += header;
    file.append(static_cast<const char*>(data), bytes);
    write_file(dir / name, std::vector<uint8_t>(file.begin(), file.end()));
  };
  const float f[6] = {1, 2, 3, 4, 5, -6.5f};
  const int32_t i[3] = {7, -8, 9};
  write("f.npy", "<f4", "(2, 3)", f, sizeof f);
  write("i.npy", "<i4", "(3,)", i, sizeof i);
  write("d.npy", "<f8", "(1,)", f, 8);
  auto fa = read_npy(dir / "f.npy");
  ASSERT_TRUE(fa.ok()) << fa.error().message;
  EXPECT_EQ(fa->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(fa->f32, (std::vector<float>{1, 2, 3, 4, 5, -6.5f}));
  auto ia = read_npy(dir / "i.npy");
  ASSERT_TRUE(ia.ok()) << ia.error().message;
  EXPECT_EQ(ia->shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(ia->i32, (std::vector<int32_t>{7, -8, 9}));
  EXPECT_FALSE(read_npy(dir / "d.npy").ok());
  EXPECT_FALSE(read_npy(dir / "missing.npy").ok());
}

}  // namespace
}  // namespace bitnet::testing
