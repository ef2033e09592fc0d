// Element types of IR values, as one table: float and integer activations, and every
// weight format the frontend can lower (quantized types are stored in their GGUF block
// layout and only ever read by matmul/embed).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace bitnet::ir {

#define BITNET_IR_DTYPES(X)                                                                         \
  /*  id     name     block  bytes  kind  ggml type id (-1: not a GGUF tensor type)  row decoder */ \
  X(F32, "f32", 1, 4, kFloat, 0, f32_to_float)                                                      \
  X(F16, "f16", 1, 2, kFloat, 1, f16_to_float)                                                      \
  X(BF16, "bf16", 1, 2, kFloat, 30, bf16_to_float)                                                  \
  X(I32, "i32", 1, 4, kInteger, 26, nullptr)                                                        \
  X(I8, "i8", 1, 1, kInteger, 24, nullptr)                                                          \
  /* int8 activations quantized per row (token) with an absmax scale and a row sum */               \
  X(I8Q, "i8q", 1, 1, kQuantizedActivation, -1, nullptr)                                            \
  X(Q8_0, "q8_0", 32, 34, kQuantizedWeight, 8, q8_0_to_float)                                       \
  X(Q4_0, "q4_0", 32, 18, kQuantizedWeight, 2, q4_0_to_float)                                       \
  X(Q6_K, "q6_k", 256, 210, kQuantizedWeight, 14, q6_k_to_float)                                    \
  X(TQ1_0, "tq1_0", 256, 54, kQuantizedWeight, 34, tq1_0_to_float)                                  \
  X(TQ2_0, "tq2_0", 256, 66, kQuantizedWeight, 35, tq2_0_to_float)                                  \
  /* 2-bit ternary, x86 packing, one f32 scale per tensor (spec 6); decoded unscaled (-1, 0, +1) */ \
  X(I2_S, "i2_s", 128, 32, kQuantizedWeight, 36, i2_s_to_float)

enum class DType : uint8_t {
#define BITNET_DTYPE_ENUM(id, name, block, bytes, kind, ggml, decoder) id,
  BITNET_IR_DTYPES(BITNET_DTYPE_ENUM)
#undef BITNET_DTYPE_ENUM
};

enum class DTypeKind : uint8_t { kFloat, kInteger, kQuantizedActivation, kQuantizedWeight };

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  uint32_t block_size;   // elements per block
  uint32_t block_bytes;  // bytes per block (I2_S: plus a 32-byte per-tensor trailer)
  DTypeKind kind;
  int32_t ggml_type;  // the GGUF/ggml type id of tensors of this type; -1 for activation-only types
  // Decodes one row of `cols` elements (a whole number of blocks) starting at `row` into
  // floats, exactly as the reference computes each value (dtype_decode.cpp); nullptr for types
  // that are not weights. I2_S rows decode to -1, 0, +1: the caller applies the tensor's scale.
  void (*to_float)(const uint8_t* row, int64_t cols, float* out);
};

const DTypeInfo& dtype_info(DType dtype);
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);
// The dtype of GGUF tensors of ggml type id `ggml_type` (nullopt: no IR type has it). The one
// map between the two type systems: frontend_gguf (lowering), the interpreter and tests use it.
std::optional<DType> dtype_from_ggml(uint32_t ggml_type);
// Bytes of one row of `cols` elements (cols a multiple of the block size).
inline int64_t dtype_row_bytes(DType dtype, int64_t cols) {
  const DTypeInfo& info = dtype_info(dtype);
  return cols / info.block_size * info.block_bytes;
}
// Types a weight (a GGUF tensor operand of matmul/embed) may have.
bool is_weight_dtype(DType dtype);

}  // namespace bitnet::ir
