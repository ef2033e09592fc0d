// Type printing (see type.h).
#include "ir/type.h"

#include "schema/abi.h"

#include <fmt/format.h>

#include <algorithm>

namespace bitnet::ir {

std::string to_string(const Dim& dim) {
  return dim.is_tokens() ? "T" : dim.is_selected() ? "R" : fmt::format("{}", dim.size);
}

std::string to_string(const Type& type) {
  std::string s = fmt::format("{}[", dtype_name(type.dtype));
  for (size_t i = 0; i < type.shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", to_string(type.shape[i]));
  return s + "]";
}

int64_t activation_bytes(const Type& type, int64_t n_tokens) {
  const DTypeInfo& info = dtype_info(type.dtype);
  if (info.kind == DTypeKind::kQuantizedWeight) return -1;
  int64_t rows = 1;  // the leading dim (T, or R after select_rows)
  int64_t row_elems = 1;
  for (size_t i = 0; i < type.shape.size(); ++i) {
    const Dim& dim = type.shape[i];
    const int64_t d = dim.is_tokens()     ? n_tokens
                      : dim.is_selected() ? std::min(n_tokens, abi::kMaxOutputRows)
                                          : dim.size;
    (i == 0 ? rows : row_elems) *= d;
  }
  if (type.dtype == DType::I8Q) return abi::i8q_bytes(rows, row_elems);
  return rows * row_elems * info.block_bytes;
}

}  // namespace bitnet::ir
