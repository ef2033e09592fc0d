// GGUF metadata value helpers (see gguf_value.h).
#include "frontend_gguf/gguf_value.h"

#include <fmt/format.h>

#include <limits>

namespace bitnet::gguf {

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::U8: return "u8";
    case ValueType::I8: return "i8";
    case ValueType::U16: return "u16";
    case ValueType::I16: return "i16";
    case ValueType::U32: return "u32";
    case ValueType::I32: return "i32";
    case ValueType::F32: return "f32";
    case ValueType::Bool: return "bool";
    case ValueType::String: return "string";
    case ValueType::Array: return "array";
    case ValueType::U64: return "u64";
    case ValueType::I64: return "i64";
    case ValueType::F64: return "f64";
  }
  return "invalid";
}

uint32_t scalar_size(ValueType type) {
  switch (type) {
    case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    case ValueType::String: case ValueType::Array: return 0;
  }
  return 0;
}

bool is_integer_type(ValueType type) {
  switch (type) {
    case ValueType::U8: case ValueType::I8: case ValueType::U16: case ValueType::I16:
    case ValueType::U32: case ValueType::I32: case ValueType::U64: case ValueType::I64: return true;
    default: return false;
  }
}

uint64_t Array::size() const {
  if (elem_type == ValueType::String) return strings.size();
  if (elem_type == ValueType::Array) return arrays.size();
  const uint32_t width = scalar_size(elem_type);
  return width == 0 ? 0 : packed.size() / width;
}

std::optional<int64_t> Array::int_at(size_t i) const {
  if (i >= size()) return std::nullopt;
  switch (elem_type) {
    case ValueType::U8: return scalar_at<uint8_t>(i);
    case ValueType::I8: return scalar_at<int8_t>(i);
    case ValueType::U16: return scalar_at<uint16_t>(i);
    case ValueType::I16: return scalar_at<int16_t>(i);
    case ValueType::U32: return scalar_at<uint32_t>(i);
    case ValueType::I32: return scalar_at<int32_t>(i);
    case ValueType::I64: return scalar_at<int64_t>(i);
    case ValueType::Bool: return scalar_at<uint8_t>(i);
    case ValueType::U64: {
      const auto v = scalar_at<uint64_t>(i);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(v);
    }
    default: return std::nullopt;
  }
}

std::optional<double> Array::float_at(size_t i) const {
  if (i >= size()) return std::nullopt;
  if (elem_type == ValueType::F32) return scalar_at<float>(i);
  if (elem_type == ValueType::F64) return scalar_at<double>(i);
  return std::nullopt;
}

Array Array::of_strings(std::vector<std::string> values) {
  Array a;
  a.elem_type = ValueType::String;
  a.strings = std::move(values);
  return a;
}

std::optional<uint64_t> Value::as_uint() const {
  return std::visit(
      [](const auto& v) -> std::optional<uint64_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_signed_v<T>) {
            if (v < 0) return std::nullopt;
          }
          return static_cast<uint64_t>(v);
        } else {
          return std::nullopt;
        }
      },
      storage_);
}

std::optional<int64_t> Value::as_int() const {
  return std::visit(
      [](const auto& v) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, uint64_t>) {
          if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
          return static_cast<int64_t>(v);
        } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          return static_cast<int64_t>(v);
        } else {
          return std::nullopt;
        }
      },
      storage_);
}

std::optional<double> Value::as_float() const {
  if (const auto* f = std::get_if<float>(&storage_)) return *f;
  if (const auto* d = std::get_if<double>(&storage_)) return *d;
  return std::nullopt;
}

std::optional<bool> Value::as_bool() const {
  if (const auto* b = std::get_if<bool>(&storage_)) return *b;
  return std::nullopt;
}

const std::string* Value::as_string() const { return std::get_if<std::string>(&storage_); }
const Array* Value::as_array() const { return std::get_if<Array>(&storage_); }

namespace {

std::string quote(std::string_view s, size_t max_chars = 80) {
  std::string out = "\"";
  size_t n = 0;
  for (unsigned char c : s) {
    if (n++ >= max_chars) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string array_display(const Array& a, size_t max_items) {
  std::string out = "[";
  const uint64_t n = a.size();
  for (uint64_t i = 0; i < n && i < max_items; ++i) {
    if (i) out += ", ";
    if (a.elem_type == ValueType::String) {
      out += quote(a.strings[i], 40);
    } else if (a.elem_type == ValueType::Array) {
      out += array_display(a.arrays[i], max_items);
    } else if (a.elem_type == ValueType::Bool) {
      out += a.scalar_at<uint8_t>(i) ? "true" : "false";
    } else if (auto f = a.float_at(i)) {
      out += fmt::format("{}", *f);
    } else if (a.elem_type == ValueType::U64) {
      out += fmt::format("{}", a.scalar_at<uint64_t>(i));
    } else if (auto v = a.int_at(i)) {
      out += fmt::format("{}", *v);
    }
  }
  if (n > max_items) out += fmt::format(", ... ({} {} items)", n, value_type_name(a.elem_type));
  return out + "]";
}

}  // namespace

std::string Value::to_display(size_t max_items) const {
  return std::visit(
      [&](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return quote(v);
        } else if constexpr (std::is_same_v<T, Array>) {
          return array_display(v, max_items);
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          return fmt::format("{}", static_cast<int>(v));
        } else {
          return fmt::format("{}", v);
        }
      },
      storage_);
}

}  // namespace bitnet::gguf
