// Weight decoding (I2_S and the ggml block formats) and the int8 activation quantizer of the I2_S path.
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "reference/kernels.h"

namespace bitnet::ref {
namespace {

using gguf::GgmlType;

// Block data is packed without alignment guarantees, so every multi-byte field is copied out.
float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// Bytes of one row of `cols` elements for the block formats.
int64_t row_bytes(GgmlType type, int64_t cols) {
  const gguf::GgmlTypeInfo* info = gguf::find_ggml_type(static_cast<uint32_t>(type));
  assert(info != nullptr && info->size_rule == gguf::SizeRule::kBlocks);
  return cols / info->block_size * info->block_bytes;
}

// Q8_0: 32 weights = f16 d + 32 x int8; w = q * d.
void dequantize_q8_0(const uint8_t* block, float* y) {
  const float d = load_f16(block);
  const auto* qs = reinterpret_cast<const int8_t*>(block + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// Q4_0: 32 weights = f16 d + 16 bytes; byte j holds weight j (low nibble) and weight j+16
// (high nibble), both offset by 8.
void dequantize_q4_0(const uint8_t* block, float* y) {
  const float d = load_f16(block);
  const uint8_t* qs = block + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q6_K: 256 weights = ql[128] (low 4 bits) + qh[64] (high 2 bits) + int8 scales[16] + f16 d.
// Each half of 128 weights uses 64 ql bytes, 32 qh bytes and 8 scales: weight l (l < 32) of
// quarter k takes the low (k even) or high (k odd) nibble of ql[l + 32*(k&1)] and bits
// 2k..2k+1 of qh[l]; the 6-bit value is offset by 32; scale index = l/16 + 2k.
void dequantize_q6_k(const uint8_t* block, float* y) {
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

// One base-3 digit of a TQ1_0 byte. The byte stores a 5-trit number as a fixed-point
// fraction of 243 (rounded up); multiplying by 3^n (mod 256) shifts digit n to the top, and
// (q * 3) >> 8 reads it off.
int tq1_trit(uint8_t byte, int n) {
  static constexpr uint8_t kPow3[6] = {1, 3, 9, 27, 81, 243};
  const auto q = static_cast<uint8_t>(byte * kPow3[n]);
  return (static_cast<uint16_t>(q) * 3) >> 8;
}

// TQ1_0: 256 weights = qs[48] (5 trits per byte) + qh[4] (4 trits per byte) + f16 d.
// Order: qs[0..32) gives 5 x 32 weights (digit n of byte m is weight 32n + m), qs[32..48)
// gives 5 x 16 (weight 160 + 16n + m), qh gives 4 x 4 (weight 240 + 4n + m); w = (t - 1) * d.
void dequantize_tq1_0(const uint8_t* block, float* y) {
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

// TQ2_0: 256 weights = qs[64] of 2-bit codes (q + 1) + f16 d. Each group of 32 bytes holds
// 128 weights: bits 2l..2l+1 of byte m are weight 32l + m.
void dequantize_tq2_0(const uint8_t* block, float* y) {
  const uint8_t* qs = block;
  const float d = load_f16(block + 64);
  for (int group = 0; group < 64; group += 32)
    for (int l = 0; l < 4; ++l)
      for (int m = 0; m < 32; ++m) *y++ = static_cast<float>(((qs[group + m] >> (2 * l)) & 3) - 1) * d;
}

}  // namespace

float i2s_scale(const WeightView& w) {
  float scale;
  std::memcpy(&scale, w.data + w.rows * w.cols / 4, 4);
  return scale;
}

// Spec 6: blocks of 128 weights in 32 bytes; byte i of a block holds weights i, 32+i, 64+i,
// 96+i in bits 7-6, 5-4, 3-2, 1-0. K % 128 == 0, so a row is a whole number of blocks.
void i2s_unpack_row(const WeightView& w, int64_t row, uint8_t* codes) {
  const uint8_t* bytes = w.data + row * w.cols / 4;
  for (int64_t block = 0; block < w.cols / 128; ++block) {
    const uint8_t* b = bytes + block * 32;
    uint8_t* c = codes + block * 128;
    for (int i = 0; i < 32; ++i) {
      c[i] = (b[i] >> 6) & 3;
      c[32 + i] = (b[i] >> 4) & 3;
      c[64 + i] = (b[i] >> 2) & 3;
      c[96 + i] = b[i] & 3;
    }
  }
}

void dequantize_row(const WeightView& w, int64_t row, float* out) {
  const int64_t cols = w.cols;
  switch (w.type) {
    case GgmlType::F32:
      std::memcpy(out, w.data + row * cols * 4, static_cast<size_t>(cols) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < cols; ++i) out[i] = load_f16(w.data + (row * cols + i) * 2);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < cols; ++i) {
        uint16_t h;
        std::memcpy(&h, w.data + (row * cols + i) * 2, 2);
        out[i] = bf16_to_fp32(h);
      }
      return;
    case GgmlType::I2_S: {
      // Code 3 never occurs; the reference dequantizer maps it to 0 like code 1.
      static constexpr float kValue[4] = {-1.0f, 0.0f, 1.0f, 0.0f};
      const float scale = i2s_scale(w);
      std::vector<uint8_t> codes(static_cast<size_t>(cols));
      i2s_unpack_row(w, row, codes.data());
      for (int64_t i = 0; i < cols; ++i) out[i] = kValue[codes[i]] * scale;
      return;
    }
    default:
      break;
  }
  // Block formats: walk the blocks of the row.
  const uint8_t* src = w.data + row * row_bytes(w.type, cols);
  switch (w.type) {
    case GgmlType::Q8_0:
      for (int64_t b = 0; b < cols / 32; ++b) dequantize_q8_0(src + b * 34, out + b * 32);
      return;
    case GgmlType::Q4_0:
      for (int64_t b = 0; b < cols / 32; ++b) dequantize_q4_0(src + b * 18, out + b * 32);
      return;
    case GgmlType::Q6_K:
      for (int64_t b = 0; b < cols / 256; ++b) dequantize_q6_k(src + b * 210, out + b * 256);
      return;
    case GgmlType::TQ1_0:
      for (int64_t b = 0; b < cols / 256; ++b) dequantize_tq1_0(src + b * 54, out + b * 256);
      return;
    case GgmlType::TQ2_0:
      for (int64_t b = 0; b < cols / 256; ++b) dequantize_tq2_0(src + b * 66, out + b * 256);
      return;
    default:
      assert(false && "dequantize_row: unsupported weight type");
  }
}

// quantize_row_i8_s (spec 8.2). The absmax is taken in double; the scale is the double
// quotient rounded once to float; each value is a float product rounded half to even (ggml's
// nearest_int magic-number trick, exact for |v| < 2^22) and clamped to int8.
I8Row quantize_row_i8(const float* x, int64_t n, int8_t* q) {
  double amax = 0.00001;
  for (int64_t i = 0; i < n; ++i) {
    const double a = std::fabs(static_cast<double>(x[i]));
    amax = a > amax ? a : amax;
  }
  I8Row row;
  row.scale = static_cast<float>(127.0 / amax);
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * row.scale;
    // v + 1.5*2^23 lands in [2^23, 2^24), where the float grid is the integers: the addition
    // rounds v half to even, and the low mantissa bits minus 2^22 are that integer.
    const float shifted = v + 12582912.0f;
    int32_t bits;
    std::memcpy(&bits, &shifted, 4);
    int32_t r = (bits & 0x007fffff) - 0x00400000;
    r = r > 127 ? 127 : (r < -128 ? -128 : r);
    q[i] = static_cast<int8_t>(r);
    row.sum += r;
  }
  return row;
}

}  // namespace bitnet::ref
