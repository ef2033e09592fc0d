// The JIT is "compile a plan in memory, then run it": `--backend jit` compiles the model's
// graphs into a plan (plan_compiler.h) and runs it through the same checks and executor as a
// plan file (runtime::install_plan_backend); on any compiler failure it says why and falls
// back to the reference interpreter. With the plan cache, a model compiled before (same key)
// is loaded from its plan instead of compiled again.
#pragma once

#include "bitnet/log.h"
#include "compiler/load_model.h"
#include "compiler/plan_compiler.h"
#include "runtime/model.h"

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace bitnet::compiler {

struct BackendOptions {
  std::string backend = "jit";  // jit | interp
  std::string target = "host";  // host | x86-64-v3 | x86-64-v4
  bool verbose = false;         // report per-kernel compile times (and cache hits) at LogLevel::kInfo
  // Where warnings and -v lines go (one line each, no newline); empty: stderr.
  std::function<void(LogLevel level, std::string_view line)> log;
};

// Installs the backend on `model` (made by load_model): the interpreter, or for jit both graphs
// compiled now into an in-memory plan (nothing is cached). Fails for a target whose code this
// CPU cannot run.
Status attach_backend(runtime::Model& model, const BackendOptions& options);

// Makes `model`'s sessions run `compiled`'s plan with the kernels the JIT holds in memory
// (with options.verbose, reporting the kernels' compile times to options.log).
Status run_compiled_plan(runtime::Model& model, CompiledPlan compiled, const BackendOptions& options);

struct JitModelOptions {
  LoadOptions model;
  BackendOptions backend;
  bool use_cache = true;
  std::string cache_dir;  // empty: runtime::default_cache_dir()
  // How long a process that misses the cache waits for another one compiling the same key
  // (a holder that is stuck, e.g. stopped with ^Z, must not block the others for ever).
  double lock_timeout_s = 600;
};

// `bitnet run -m MODEL` with the JIT: looks the model up in the plan cache and runs the plan on
// a hit; on a miss (or a cache entry it refuses) it compiles both graphs, stores the plan and
// runs the kernels it just compiled. Processes that miss the same key at once compile it once:
// the others wait on the key's lock (runtime::PlanCache::lock_key, saying so on stderr) for
// its plan, at most $BITNET_CACHE_LOCK_TIMEOUT seconds (default 600), then compile it too. A
// cache that cannot be written leaves a warning and an in-memory JIT. Without the cache this
// is load_model + attach_backend. Either way it first refuses (before compiling or caching
// anything) a target whose code this CPU cannot run (check_target_runs_here), and a model
// that does not open with the options given (e.g. a bad --tokenizer) is that error, never a
// reason to recompile.
Expected<std::unique_ptr<runtime::Model>> load_jit_model(const std::string& path, const JitModelOptions& options);

}  // namespace bitnet::compiler
