// Entry point of the `bitnet` CLI: registers the subcommands and maps failures to
// the documented exit codes. Nothing here may crash on bad input.
#include "tools/commands.h"

int main(int argc, char** argv) {
  using namespace bitnet::tools;
  CLI::App app{"bitnet: compiler and runtime for BitNet b1.58 and llama-family GGUF models"};
  app.set_version_flag("--version", [] { return version_report(); });
  app.require_subcommand(1);
  int exit_code = kExitOk;
  add_inspect(app, exit_code);
  add_compat_check(app, exit_code);
  add_compat_fix(app, exit_code);
  add_tokenize(app, exit_code);
  add_dump_ir(app, exit_code);
  add_gen_model(app, exit_code);
  add_convert(app, exit_code);
  add_run(app, exit_code);
  add_chat(app, exit_code);
  add_serve(app, exit_code);
  add_eval(app, exit_code);
  add_bench(app, exit_code);
  add_compile(app, exit_code);
  add_dump_plan(app, exit_code);
  add_cache(app, exit_code);
  add_download(app, exit_code);
  return parse_and_run(app, argc, argv, exit_code, "bitnet");
}
