// Errors as values: every fallible call of the library returns an Expected<T> (also named
// Result<T>) or a Status; the library never throws for bad input, never exits, aborts or
// prints (see log.h for its messages). The engine's modules use the same types.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace bitnet {

// What kind of failure an Error is, where a caller may act on it (llama_decode's return codes).
enum class ErrorKind {
  kInvalid,      // bad input or state: fix the call
  kContextFull,  // a sequence has no room for the batch: free cells (seq_rm) or use a larger context
};

struct Error {
  std::string message;
  ErrorKind kind = ErrorKind::kInvalid;
};

// A value or an error. Deliberately small: ok(), value(), error(), * and ->.
template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit by design
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

template <class T>
using Result = Expected<T>;

}  // namespace bitnet
