// Errors as values: every library function that can fail on bad input returns
// Expected<T> (or Status), never throws and never aborts. Tools turn the error into
// a message and a non-zero exit code.
#pragma once

#include "bitnet/result.h"

#include <fmt/format.h>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace bitnet {

template <class... Args>
[[nodiscard]] Error make_error(fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...)};
}

}  // namespace bitnet

#define BITNET_CONCAT_INNER(a, b) a##b
#define BITNET_CONCAT(a, b) BITNET_CONCAT_INNER(a, b)

// Evaluates an expression returning Status or Expected<T>; returns its error from the caller on failure.
#define BITNET_RETURN_IF_ERROR(expr)                         \
  do {                                                       \
    auto&& bitnet_status_ = (expr);                          \
    if (!bitnet_status_.ok()) return bitnet_status_.error(); \
  } while (0)

// `BITNET_ASSIGN_OR_RETURN(auto x, f());` declares x from f()'s value or returns f()'s error.
#define BITNET_ASSIGN_OR_RETURN(lhs, expr) \
  BITNET_ASSIGN_OR_RETURN_IMPL(BITNET_CONCAT(bitnet_expected_, __LINE__), lhs, expr)
#define BITNET_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.error();                 \
  lhs = std::move(tmp).value()
