// The dtype table (see dtype.h).
#include "ir/dtype.h"

namespace bitnet::ir {
namespace decoders {  // dtype_decode.cpp
void f32_to_float(const uint8_t* row, int64_t cols, float* out);
void f16_to_float(const uint8_t* row, int64_t cols, float* out);
void bf16_to_float(const uint8_t* row, int64_t cols, float* out);
void q8_0_to_float(const uint8_t* row, int64_t cols, float* out);
void q4_0_to_float(const uint8_t* row, int64_t cols, float* out);
void q6_k_to_float(const uint8_t* row, int64_t cols, float* out);
void tq1_0_to_float(const uint8_t* row, int64_t cols, float* out);
void tq2_0_to_float(const uint8_t* row, int64_t cols, float* out);
void i2_s_to_float(const uint8_t* row, int64_t cols, float* out);
}  // namespace decoders
namespace {
using namespace decoders;

constexpr DTypeInfo kDTypes[] = {
#define BITNET_DTYPE_ROW(id, name, block, bytes, kind, ggml, decoder) \
  {DType::id, name, block, bytes, DTypeKind::kind, ggml, decoder},
    BITNET_IR_DTYPES(BITNET_DTYPE_ROW)
#undef BITNET_DTYPE_ROW
};

}  // namespace

const DTypeInfo& dtype_info(DType dtype) {
  return kDTypes[static_cast<size_t>(dtype)];
}
std::string_view dtype_name(DType dtype) {
  return dtype_info(dtype).name;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& row : kDTypes) {
    if (row.name == name) return row.dtype;
  }
  return std::nullopt;
}

std::optional<DType> dtype_from_ggml(uint32_t ggml_type) {
  for (const auto& row : kDTypes) {
    if (row.ggml_type >= 0 && static_cast<uint32_t>(row.ggml_type) == ggml_type) return row.dtype;
  }
  return std::nullopt;
}

bool is_weight_dtype(DType dtype) {
  const DTypeKind kind = dtype_info(dtype).kind;
  return kind == DTypeKind::kQuantizedWeight || kind == DTypeKind::kFloat;
}

}  // namespace bitnet::ir
