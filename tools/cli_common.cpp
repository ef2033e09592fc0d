// What every command of both CLIs (`bitnet` and the compiler-free `bitnet-rt`) shares: the
// version string, the command-line driver and the error line format.
#include "tools/commands.h"

#include <fmt/format.h>

#include <cstdio>
#include <exception>

namespace bitnet::tools {

std::string version_string() {
  return BITNET_VERSION;
}

int parse_and_run(CLI::App& app, int argc, char** argv, const int& exit_code, std::string_view program) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: internal error: {}\n", program, e.what());
    return kExitFailure;
  }
  return exit_code;
}

void print_error(std::string_view command, std::string_view message) {
  fmt::print(stderr, "bitnet {}: error: {}\n", command, message);
}

}  // namespace bitnet::tools
