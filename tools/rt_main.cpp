// Entry point of `bitnet-rt`, the runtime without a compiler: run, eval, bench and serve a plan
// made by `bitnet compile` (--plan PLAN; the same options as `bitnet`). It contains no passes, code
// generators, compiler, reference interpreter, LLVM, lld or NVRTC (tests read its ELF NEEDED
// entries and its symbols), so it starts fast and deploys small.
#include "tools/commands.h"

int main(int argc, char** argv) {
  using namespace bitnet::tools;
  CLI::App app{"bitnet-rt: runs compiled BitNet/llama plans (bitnet compile) without a compiler"};
  app.set_version_flag("--version", [] { return version_report(); });
  app.require_subcommand(1);
  int exit_code = kExitOk;
  add_run(app, exit_code);
  add_chat(app, exit_code);
  add_serve(app, exit_code);
  add_eval(app, exit_code);
  add_bench(app, exit_code);
  add_dump_plan(app, exit_code);
  return parse_and_run(app, argc, argv, exit_code, "bitnet-rt");
}
