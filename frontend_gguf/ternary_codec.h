// Packing and unpacking the three ternary weight formats, one tensor at a time, to and from
// plain ternary values (-1, 0, +1 as int8, in the tensor's flat row-major order) plus scales:
//   I2_S  (spec 6): 2-bit codes in 128-weight blocks of 32 bytes, then one f32 scale per tensor
//                   and 28 unspecified bytes (written as zeros here).
//   TQ2_0 (ggml):   per 256 weights, 64 bytes of 2-bit codes (value + 1) and an f16 scale.
//   TQ1_0 (ggml):   per 256 weights, 48 bytes of 5 base-3 digits + 4 bytes of 4 digits, f16 scale.
// The layouts are described in docs/ternary-formats.md; ir/dtype_decode.cpp holds the decoders
// the engine uses, which the tests hold these encoders to.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
#include <span>
#include <vector>

namespace bitnet::gguf::ternary {

inline constexpr uint64_t kI2SBlock = 128;
inline constexpr uint64_t kTQBlock = 256;
inline constexpr uint64_t kTQ2BlockBytes = 66;
inline constexpr uint64_t kTQ1BlockBytes = 54;

inline uint64_t i2s_bytes(uint64_t n) {
  return n / 4 + 32;
}

// Decoders: `data` must hold the tensor's bytes (sizes are checked); `n` is its element count
// (a multiple of the block size). They fail on a 2-bit code 3, which is not a ternary value.
Status decode_i2s(std::span<const uint8_t> data, uint64_t n, std::vector<int8_t>& values, float& scale);
Status decode_tq2_0(std::span<const uint8_t> data, uint64_t n, std::vector<int8_t>& values,
                    std::vector<uint16_t>& block_scales);
// Every TQ1_0 byte decodes to digits 0..2, so this cannot fail on content, only on size.
Status decode_tq1_0(std::span<const uint8_t> data, uint64_t n, std::vector<int8_t>& values,
                    std::vector<uint16_t>& block_scales);

// Encoders: values.size() must be a multiple of the block size, and block_scales must hold one
// f16 per 256 values (the callers check both).
std::vector<uint8_t> encode_i2s(std::span<const int8_t> values, float scale);
std::vector<uint8_t> encode_tq2_0(std::span<const int8_t> values, std::span<const uint16_t> block_scales);
std::vector<uint8_t> encode_tq1_0(std::span<const int8_t> values, std::span<const uint16_t> block_scales);

}  // namespace bitnet::gguf::ternary
