// Weight layouts the CUDA kernels read, made once at compile time from the GGUF bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "bitnet/result.h"

namespace bitnet::codegen_cuda {

// I2_S for the dp4a kernels (emit_matmul_i2s.h). The K codes of a row are cut into chunks of 16
// (k = 16c .. 16c+15), one 32-bit word each, laid out so that `(word >> 2i) & 0x03030303` is the
// four codes of k = 16c + 4i .. 16c + 4i + 3 in byte lanes 0..3 - the same order as the int8
// activations' 32-bit word i of that chunk, so one shift, one mask and one __dp4a per 4 codes.
// Bits 8L + 2i of the word hold the code of k = 16c + 4i + L.
// Within a row, whole tiles of 128 chunks come first, each stored lane-major (word 4 * lane + j
// is chunk 32 j + lane), so lane `lane` of a warp loads chunks lane, 32+lane, 64+lane, 96+lane
// with one 16-byte load while its activation reads stay contiguous across the warp; the
// remaining (K/16) % 128 chunks follow in order. Rows are K/16 words long, so every row starts
// 16-byte aligned. Codes are kept as stored (0, 1, 2 for -1, 0, +1).
inline constexpr int64_t kI2sTileChunks = 128;
// `data` is the GGUF tensor data (rows * cols / 4 code bytes, then the scale); cols % 128 == 0.
Expected<std::vector<uint32_t>> repack_i2s(const uint8_t* data, int64_t rows, int64_t cols);

// F16 for the LM head GEMV (emit_lm_head_f16.h), which reproduces ggml_vec_dot_f16's 64 lane
// chains: lane L of a warp owns elements 64c + L and 64c + 32 + L of every 64-element chunk c.
// Per row: groups of 4 chunks first, lane L's 8 halves of a group stored together
// (half 2j + h of lane L is element 64 (4g + j) + 32 h + L) so that they are one 16-byte load;
// then the leftover (< 4) chunks with lane L's two halves together (4 bytes); then the
// n % 64 tail elements in order. Rows are padded to a multiple of 8 halves (16 bytes).
int64_t f16_row_stride(int64_t cols);
std::vector<uint16_t> repack_f16(const uint16_t* data, int64_t rows, int64_t cols);

}  // namespace bitnet::codegen_cuda
