// What every command of both CLIs (`bitnet` and the compiler-free `bitnet-rt`) shares: the
// version string and the error line format.
#include "tools/commands.h"

#include <fmt/format.h>

#include <cstdio>

namespace bitnet::tools {

std::string version_string() {
  return BITNET_VERSION;
}

void print_error(std::string_view command, std::string_view message) {
  fmt::print(stderr, "bitnet {}: error: {}\n", command, message);
}

}  // namespace bitnet::tools
