// F16 -> Q8_0 / Q6_K requantization (see requantize.h), written from the block layouts in
// reference/quant.cpp: Q8_0 = f16 d + 32 x int8; Q6_K = ql[128] + qh[64] + int8
// scales[16] + f16 d.
#include "compiler/requantize.h"

#include "reference/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace bitnet::compiler {

namespace {

void load_row(const uint8_t* f16, int64_t row, int64_t cols, std::vector<float>& out) {
  out.resize(static_cast<size_t>(cols));
  const uint8_t* p = f16 + row * cols * 2;
  for (int64_t i = 0; i < cols; ++i) {
    uint16_t h;
    std::memcpy(&h, p + i * 2, 2);
    out[static_cast<size_t>(i)] = ref::fp16_to_fp32(h);
  }
}

void put_half(uint8_t* at, float v) {
  const uint16_t h = ref::fp32_to_fp16(v);
  std::memcpy(at, &h, 2);
}

}  // namespace

std::vector<uint8_t> requantize_f16_to_q8_0(const uint8_t* f16, int64_t rows, int64_t cols) {
  const int64_t blocks = cols / 32;
  std::vector<uint8_t> out(static_cast<size_t>(rows * blocks * 34));
  std::vector<float> row;
  for (int64_t r = 0; r < rows; ++r) {
    load_row(f16, r, cols, row);
    for (int64_t b = 0; b < blocks; ++b) {
      const float* x = row.data() + b * 32;
      uint8_t* block = out.data() + (r * blocks + b) * 34;
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
      // Quantize with the scale as stored (f16), so rounding of d does not bias the codes.
      const float d = ref::fp16_to_fp32(ref::fp32_to_fp16(amax / 127.0f));
      put_half(block, d);
      for (int i = 0; i < 32; ++i) {
        const float q = d > 0 ? std::round(x[i] / d) : 0.0f;
        block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f)));
      }
    }
  }
  return out;
}

std::vector<uint8_t> requantize_f16_to_q6_k(const uint8_t* f16, int64_t rows, int64_t cols) {
  const int64_t blocks = cols / 256;
  std::vector<uint8_t> out(static_cast<size_t>(rows * blocks * 210));
  std::vector<float> row;
  for (int64_t r = 0; r < rows; ++r) {
    load_row(f16, r, cols, row);
    for (int64_t b = 0; b < blocks; ++b) {
      const float* x = row.data() + b * 256;
      uint8_t* block = out.data() + (r * blocks + b) * 210;
      // Sub-block scales: the largest-magnitude weight maps to -32 (the 6-bit range is
      // [-32, 31], so the negative end has the extra level).
      float sub[16];
      float max_scale = 0;
      for (int j = 0; j < 16; ++j) {
        float m = 0;
        for (int i = 0; i < 16; ++i) {
          if (std::fabs(x[16 * j + i]) > std::fabs(m)) m = x[16 * j + i];
        }
        sub[j] = m / -32.0f;
        max_scale = std::max(max_scale, std::fabs(sub[j]));
      }
      const float d = ref::fp16_to_fp32(ref::fp32_to_fp16(max_scale / 127.0f));
      put_half(block + 208, d);
      uint8_t codes[256];
      for (int j = 0; j < 16; ++j) {
        const float sc = d > 0 ? std::clamp(std::round(sub[j] / d), -128.0f, 127.0f) : 0.0f;
        block[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(sc));
        const float eff = d * sc;  // the decoder's (d * scale), rounded the same way
        for (int i = 0; i < 16; ++i) {
          const float q = eff != 0 ? std::clamp(std::round(x[16 * j + i] / eff), -32.0f, 31.0f) : 0.0f;
          codes[16 * j + i] = static_cast<uint8_t>(static_cast<int>(q) + 32);
        }
      }
      // Pack: in half h, weight 32k + l takes a nibble of ql[64h + 32(k & 1) + l] (low for
      // k < 2) and bits 2k of qh[32h + l].
      std::memset(block, 0, 192);
      for (int h = 0; h < 2; ++h) {
        for (int k = 0; k < 4; ++k) {
          for (int l = 0; l < 32; ++l) {
            const uint8_t q = codes[128 * h + 32 * k + l];
            block[64 * h + 32 * (k & 1) + l] |= static_cast<uint8_t>((q & 0x0F) << (k < 2 ? 0 : 4));
            block[128 + 32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * k));
          }
        }
      }
    }
  }
  return out;
}

}  // namespace bitnet::compiler
