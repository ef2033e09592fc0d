// The pass flags (--print-after-all, --print-after, --time-passes) as the pass manager takes
// them, printing to stderr: for `bitnet compile` and `dump-ir`, which drive the compiler
// directly. run, chat, eval and bench pass them to the library (ModelParams::diagnostics).
#pragma once

#include "passes/pass_manager.h"
#include "tools/run_options.h"

namespace bitnet::tools {

passes::PassOptions to_pass_options(const PassFlags& flags);

}  // namespace bitnet::tools
