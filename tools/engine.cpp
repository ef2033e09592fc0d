// Backend wiring (see engine.h).
#include "tools/engine.h"

#include "codegen_cpu/jit.h"
#include "runtime/executor.h"
#include "runtime/interpreter.h"

#include <fmt/format.h>

#include <map>
#include <mutex>

namespace bitnet::tools {
namespace {

// The JIT and the kernels it compiled for each graph, shared by every session of a model.
struct JitState {
  std::unique_ptr<codegen::Jit> jit;
  std::mutex mutex;
  std::map<const ir::Graph*, codegen::CompiledGraph> compiled;
  bool verbose = false;
};

}  // namespace

Status attach_backend(runtime::Model& model, const BackendOptions& options) {
  if (options.backend == "interp") return Status::success();
  if (options.backend != "jit") return make_error("unknown backend '{}' (use jit or interp)", options.backend);
  auto state = std::make_shared<JitState>();
  state->verbose = options.verbose;
  auto jit = codegen::Jit::create({.target = options.target});
  if (!jit.ok()) {
    fmt::print(stderr, "bitnet: warning: the JIT is unavailable ({}); using the interpreter\n", jit.error().message);
    return Status::success();
  }
  state->jit = std::move(*jit);
  model.set_session_factory([state](const ir::Graph& graph, const gguf::GgufFile& file, int64_t n_ctx,
                                    int threads) -> Expected<std::unique_ptr<runtime::Session>> {
    auto fallback = [&](const std::string& why) -> Expected<std::unique_ptr<runtime::Session>> {
      fmt::print(stderr, "bitnet: warning: JIT compilation failed ({}); using the interpreter\n", why);
      BITNET_ASSIGN_OR_RETURN(auto interp, runtime::Interpreter::create(graph, file, {n_ctx, threads}));
      return std::unique_ptr<runtime::Session>(std::move(interp));
    };
    std::lock_guard<std::mutex> lock(state->mutex);
    auto it = state->compiled.find(&graph);
    if (it == state->compiled.end()) {
      auto compiled = state->jit->compile(graph);
      if (!compiled.ok()) return fallback(compiled.error().message);
      if (state->verbose) {
        fmt::print(stderr, "jit: {} kernels in {:.1f} ms\n", compiled->kernels.size(), compiled->compile_ms);
        for (size_t k = 0; k < compiled->kernels.size(); ++k) {
          fmt::print(stderr, "  {:8.2f} ms  {}\n", compiled->kernel_ms[k], compiled->kernels[k].key);
        }
      }
      it = state->compiled.emplace(&graph, std::move(*compiled)).first;
    }
    std::vector<codegen::KernelFn> kernels(graph.nodes().size(), nullptr);
    for (size_t i = 0; i < kernels.size(); ++i) {
      if (it->second.kernel_of_node[i] >= 0) kernels[i] = it->second.kernels[static_cast<size_t>(it->second.kernel_of_node[i])].fn;
    }
    runtime::ExecutorOptions eo;
    eo.n_ctx = n_ctx;
    eo.threads = threads;
    eo.scratch_bytes_per_thread = 64 * 1024 + n_ctx * 16;
    BITNET_ASSIGN_OR_RETURN(auto exec, runtime::Executor::create(graph, file, std::move(kernels), eo));
    return std::unique_ptr<runtime::Session>(std::move(exec));
  });
  return Status::success();
}

}  // namespace bitnet::tools
