// The one place where numeric command-line values and environment variables are parsed.
// Every numeric option of every command is registered with one of these checks, so a value
// is either the whole text of a number inside the option's range or a usage error (exit 2)
// naming the option and the range. No wrapping (-5 for an unsigned seed), no saturation
// (2^64 and more), no NaN or infinity, no trailing text ("42abc"), the same in every command.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bitnet::tools {

// An integer in [lo, hi], written in decimal with an optional leading '-'.
CLI::Validator integer_in(int64_t lo, int64_t hi);
// A finite real number in the range; `lo_open`/`hi_open` exclude the bound itself.
CLI::Validator real_in(double lo, double hi, bool lo_open = false, bool hi_open = false);
// A comma-separated list of integers, each in [lo, hi] (bench -t 1,2,4).
CLI::Validator integer_list_in(int64_t lo, int64_t hi);
// A seed: any integer in [0, 2^64 - 1], or -1 for "random" (llama.cpp's -s -1).
CLI::Validator seed_value();

// The value of a checked option (the check already ran, so these cannot fail).
int64_t to_integer(const std::string& text);
std::optional<uint64_t> to_seed(const std::string& text);  // nullopt for -1 ("random")

// The largest useful thread count: four per CPU this process may run on. More only queues
// the workers behind each other (1000 threads took 18 s for 4 tokens).
int max_threads();

// A usage error found after parsing (a value that conflicts with the model, or a bad
// environment variable): thrown as CLI11's ValidationError, so it is reported exactly as a bad
// option value is, and exits with 2.
[[noreturn]] void throw_usage_error(const std::string& what, const std::string& message);

// Environment variables, parsed as strictly as options; a bad value is a usage error.
// The variable's text when it is set and passes `check` (nullopt when unset or empty).
std::optional<std::string> checked_env(const char* name, const CLI::Validator& check);
// Boolean variables: 1/0, true/false, yes/no, on/off (any case); nullopt when unset or empty.
std::optional<bool> bool_from_env(const char* name);

// A byte count for people: "1.18 GiB", "512 B".
std::string format_size(uint64_t bytes);

}  // namespace bitnet::tools
