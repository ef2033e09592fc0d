// The compiler hooks of the `bitnet` CLI (see compiler_backend.h).
#include "tools/compiler_backend.h"

#include "compiler/jit_model.h"
#include "compiler/lm_head.h"
#include "compiler/load_model.h"
#include "passes/pass_manager.h"
#include "reference/locate_nonfinite.h"
#include "tools/run_options.h"

#include <fmt/format.h>

#include <algorithm>

namespace bitnet::tools {
namespace {

Expected<std::unique_ptr<runtime::Model>> load_with_compiler(const CommonRunOptions& o, const PassFlags& flags) {
  const passes::PassOptions passes = to_pass_options(flags);
  if (o.backend == "interp") {
    return compiler::load_model(o.model, {.tokenizer_path = o.tokenizer, .passes = passes});
  }
  // Printing or timing passes needs them to run, which a cached plan skips.
  const bool passes_wanted = flags.any();
  compiler::JitModelOptions jo;
  jo.model = {.tokenizer_path = o.tokenizer, .passes = passes};
  jo.backend = {o.backend, o.target, o.verbose};
  jo.use_cache = !o.no_cache && !passes_wanted;
  jo.lock_timeout_s = o.cache_lock_timeout_s;
  BITNET_ASSIGN_OR_RETURN(jo.model.lm_head, compiler::parse_lm_head(o.lm_head));
  BITNET_ASSIGN_OR_RETURN(auto model, compiler::load_jit_model(o.model, jo));
  if (auto note = compiler::lm_head_note(*model, jo.model.lm_head); !note.empty()) {
    fmt::print(stderr, "bitnet: note: {}\n", note);
  }
  return model;
}

}  // namespace

passes::PassOptions to_pass_options(const PassFlags& flags) {
  passes::PassOptions o;
  o.print_after_all = flags.print_after_all;
  o.print_after = flags.print_after;
  o.time_passes = flags.time_passes;
  o.sink = [](std::string_view text) { fmt::print(stderr, "{}", text); };
  return o;
}

void register_compiler_backend() {
  CompilerHooks hooks;
  hooks.load = load_with_compiler;
  const passes::PassManager pipeline = passes::default_pipeline();
  for (const passes::Pass& p : pipeline.passes()) {
    if (std::find(hooks.pass_names.begin(), hooks.pass_names.end(), p.name) == hooks.pass_names.end()) {
      hooks.pass_names.emplace_back(p.name);
    }
  }
  hooks.on_plan_loaded = reference::install_nonfinite_locator;
  set_compiler_hooks(std::move(hooks));
}

}  // namespace bitnet::tools
