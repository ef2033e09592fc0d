// Entry point of the `bitnet` CLI: registers the subcommands and maps failures to
// the documented exit codes. Nothing here may crash on bad input.
#include "tools/commands.h"

#include <fmt/format.h>

#include <cstdio>
#include <exception>

namespace bitnet::tools {

std::string version_string() { return BITNET_VERSION; }

void print_error(std::string_view command, std::string_view message) {
  fmt::print(stderr, "bitnet {}: error: {}\n", command, message);
}

}  // namespace bitnet::tools

int main(int argc, char** argv) {
  using namespace bitnet::tools;
  CLI::App app{"bitnet: compiler and runtime for BitNet b1.58 and llama-family GGUF models"};
  app.set_version_flag("--version", version_string());
  app.require_subcommand(1);
  int exit_code = kExitOk;
  add_inspect(app, exit_code);
  add_compat_check(app, exit_code);
  add_compat_fix(app, exit_code);
  add_tokenize(app, exit_code);
  add_dump_ir(app, exit_code);
  add_gen_model(app, exit_code);
  add_run(app, exit_code);
  add_eval(app, exit_code);
  add_bench(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "bitnet: internal error: {}\n", e.what());
    return kExitFailure;
  }
  return exit_code;
}
