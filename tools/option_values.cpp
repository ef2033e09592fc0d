// Strict option and environment values (see option_values.h).
#include "tools/option_values.h"

#include <fmt/format.h>

#include <sched.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <thread>

namespace bitnet::tools {
namespace {

// The whole of `text` as an integer; nullopt for anything else (empty, spaces, '+', trailing
// text, out of int64's range).
std::optional<int64_t> parse_integer(std::string_view text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// A bound for messages: integers without a fraction, "inf" for infinity.
std::string bound_text(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);
}

std::string integer_range_text(int64_t lo, int64_t hi) {
  if (hi == std::numeric_limits<int64_t>::max()) return fmt::format("an integer >= {}", lo);
  return fmt::format("an integer in [{}, {}]", lo, hi);
}

std::string check_integer(std::string_view text, int64_t lo, int64_t hi) {
  const auto value = parse_integer(text);
  if (!value || *value < lo || *value > hi) {
    return fmt::format("'{}' is not valid: expected {}", text, integer_range_text(lo, hi));
  }
  return {};
}

}  // namespace

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  return CLI::Validator([lo, hi](std::string& text) { return check_integer(text, lo, hi); }, integer_range_text(lo, hi),
                        "integer_in");
}

CLI::Validator real_in(double lo, double hi, bool lo_open, bool hi_open) {
  const std::string range = fmt::format("a finite number in {}{}, {}{}", lo_open ? '(' : '[', bound_text(lo),
                                        bound_text(hi), hi_open ? ')' : ']');
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        // from_chars accepts "nan" and "inf": both are refused below with everything non-finite.
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        const bool parsed = !text.empty() && ec == std::errc() && end == text.data() + text.size();
        const bool inside = parsed && std::isfinite(value) && (lo_open ? value > lo : value >= lo) &&
                            (hi_open ? value < hi : value <= hi);
        if (!inside) return fmt::format("'{}' is not valid: expected {}", text, range);
        return {};
      },
      range, "real_in");
}

CLI::Validator integer_list_in(int64_t lo, int64_t hi) {
  const std::string range = "comma-separated integers, each " + integer_range_text(lo, hi).substr(3);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        size_t start = 0;
        while (true) {
          const size_t comma = std::min(text.find(',', start), text.size());
          const std::string_view item(text.data() + start, comma - start);
          if (!check_integer(item, lo, hi).empty()) {
            return fmt::format("'{}' is not valid (item '{}'): expected {}", text, item, range);
          }
          if (comma == text.size()) return {};
          start = comma + 1;
        }
      },
      range, "integer_list_in");
}

CLI::Validator seed_value() {
  const std::string range = "an integer in [0, 18446744073709551615], or -1 for a random seed";
  return CLI::Validator(
      [range](std::string& text) -> std::string {
        if (text == "-1") return {};
        uint64_t value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
          return fmt::format("'{}' is not valid: expected {}", text, range);
        }
        return {};
      },
      range, "seed");
}

int64_t to_integer(const std::string& text) {
  return parse_integer(text).value_or(0);
}

std::optional<uint64_t> to_seed(const std::string& text) {
  if (text == "-1") return std::nullopt;
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

int max_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int cpus = 0;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return 4 * cpus;
}

void throw_usage_error(const std::string& what, const std::string& message) {
  throw CLI::ValidationError(what, message);
}

std::optional<std::string> checked_env(const char* name, const CLI::Validator& check) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  std::string text = value;
  if (std::string error = check(text); !error.empty()) throw_usage_error(name, error);
  return text;
}

std::optional<bool> bool_from_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  std::string text = value;
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  throw_usage_error(name, fmt::format("'{}' is not valid: expected 1/0, true/false, yes/no or on/off", value));
}

std::string format_size(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, units[u]);
}

}  // namespace bitnet::tools
