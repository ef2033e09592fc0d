// The row decoders of the dtype table (dtype.h: DTypeInfo::to_float): each weight format's
// values as the reference (ggml) computes them, product by product. The interpreter and
// every test that needs a weight's real values decode through these; the JIT's vector
// decoders are tested against them.
#include "ir/dtype.h"

#include "ir/support/half.h"

#include <cstring>

namespace bitnet::ir::decoders {

// Block data is packed without alignment guarantees, so every multi-byte field is copied out.
static float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half::to_float(h);
}

void f32_to_float(const uint8_t* row, int64_t cols, float* y) {
  std::memcpy(y, row, static_cast<size_t>(cols) * 4);
}

void f16_to_float(const uint8_t* row, int64_t cols, float* y) {
  for (int64_t i = 0; i < cols; ++i) y[i] = load_f16(row + 2 * i);
}

// BF16: the upper half of a float.
void bf16_to_float(const uint8_t* row, int64_t cols, float* y) {
  for (int64_t i = 0; i < cols; ++i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    const uint32_t f = uint32_t{h} << 16;
    std::memcpy(y + i, &f, 4);
  }
}

// Q8_0: 32 weights = f16 d + 32 x int8; w = q * d.
void q8_0_to_float(const uint8_t* row, int64_t cols, float* y) {
  for (const uint8_t* block = row; cols > 0; cols -= 32, block += 34, y += 32) {
    const float d = load_f16(block);
    const auto* qs = reinterpret_cast<const int8_t*>(block + 2);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

// Q4_0: 32 weights = f16 d + 16 bytes; byte j holds weight j (low nibble) and weight j+16
// (high nibble), both offset by 8.
void q4_0_to_float(const uint8_t* row, int64_t cols, float* y) {
  for (const uint8_t* block = row; cols > 0; cols -= 32, block += 18, y += 32) {
    const float d = load_f16(block);
    const uint8_t* qs = block + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

// Q6_K: 256 weights = ql[128] (low 4 bits) + qh[64] (high 2 bits) + int8 scales[16] + f16 d.
// Each half of 128 weights uses 64 ql bytes, 32 qh bytes and 8 scales: weight l (l < 32) of
// quarter k takes the low (k even) or high (k odd) nibble of ql[l + 32*(k&1)] and bits
// 2k..2k+1 of qh[l]; the 6-bit value is offset by 32; scale index = l/16 + 2k.
static void q6_k_block(const uint8_t* block, float* y) {
  const uint8_t* ql = block;
  const uint8_t* qh = block + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(block + 192);
  const float d = load_f16(block + 208);
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      // (d * scale) first, then * q: the order ggml uses, each product rounded to float.
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}
void q6_k_to_float(const uint8_t* row, int64_t cols, float* y) {
  for (int64_t b = 0; b < cols / 256; ++b) q6_k_block(row + b * 210, y + b * 256);
}

// One base-3 digit of a TQ1_0 byte. The byte stores a 5-trit number as a fixed-point
// fraction of 243 (rounded up); multiplying by 3^n (mod 256) shifts digit n to the top, and
// (q * 3) >> 8 reads it off.
static int tq1_trit(uint8_t byte, int n) {
  static constexpr uint8_t kPow3[6] = {1, 3, 9, 27, 81, 243};
  const auto q = static_cast<uint8_t>(byte * kPow3[n]);
  return (static_cast<uint16_t>(q) * 3) >> 8;
}

// TQ1_0: 256 weights = qs[48] (5 trits per byte) + qh[4] (4 trits per byte) + f16 d.
// Order: qs[0..32) gives 5 x 32 weights (digit n of byte m is weight 32n + m), qs[32..48)
// gives 5 x 16 (weight 160 + 16n + m), qh gives 4 x 4 (weight 240 + 4n + m); w = (t - 1) * d.
static void tq1_0_block(const uint8_t* block, float* y) {
  const uint8_t* qs = block;
  const uint8_t* qh = block + 48;
  const float d = load_f16(block + 52);
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 32; ++m) *y++ = static_cast<float>(tq1_trit(qs[m], n) - 1) * d;
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 16; ++m) *y++ = static_cast<float>(tq1_trit(qs[32 + m], n) - 1) * d;
  for (int n = 0; n < 4; ++n)
    for (int m = 0; m < 4; ++m) *y++ = static_cast<float>(tq1_trit(qh[m], n) - 1) * d;
}
void tq1_0_to_float(const uint8_t* row, int64_t cols, float* y) {
  for (int64_t b = 0; b < cols / 256; ++b) tq1_0_block(row + b * 54, y + b * 256);
}

// TQ2_0: 256 weights = qs[64] of 2-bit codes (q + 1) + f16 d. Each group of 32 bytes holds
// 128 weights: bits 2l..2l+1 of byte m are weight 32l + m.
static void tq2_0_block(const uint8_t* block, float* y) {
  const uint8_t* qs = block;
  const float d = load_f16(block + 64);
  for (int group = 0; group < 64; group += 32)
    for (int l = 0; l < 4; ++l)
      for (int m = 0; m < 32; ++m) *y++ = static_cast<float>(((qs[group + m] >> (2 * l)) & 3) - 1) * d;
}
void tq2_0_to_float(const uint8_t* row, int64_t cols, float* y) {
  for (int64_t b = 0; b < cols / 256; ++b) tq2_0_block(row + b * 66, y + b * 256);
}

// I2_S (spec 6): blocks of 128 weights in 32 bytes; byte i of a block holds weights i, 32+i,
// 64+i, 96+i in bits 7-6, 5-4, 3-2, 1-0, as codes 0, 1, 2 for -1, 0, +1 (code 3 never
// occurs; the reference dequantizer maps it to 0 like code 1). Unscaled: the one scale of the
// tensor follows its codes (i2s_scale), and the caller multiplies by it.
void i2_s_to_float(const uint8_t* row, int64_t cols, float* y) {
  static constexpr float kValue[4] = {-1.0f, 0.0f, 1.0f, 0.0f};
  for (const uint8_t* block = row; cols > 0; cols -= 128, block += 32, y += 128) {
    for (int i = 0; i < 32; ++i) {
      y[i] = kValue[(block[i] >> 6) & 3];
      y[32 + i] = kValue[(block[i] >> 4) & 3];
      y[64 + i] = kValue[(block[i] >> 2) & 3];
      y[96 + i] = kValue[block[i] & 3];
    }
  }
}

}  // namespace bitnet::ir::decoders
