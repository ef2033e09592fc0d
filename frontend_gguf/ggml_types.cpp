// The ggml type table and tensor byte-size rules (see ggml_types.h).
#include "frontend_gguf/ggml_types.h"

#include <algorithm>
#include <cctype>

namespace bitnet::gguf {
namespace {

using enum SizeRule;
constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "F32", 1, 4, kBlocks},
    {GgmlType::F16, "F16", 1, 2, kBlocks},
    {GgmlType::Q4_0, "Q4_0", 32, 18, kBlocks},
    {GgmlType::Q4_1, "Q4_1", 32, 20, kBlocks},
    {GgmlType::Q5_0, "Q5_0", 32, 22, kBlocks},
    {GgmlType::Q5_1, "Q5_1", 32, 24, kBlocks},
    {GgmlType::Q8_0, "Q8_0", 32, 34, kBlocks},
    {GgmlType::Q8_1, "Q8_1", 32, 36, kBlocks},
    {GgmlType::Q2_K, "Q2_K", 256, 84, kBlocks},
    {GgmlType::Q3_K, "Q3_K", 256, 110, kBlocks},
    {GgmlType::Q4_K, "Q4_K", 256, 144, kBlocks},
    {GgmlType::Q5_K, "Q5_K", 256, 176, kBlocks},
    {GgmlType::Q6_K, "Q6_K", 256, 210, kBlocks},
    {GgmlType::Q8_K, "Q8_K", 256, 292, kBlocks},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66, kBlocks},
    {GgmlType::IQ2_XS, "IQ2_XS", 256, 74, kBlocks},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98, kBlocks},
    {GgmlType::IQ1_S, "IQ1_S", 256, 50, kBlocks},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18, kBlocks},
    {GgmlType::IQ3_S, "IQ3_S", 256, 110, kBlocks},
    {GgmlType::IQ2_S, "IQ2_S", 256, 82, kBlocks},
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136, kBlocks},
    {GgmlType::I8, "I8", 1, 1, kBlocks},
    {GgmlType::I16, "I16", 1, 2, kBlocks},
    {GgmlType::I32, "I32", 1, 4, kBlocks},
    {GgmlType::I64, "I64", 1, 8, kBlocks},
    {GgmlType::F64, "F64", 1, 8, kBlocks},
    {GgmlType::IQ1_M, "IQ1_M", 256, 56, kBlocks},
    {GgmlType::BF16, "BF16", 1, 2, kBlocks},
    {GgmlType::Q4_0_4_4, "Q4_0_4_4", 32, 18, kBlocks},
    {GgmlType::Q4_0_4_8, "Q4_0_4_8", 32, 18, kBlocks},
    {GgmlType::Q4_0_8_8, "Q4_0_8_8", 32, 18, kBlocks},
    {GgmlType::TQ1_0, "TQ1_0", 256, 54, kBlocks},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66, kBlocks},
    {GgmlType::I2_S, "I2_S", 1, 1, kI2S},
    {GgmlType::I8_S, "I8_S", 1, 1, kNotInFile},
    {GgmlType::TL1, "TL1", 1, 1, kI2S},  // ggml_nbytes treats TL1 like I2_S
    {GgmlType::TL2, "TL2", 1, 1, kTL2},
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// a * b + c with overflow detection.
std::optional<uint64_t> mul_add(uint64_t a, uint64_t b, uint64_t c = 0) {
  uint64_t product = 0;
  uint64_t sum = 0;
  if (__builtin_mul_overflow(a, b, &product) || __builtin_add_overflow(product, c, &sum)) return std::nullopt;
  return sum;
}

}  // namespace

std::span<const GgmlTypeInfo> ggml_type_table() { return kTypes; }

const GgmlTypeInfo* find_ggml_type(uint32_t id) {
  for (const auto& row : kTypes) {
    if (static_cast<uint32_t>(row.type) == id) return &row;
  }
  return nullptr;
}

const GgmlTypeInfo* find_ggml_type(std::string_view name) {
  for (const auto& row : kTypes) {
    if (iequals(row.name, name)) return &row;
  }
  return nullptr;
}

std::string_view ggml_type_name(GgmlType type) {
  const GgmlTypeInfo* row = find_ggml_type(static_cast<uint32_t>(type));
  return row ? row->name : std::string_view("unknown");
}

std::optional<uint64_t> checked_element_count(std::span<const uint64_t> ne) {
  uint64_t n = 1;
  for (uint64_t d : ne) {
    auto next = mul_add(n, d);
    if (!next) return std::nullopt;
    n = *next;
  }
  return n;
}

Expected<uint64_t> ggml_tensor_nbytes(GgmlType type, std::span<const uint64_t> ne) {
  const GgmlTypeInfo* info = find_ggml_type(static_cast<uint32_t>(type));
  if (info == nullptr) return make_error("unknown ggml type id {}", static_cast<uint32_t>(type));
  if (ne.empty() || ne.size() > static_cast<size_t>(kMaxDims)) {
    return make_error("{} dims (must be 1..{})", ne.size(), kMaxDims);
  }
  auto n = checked_element_count(ne);
  if (!n) return make_error("element count overflows 64 bits");
  // Byte sizes must also fit a signed 64-bit offset, as ggml's int64 arithmetic assumes.
  constexpr uint64_t kMaxBytes = uint64_t{1} << 62;
  switch (info->size_rule) {
    case kBlocks: {
      if (ne[0] % info->block_size != 0) {
        return make_error("ne[0] = {} is not a multiple of the {} block size {}", ne[0], info->name,
                          info->block_size);
      }
      auto bytes = mul_add(*n / info->block_size, info->block_bytes);
      if (!bytes || *bytes > kMaxBytes) return make_error("byte size overflows");
      return *bytes;
    }
    case kI2S: {
      if (*n > kMaxBytes) return make_error("byte size overflows");
      return *n / 4 + 32;
    }
    case kTL2: {
      if (ne.size() > 2 && checked_element_count(ne.subspan(2)).value_or(0) != 1) {
        return make_error("TL2 tensors must be 2-D");
      }
      if (ne[0] < 256) return make_error("TL2 needs ne[0] >= 256, got {}", ne[0]);
      const uint64_t rows = ne.size() > 1 ? ne[1] : 1;
      auto lut_part = mul_add(ne[0] - 256, rows);
      auto tail_part = mul_add(256, rows);
      if (!lut_part || !tail_part || *lut_part > kMaxBytes || *tail_part > kMaxBytes) {
        return make_error("byte size overflows");
      }
      uint64_t bytes = *lut_part / 3 * 5 / 8 + *tail_part / 2 * 4 / 8;
      bytes = (bytes + 31) / 32 * 32;
      return bytes + 32;
    }
    case kNotInFile:
      return make_error("type {} ({}) is an internal activation type and never valid in a file", info->name,
                        static_cast<uint32_t>(type));
  }
  return make_error("unhandled size rule");
}

}  // namespace bitnet::gguf
