// Type printing (see type.h).
#include "ir/type.h"

#include <fmt/format.h>

namespace bitnet::ir {

std::string to_string(const Dim& dim) {
  return dim.is_tokens() ? "T" : fmt::format("{}", dim.size);
}

std::string to_string(const Type& type) {
  std::string s = fmt::format("{}[", dtype_name(type.dtype));
  for (size_t i = 0; i < type.shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", to_string(type.shape[i]));
  return s + "]";
}

}  // namespace bitnet::ir
