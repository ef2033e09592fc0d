// `bitnet dump-ir -m MODEL [--stage lowered|optimized] [--all-logits]`: prints the IR of
// a model's forward graph in its stable textual form.
#include "frontend_gguf/lowering.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/pass_manager.h"
#include "tools/commands.h"
#include "tools/option_values.h"
#include "tools/pass_options.h"
#include "tools/run_options.h"

#include <fmt/format.h>

#include <memory>

namespace bitnet::tools {

void add_dump_ir(CLI::App& app, int& exit_code) {
  struct Options {
    std::string model;
    std::string stage = "lowered";
    bool all_logits = false;
    PassFlags passes;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("dump-ir", "Print the IR of a model's forward graph");
  cmd->add_option("-m,--model", o->model, "GGUF model (default: $BITNET_GGUF)")->envname("BITNET_GGUF")->required();
  cmd->add_option("--stage", o->stage, "lowered (straight from the GGUF) or optimized (after the passes)")
      ->check(CLI::IsMember({"lowered", "optimized"}))
      ->capture_default_str();
  cmd->add_flag("--all-logits", o->all_logits, "logits for every token (as eval uses) instead of the last one");
  add_pass_options(*cmd, o->passes);
  cmd->callback([o, &exit_code] {
    if (o->stage == "lowered" && o->passes.any()) {
      throw_usage_error("--stage",
                        "--print-after-all, --print-after and --time-passes need --stage optimized "
                        "(the lowered graph runs no passes)");
    }
    auto file = gguf::GgufFile::open(o->model);
    if (!file.ok()) {
      print_error("dump-ir", file.error().message);
      exit_code = kExitFailure;
      return;
    }
    auto graph = gguf::lower_to_ir(*file, {.all_logits = o->all_logits});
    if (!graph.ok()) {
      print_error("dump-ir", graph.error().message);
      exit_code = kExitFailure;
      return;
    }
    if (o->stage == "optimized") {
      auto status = passes::default_pipeline().run(*graph, to_pass_options(o->passes));
      if (!status.ok()) {
        print_error("dump-ir", status.error().message);
        exit_code = kExitFailure;
        return;
      }
    }
    auto verified = ir::verify(*graph);
    if (!verified.ok()) {
      print_error("dump-ir", fmt::format("internal error: the graph does not verify: {}", verified.error().message));
      exit_code = kExitFailure;
      return;
    }
    fmt::print("{}", ir::print(*graph));
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools
