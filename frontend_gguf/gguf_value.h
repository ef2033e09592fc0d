// GGUF metadata values: the 13 value types, scalars, strings and (nested) arrays.
// Numeric arrays are stored packed (their little-endian file bytes), so a large
// array costs what it costs in the file, not one variant per element.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace bitnet::gguf {

// Value type ids as stored in the file. The order also matches Value's variant index.
enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
inline constexpr uint32_t kValueTypeCount = 13;

std::string_view value_type_name(ValueType type);
// Bytes of one scalar element in the file; 0 for String and Array.
uint32_t scalar_size(ValueType type);
bool is_integer_type(ValueType type);

// Element type -> C++ type mapping for packed numeric arrays.
template <ValueType> struct ScalarOf;
template <> struct ScalarOf<ValueType::U8> { using type = uint8_t; };
template <> struct ScalarOf<ValueType::I8> { using type = int8_t; };
template <> struct ScalarOf<ValueType::U16> { using type = uint16_t; };
template <> struct ScalarOf<ValueType::I16> { using type = int16_t; };
template <> struct ScalarOf<ValueType::U32> { using type = uint32_t; };
template <> struct ScalarOf<ValueType::I32> { using type = int32_t; };
template <> struct ScalarOf<ValueType::F32> { using type = float; };
template <> struct ScalarOf<ValueType::Bool> { using type = bool; };
template <> struct ScalarOf<ValueType::U64> { using type = uint64_t; };
template <> struct ScalarOf<ValueType::I64> { using type = int64_t; };
template <> struct ScalarOf<ValueType::F64> { using type = double; };

// A homogeneous array. Exactly one of the three stores is used, chosen by elem_type.
struct Array {
  ValueType elem_type = ValueType::U8;
  std::vector<uint8_t> packed;       // numeric and bool elements, little-endian
  std::vector<std::string> strings;  // elem_type == String
  std::vector<Array> arrays;         // elem_type == Array

  uint64_t size() const;

  // Element i of a numeric array as T (T must match elem_type's width; checked by caller).
  template <class T>
  T scalar_at(size_t i) const {
    T out;
    std::memcpy(&out, packed.data() + i * sizeof(T), sizeof(T));
    return out;
  }
  // Element i of any integer/bool array widened to int64 (nullopt if not integral or u64 > INT64_MAX).
  std::optional<int64_t> int_at(size_t i) const;
  // Element i of an F32/F64 array.
  std::optional<double> float_at(size_t i) const;

  template <class T>
  static Array of(const std::vector<T>& values);
  static Array of_strings(std::vector<std::string> values);

  bool operator==(const Array&) const = default;
};

using ValueStorage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                                  std::string, Array, uint64_t, int64_t, double>;

class Value {
 public:
  Value() = default;
  template <class T, class = std::enable_if_t<std::is_constructible_v<ValueStorage, T&&>>>
  Value(T&& v) : storage_(std::forward<T>(v)) {}  // NOLINT: implicit by design
  Value(const char* s) : storage_(std::string(s)) {}  // NOLINT

  ValueType type() const { return static_cast<ValueType>(storage_.index()); }
  const ValueStorage& storage() const { return storage_; }

  // Checked conversions: nullopt when the stored type does not convert losslessly.
  std::optional<uint64_t> as_uint() const;  // any integer type, value >= 0
  std::optional<int64_t> as_int() const;    // any integer type, value <= INT64_MAX
  std::optional<double> as_float() const;   // F32 or F64 (integers are not floats)
  std::optional<bool> as_bool() const;
  const std::string* as_string() const;
  const Array* as_array() const;

  // Human-readable rendering, arrays abbreviated to `max_items` items.
  std::string to_display(size_t max_items = 8) const;

  bool operator==(const Value&) const = default;

 private:
  ValueStorage storage_;
};

template <class T>
Array Array::of(const std::vector<T>& values) {
  Array a;
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, uint8_t>) a.elem_type = ValueType::U8;
  else if constexpr (std::is_same_v<U, int8_t>) a.elem_type = ValueType::I8;
  else if constexpr (std::is_same_v<U, uint16_t>) a.elem_type = ValueType::U16;
  else if constexpr (std::is_same_v<U, int16_t>) a.elem_type = ValueType::I16;
  else if constexpr (std::is_same_v<U, uint32_t>) a.elem_type = ValueType::U32;
  else if constexpr (std::is_same_v<U, int32_t>) a.elem_type = ValueType::I32;
  else if constexpr (std::is_same_v<U, float>) a.elem_type = ValueType::F32;
  else if constexpr (std::is_same_v<U, bool>) a.elem_type = ValueType::Bool;
  else if constexpr (std::is_same_v<U, uint64_t>) a.elem_type = ValueType::U64;
  else if constexpr (std::is_same_v<U, int64_t>) a.elem_type = ValueType::I64;
  else if constexpr (std::is_same_v<U, double>) a.elem_type = ValueType::F64;
  else static_assert(sizeof(U) == 0, "unsupported array element type");
  a.packed.resize(values.size() * sizeof(U));
  for (size_t i = 0; i < values.size(); ++i) {
    U v = values[i];
    std::memcpy(a.packed.data() + i * sizeof(U), &v, sizeof(U));
  }
  return a;
}

}  // namespace bitnet::gguf
