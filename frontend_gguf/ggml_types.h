// The ggml tensor type table: one row per type id that may appear in a GGUF file,
// with its block size and bytes per block (or a size function for the BitNet
// formats whose size is per tensor, not per block). Adding a type is adding a row.
#pragma once

#include "ir/support/expected.h"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace bitnet::gguf {

// Ids follow the bitnet.cpp llama.cpp fork (ggml.h enum ggml_type), which is the
// lineage that defines I2_S = 36. Ids 4 and 5 were removed from ggml long ago.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  Q4_0_4_4 = 31, Q4_0_4_8 = 32, Q4_0_8_8 = 33, TQ1_0 = 34, TQ2_0 = 35,
  I2_S = 36, I8_S = 37, TL1 = 38, TL2 = 39,
};

inline constexpr int kMaxDims = 4;

// How a type's byte size is computed.
enum class SizeRule : uint8_t {
  kBlocks,     // ne[0] must be a multiple of block_size; bytes = n / block_size * block_bytes
  kI2S,        // n/4 packed 2-bit codes + 32 bytes (f32 scale + padding), per tensor (spec 6)
  kTL2,        // bitnet.cpp ggml_nbytes TL2 formula (spec 10); needs ne[0] >= 256
  kNotInFile,  // internal-only type (I8_S): never valid in a file
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;
  uint32_t block_size;   // elements per block
  uint32_t block_bytes;  // bytes per block
  SizeRule size_rule;
};

// The table, ordered by id (with gaps).
std::span<const GgmlTypeInfo> ggml_type_table();

// Row for an id, or nullopt for an unknown id.
const GgmlTypeInfo* find_ggml_type(uint32_t id);
const GgmlTypeInfo* find_ggml_type(std::string_view name);  // case-insensitive
std::string_view ggml_type_name(GgmlType type);

// Byte size of a tensor of `type` with dims `ne` (ggml order, unused dims = 1).
// Fails on overflow, on ne[0] not divisible by the block size, or on a type that
// cannot appear in a file. `n_dims` dims of `ne` are used.
Expected<uint64_t> ggml_tensor_nbytes(GgmlType type, std::span<const uint64_t> ne);

// Product of dims with overflow check (nullopt on overflow).
std::optional<uint64_t> checked_element_count(std::span<const uint64_t> ne);

}  // namespace bitnet::gguf
