// Ternary packings (see ternary_codec.h and docs/ternary-formats.md).
#include "frontend_gguf/ternary_codec.h"

#include <cstring>

namespace bitnet::gguf::ternary {
namespace {

uint16_t load_u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xff);
  p[1] = static_cast<uint8_t>(v >> 8);
}

Status check_size(std::span<const uint8_t> data, uint64_t n, uint64_t block, uint64_t want, const char* type) {
  if (n % block != 0)
    return make_error("{} tensor of {} elements: not a whole number of {}-element blocks", type, n, block);
  if (data.size() < want)
    return make_error("{} tensor of {} elements needs {} bytes, has {}", type, n, want, data.size());
  return Status::success();
}

// Digit `n` (0 = most significant) of a TQ1_0 byte: the byte is a base-3 number scaled to a
// fraction of 256 (rounded up), so multiplying by 3^n (mod 256) brings digit n to the top.
int tq1_digit(uint8_t byte, int n) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const auto shifted = static_cast<uint8_t>(byte * kPow3[n]);
  return (shifted * 3) >> 8;
}

// The byte holding base-3 digits `q` (most significant first, 5 digits) as ggml stores it:
// q * 256 / 243 rounded up, so that tq1_digit reads the digits back.
uint8_t tq1_byte(int q) {
  return static_cast<uint8_t>((q * 256 + 242) / 243);
}

}  // namespace

Status decode_i2s(std::span<const uint8_t> data, uint64_t n, std::vector<int8_t>& values, float& scale) {
  BITNET_RETURN_IF_ERROR(check_size(data, n, kI2SBlock, i2s_bytes(n), "I2_S"));
  values.resize(n);
  for (uint64_t b = 0; b < n / kI2SBlock; ++b) {
    const uint8_t* block = data.data() + b * 32;
    int8_t* out = values.data() + b * kI2SBlock;
    for (int i = 0; i < 32; ++i) {
      for (int k = 0; k < 4; ++k) {
        const int code = (block[i] >> (6 - 2 * k)) & 3;
        if (code == 3) {
          return make_error("I2_S code 3 (not a ternary value) at element {}", b * kI2SBlock + 32 * k + i);
        }
        out[32 * k + i] = static_cast<int8_t>(code - 1);
      }
    }
  }
  std::memcpy(&scale, data.data() + n / 4, sizeof(float));
  return Status::success();
}

Status decode_tq2_0(std::span<const uint8_t> data, uint64_t n, std::vector<int8_t>& values,
                    std::vector<uint16_t>& block_scales) {
  BITNET_RETURN_IF_ERROR(check_size(data, n, kTQBlock, n / kTQBlock * kTQ2BlockBytes, "TQ2_0"));
  values.resize(n);
  block_scales.resize(n / kTQBlock);
  for (uint64_t b = 0; b < n / kTQBlock; ++b) {
    const uint8_t* block = data.data() + b * kTQ2BlockBytes;
    int8_t* out = values.data() + b * kTQBlock;
    for (int half = 0; half < 2; ++half) {
      for (int l = 0; l < 4; ++l) {
        for (int m = 0; m < 32; ++m) {
          const int code = (block[32 * half + m] >> (2 * l)) & 3;
          const uint64_t at = 128 * half + 32 * l + m;
          if (code == 3) return make_error("TQ2_0 code 3 (not a ternary value) at element {}", b * kTQBlock + at);
          out[at] = static_cast<int8_t>(code - 1);
        }
      }
    }
    block_scales[b] = load_u16(block + 64);
  }
  return Status::success();
}

Status decode_tq1_0(std::span<const uint8_t> data, uint64_t n, std::vector<int8_t>& values,
                    std::vector<uint16_t>& block_scales) {
  BITNET_RETURN_IF_ERROR(check_size(data, n, kTQBlock, n / kTQBlock * kTQ1BlockBytes, "TQ1_0"));
  values.resize(n);
  block_scales.resize(n / kTQBlock);
  for (uint64_t b = 0; b < n / kTQBlock; ++b) {
    const uint8_t* qs = data.data() + b * kTQ1BlockBytes;
    const uint8_t* qh = qs + 48;
    int8_t* out = values.data() + b * kTQBlock;
    for (int d = 0; d < 5; ++d) {
      for (int m = 0; m < 32; ++m) out[32 * d + m] = static_cast<int8_t>(tq1_digit(qs[m], d) - 1);
      for (int m = 0; m < 16; ++m) out[160 + 16 * d + m] = static_cast<int8_t>(tq1_digit(qs[32 + m], d) - 1);
    }
    for (int d = 0; d < 4; ++d) {
      for (int m = 0; m < 4; ++m) out[240 + 4 * d + m] = static_cast<int8_t>(tq1_digit(qh[m], d) - 1);
    }
    block_scales[b] = load_u16(qs + 52);
  }
  return Status::success();
}

std::vector<uint8_t> encode_i2s(std::span<const int8_t> values, float scale) {
  const uint64_t n = values.size();
  std::vector<uint8_t> out(i2s_bytes(n), 0);
  for (uint64_t b = 0; b < n / kI2SBlock; ++b) {
    const int8_t* in = values.data() + b * kI2SBlock;
    uint8_t* block = out.data() + b * 32;
    for (int i = 0; i < 32; ++i) {
      int byte = 0;
      for (int k = 0; k < 4; ++k) byte |= (in[32 * k + i] + 1) << (6 - 2 * k);
      block[i] = static_cast<uint8_t>(byte);
    }
  }
  std::memcpy(out.data() + n / 4, &scale, sizeof(float));
  return out;
}

std::vector<uint8_t> encode_tq2_0(std::span<const int8_t> values, std::span<const uint16_t> block_scales) {
  const uint64_t blocks = values.size() / kTQBlock;
  std::vector<uint8_t> out(blocks * kTQ2BlockBytes, 0);
  for (uint64_t b = 0; b < blocks; ++b) {
    const int8_t* in = values.data() + b * kTQBlock;
    uint8_t* block = out.data() + b * kTQ2BlockBytes;
    for (int half = 0; half < 2; ++half) {
      for (int m = 0; m < 32; ++m) {
        int byte = 0;
        for (int l = 0; l < 4; ++l) byte |= (in[128 * half + 32 * l + m] + 1) << (2 * l);
        block[32 * half + m] = static_cast<uint8_t>(byte);
      }
    }
    store_u16(block + 64, block_scales[b]);
  }
  return out;
}

std::vector<uint8_t> encode_tq1_0(std::span<const int8_t> values, std::span<const uint16_t> block_scales) {
  const uint64_t blocks = values.size() / kTQBlock;
  std::vector<uint8_t> out(blocks * kTQ1BlockBytes, 0);
  for (uint64_t b = 0; b < blocks; ++b) {
    const int8_t* in = values.data() + b * kTQBlock;
    uint8_t* qs = out.data() + b * kTQ1BlockBytes;
    uint8_t* qh = qs + 48;
    for (int m = 0; m < 32; ++m) {
      int q = 0;
      for (int d = 0; d < 5; ++d) q = q * 3 + in[32 * d + m] + 1;
      qs[m] = tq1_byte(q);
    }
    for (int m = 0; m < 16; ++m) {
      int q = 0;
      for (int d = 0; d < 5; ++d) q = q * 3 + in[160 + 16 * d + m] + 1;
      qs[32 + m] = tq1_byte(q);
    }
    for (int m = 0; m < 4; ++m) {
      int q = 0;
      for (int d = 0; d < 4; ++d) q = q * 3 + in[240 + 4 * d + m] + 1;
      qh[m] = tq1_byte(q * 3);  // four digits, the fifth (least significant) is 0
    }
    store_u16(qs + 52, block_scales[b]);
  }
  return out;
}

}  // namespace bitnet::gguf::ternary
