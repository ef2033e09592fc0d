#include "codegen_cuda/repack.h"

#include <string>

namespace bitnet::codegen_cuda {
namespace {

// Spec 6: byte b*32 + i of a 128-weight block holds weights 128b+i, +32, +64, +96 in bits
// 7-6, 5-4, 3-2, 1-0.
uint32_t i2s_code(const uint8_t* row_bytes, int64_t k) {
  const int64_t block = k / 128;
  const int64_t p = k % 128;
  const uint8_t byte = row_bytes[block * 32 + p % 32];
  return (byte >> (6 - 2 * (p / 32))) & 3u;
}

uint32_t chunk_word(const uint8_t* row_bytes, int64_t chunk) {
  uint32_t word = 0;
  for (int i = 0; i < 4; ++i) {
    for (int lane = 0; lane < 4; ++lane) word |= i2s_code(row_bytes, chunk * 16 + 4 * i + lane) << (8 * lane + 2 * i);
  }
  return word;
}

}  // namespace

Expected<std::vector<uint32_t>> repack_i2s(const uint8_t* data, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0 || cols % 128 != 0) {
    return Error{"repack_i2s: cols must be a positive multiple of 128 (got " + std::to_string(cols) + ")"};
  }
  const int64_t chunks = cols / 16;
  const int64_t tiled = chunks / kI2sTileChunks * kI2sTileChunks;
  std::vector<uint32_t> out(static_cast<size_t>(rows * chunks));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row_bytes = data + r * cols / 4;
    uint32_t* dst = out.data() + r * chunks;
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t slot = c;
      if (c < tiled) {
        const int64_t tile = c / kI2sTileChunks;
        const int64_t in_tile = c % kI2sTileChunks;
        slot = tile * kI2sTileChunks + (in_tile % 32) * 4 + in_tile / 32;
      }
      dst[slot] = chunk_word(row_bytes, c);
    }
  }
  return out;
}

int64_t f16_row_stride(int64_t cols) {
  return (cols + 7) / 8 * 8;
}

std::vector<uint16_t> repack_f16(const uint16_t* data, int64_t rows, int64_t cols) {
  const int64_t stride = f16_row_stride(cols);
  const int64_t chunks = cols / 64;
  const int64_t groups = chunks / 4;
  std::vector<uint16_t> out(static_cast<size_t>(rows * stride), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* src = data + r * cols;
    uint16_t* dst = out.data() + r * stride;
    for (int64_t g = 0; g < groups; ++g) {
      for (int lane = 0; lane < 32; ++lane) {
        for (int j = 0; j < 4; ++j) {
          for (int h = 0; h < 2; ++h) dst[g * 256 + lane * 8 + 2 * j + h] = src[64 * (4 * g + j) + 32 * h + lane];
        }
      }
    }
    for (int64_t c = groups * 4; c < chunks; ++c) {
      for (int lane = 0; lane < 32; ++lane) {
        for (int h = 0; h < 2; ++h) dst[c * 64 + 2 * lane + h] = src[64 * c + 32 * h + lane];
      }
    }
    for (int64_t k = chunks * 64; k < cols; ++k) dst[k] = src[k];
  }
  return out;
}

}  // namespace bitnet::codegen_cuda
