// Composition of the backends for the CLI: `--backend jit` compiles the model's graphs with
// codegen_cpu and runs them on the runtime's executor; on any compiler failure it says why
// and falls back to the reference interpreter. The logic lives in the libraries; this only
// wires them together.
#pragma once

#include "runtime/model.h"

#include <memory>
#include <string>

namespace bitnet::tools {

struct BackendOptions {
  std::string backend = "jit";  // jit | interp
  std::string target = "host";  // host | x86-64-v3 | x86-64-v4
  bool verbose = false;         // print per-kernel compile times to stderr
};

// Installs the backend's session factory on `model` (nothing to do for interp).
Status attach_backend(runtime::Model& model, const BackendOptions& options);

}  // namespace bitnet::tools
