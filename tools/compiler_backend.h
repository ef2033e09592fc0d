// `bitnet`'s compiler side of the shared commands: -m MODEL runs with the JIT (through the plan
// cache) or the reference interpreter, --print-after knows the pipeline's passes, and plans
// loaded with --plan get the interpreter's non-finite diagnosis. bitnet-rt links none of it.
#pragma once

#include "passes/pass_manager.h"
#include "tools/run_options.h"

namespace bitnet::tools {

void register_compiler_backend();

// The pass flags as the pass manager takes them, printing to stderr.
passes::PassOptions to_pass_options(const PassFlags& flags);

}  // namespace bitnet::tools
