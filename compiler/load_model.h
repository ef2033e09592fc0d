// Loading a model to compile or interpret: the GGUF opened by the runtime, lowered to IR (both
// graphs: last-token and all logits), the LM head retargeted when asked, and the pass pipeline
// run. The model's sessions are the reference interpreter's until a backend replaces them
// (jit_model.h); its non-finite logits are explained with the interpreter.
#pragma once

#include "ir/dtype.h"
#include "passes/pass_manager.h"
#include "runtime/model.h"

#include <memory>
#include <string>

namespace bitnet::compiler {

struct LoadOptions {
  std::string tokenizer_path;  // a tokenizer.json or GGUF to use instead of the model's own
  bool optimize = true;        // run the IR pass pipeline (results are identical either way)
  passes::PassOptions passes;  // printing and timing of the pipeline (both graphs go through it)
  // q8_0 | q6_k: the logits matmul reads a requantized copy of an F16 head (passes/lm_head.h),
  // whose bytes the JIT or a plan's sidecar supplies (the interpreter has none). F16: the file's.
  ir::DType lm_head = ir::DType::F16;
};

Expected<std::unique_ptr<runtime::Model>> load_model(const std::string& path, const LoadOptions& options = {});

// Makes `model`'s sessions reference interpreters of its graphs.
void use_interpreter(runtime::Model& model);

}  // namespace bitnet::compiler
