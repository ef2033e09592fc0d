// Weight rows as floats (through the dtype table's decoders), the I2_S codes, and the int8
// activation quantizer of the I2_S path.
#include <cassert>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "ir/dtype.h"
#include "reference/kernels.h"

namespace bitnet::ref {
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
  // The row decoders of the dtype table; I2_S rows come out as -1, 0, +1 and take the scale here.
  const std::optional<ir::DType> dtype = ir::dtype_from_ggml(static_cast<uint32_t>(w.type));
  assert(dtype && ir::dtype_info(*dtype).to_float != nullptr && "dequantize_row: unsupported weight type");
  const int64_t row_bytes = ir::dtype_row_bytes(*dtype, w.cols);
  ir::dtype_info(*dtype).to_float(w.data + row * row_bytes, w.cols, out);
  if (*dtype == ir::DType::I2_S) {
    const float scale = i2s_scale(w);
    for (int64_t i = 0; i < w.cols; ++i) out[i] *= scale;
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
