// The full library's loader (see model_loader.h): GGUF models through the compiler.
#include "api/log_sink.h"
#include "api/model_loader.h"
#include "compiler/cuda_model.h"
#include "compiler/jit_model.h"
#include "compiler/lm_head.h"
#include "compiler/load_model.h"
#include "passes/pass_manager.h"
#include "reference/locate_nonfinite.h"
#include "runtime/plan_cache.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace bitnet::api {

namespace {

// --backend cuda, and auto's first choice: the model's decode step on the GPU. The model is
// lowered as for the interpreter (its graphs describe it; the CUDA sessions run the decode
// program codegen_cuda plans).
Expected<std::unique_ptr<runtime::Model>> load_cuda_model(const std::string& path, const ModelParams& params,
                                                          const compiler::LoadOptions& load) {
  if (params.lm_head != "f16") {
    return make_error("lm_head {} is not available on the CUDA backend (it runs the F16 head)", params.lm_head);
  }
  BITNET_ASSIGN_OR_RETURN(auto model, compiler::load_model(path, load));
  if (params.cuda_gemm != "dp4a" && params.cuda_gemm != "mma") {
    return make_error("unknown cuda_gemm '{}' (dp4a or mma)", params.cuda_gemm);
  }
  compiler::CudaBackendOptions options;
  options.verbose = params.verbose;
  options.mma_gemm = params.cuda_gemm == "mma";
  // The kernels NVRTC compiles are kept in the plan cache unless it is off or unusable (then
  // they are compiled at every start, as the warning says).
  if (params.use_cache) {
    auto dir = params.cache_dir.empty() ? runtime::default_cache_dir() : Expected<std::string>(params.cache_dir);
    if (dir.ok()) {
      options.cache_dir = *dir;
    } else {
      log(LogLevel::kWarning,
          fmt::format("bitnet: warning: {}; compiling the CUDA kernels without it", dir.error().message));
    }
  }
  options.log = [](LogLevel level, std::string_view line) { log(level, line); };
  BITNET_RETURN_IF_ERROR(compiler::attach_cuda_backend(*model, std::move(options)));
  return model;
}

}  // namespace

Expected<std::unique_ptr<runtime::Model>> load_gguf_model(const std::string& path, const ModelParams& params) {
  if (params.backend != "jit" && params.backend != "interp" && params.backend != "cuda" && params.backend != "auto") {
    return make_error("unknown backend '{}' (jit, interp, cuda or auto)", params.backend);
  }
  // A misspelt pass name would print nothing and look like a pass that did nothing.
  const std::vector<std::string> known = pass_names();
  for (const std::string& name : params.diagnostics.print_after) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return make_error("no pass named '{}' (passes: {})", name, fmt::join(known, ", "));
    }
  }
  passes::PassOptions passes;
  passes.print_after_all = params.diagnostics.print_after_all;
  passes.print_after = params.diagnostics.print_after;
  passes.time_passes = params.diagnostics.time_passes;
  passes.sink = [](std::string_view text) { log(LogLevel::kInfo, text); };
  compiler::LoadOptions load;
  load.tokenizer_path = params.tokenizer_path;
  load.passes = passes;
  BITNET_ASSIGN_OR_RETURN(load.lm_head, compiler::parse_lm_head(params.lm_head));
  if (params.backend == "cuda") return load_cuda_model(path, params, load);
  if (params.backend == "auto") {
    // CUDA where a device and a model it runs are there; else the CPU's JIT, with one line saying why.
    auto cuda = load_cuda_model(path, params, load);
    if (cuda.ok()) return cuda;
    log(LogLevel::kInfo, fmt::format("bitnet: note: running on the CPU: {}", cuda.error().message));
  }
  if (params.backend == "interp") {
    if (params.lm_head != "f16") {
      return make_error("lm_head {} needs the jit backend: the interpreter reads only the model file's tensors",
                        params.lm_head);
    }
    return compiler::load_model(path, load);  // with the non-finite diagnosis
  }
  compiler::JitModelOptions options;
  options.model = load;
  options.backend.backend = "jit";
  options.backend.target = params.target;
  options.backend.verbose = params.verbose;
  options.backend.log = [](LogLevel level, std::string_view line) { log(level, line); };
  options.use_cache = params.use_cache && !params.diagnostics.any();  // a cached plan runs no passes
  options.cache_dir = params.cache_dir;
  options.lock_timeout_s = params.cache_lock_timeout_s;
  BITNET_ASSIGN_OR_RETURN(auto model, compiler::load_jit_model(path, options));
  if (auto note = compiler::lm_head_note(*model, load.lm_head); !note.empty()) {
    log(LogLevel::kInfo, fmt::format("bitnet: note: {}", note));
  }
  return model;
}

void after_load(runtime::Model& model) {
  reference::install_nonfinite_locator(model);
}

std::vector<std::string> pass_names() {
  std::vector<std::string> names;
  const passes::PassManager pipeline = passes::default_pipeline();
  for (const passes::Pass& p : pipeline.passes()) {
    if (std::find(names.begin(), names.end(), p.name) == names.end()) names.emplace_back(p.name);
  }
  return names;
}

}  // namespace bitnet::api
