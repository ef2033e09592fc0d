// Errors as values: every library function that can fail on bad input returns
// Expected<T> (or Status), never throws and never aborts. Tools turn the error into
// a message and a non-zero exit code.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace bitnet {

struct Error {
  std::string message;
};

template <class... Args>
[[nodiscard]] Error make_error(fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...)};
}

// A value or an error. Deliberately small: ok(), value(), error(), * and ->.
template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Expected(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const Error& error() const { return std::get<1>(state_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> state_;
};

// Success or an error, for functions with no result value.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design
  static Status success() { return Status(); }

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

}  // namespace bitnet

#define BITNET_CONCAT_INNER(a, b) a##b
#define BITNET_CONCAT(a, b) BITNET_CONCAT_INNER(a, b)

// Evaluates an expression returning Status or Expected<T>; returns its error from the caller on failure.
#define BITNET_RETURN_IF_ERROR(expr)                          \
  do {                                                        \
    auto&& bitnet_status_ = (expr);                           \
    if (!bitnet_status_.ok()) return bitnet_status_.error();  \
  } while (0)

// `BITNET_ASSIGN_OR_RETURN(auto x, f());` declares x from f()'s value or returns f()'s error.
#define BITNET_ASSIGN_OR_RETURN(lhs, expr) \
  BITNET_ASSIGN_OR_RETURN_IMPL(BITNET_CONCAT(bitnet_expected_, __LINE__), lhs, expr)
#define BITNET_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.error();                 \
  lhs = std::move(tmp).value()
