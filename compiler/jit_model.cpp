// Backend wiring (see jit_model.h).
#include "compiler/jit_model.h"

#include "codegen_cpu/jit.h"
#include "compiler/lm_head.h"
#include "compiler/load_model.h"
#include "compiler/plan_compiler.h"
#include "reference/locate_nonfinite.h"
#include "runtime/plan_cache.h"
#include "runtime/plan_files.h"
#include "runtime/plan_model.h"

#include <fmt/format.h>

#include <chrono>
#include <map>
#include <optional>

namespace bitnet::compiler {
namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Why the interpreter cannot stand in: it reads weights from the model file only.
Error no_interpreter_for(const std::string& tensor, const std::string& why) {
  return make_error("{}; the interpreter cannot run the requantized LM head {} (pass --lm-head f16)", why, tensor);
}

// What the bindings of a JIT-compiled plan point into: the JIT's code and the requantized head.
struct JitKeepalive {
  std::unique_ptr<codegen::Jit> jit;
  std::vector<runtime::RepackedBlob> repacked;
};

// A warning or -v line: to the options' log sink, or stderr.
void say(const BackendOptions& options, LogLevel level, const std::string& line) {
  if (options.log) {
    options.log(level, line);
  } else {
    fmt::print(stderr, "{}\n", line);
  }
}
void warn(const BackendOptions& options, const std::string& line) {
  say(options, LogLevel::kWarning, line);
}
void info(const BackendOptions& options, const std::string& line) {
  say(options, LogLevel::kInfo, line);
}

}  // namespace

Status run_compiled_plan(runtime::Model& model, CompiledPlan compiled, const BackendOptions& options) {
  if (options.verbose) {
    info(options, fmt::format("jit: {} kernels in {:.1f} ms", compiled.plan->kernels.size(), compiled.compile_ms));
    for (const auto& k : compiled.plan->kernels) info(options, fmt::format("  {:8.2f} ms  {}", k->compile_ms, k->key));
  }
  auto bindings = std::make_shared<runtime::PlanBindings>();
  std::map<std::string, abi::KernelFn> by_symbol;
  for (const codegen::CompiledGraph& graph : compiled.compiled) {
    for (const codegen::CompiledKernel& k : graph.kernels) by_symbol[k.symbol] = k.fn;
  }
  for (const auto& k : compiled.plan->kernels) {
    auto it = by_symbol.find(k->symbol);
    if (it == by_symbol.end()) return make_error("the JIT has no kernel {}", k->symbol);
    bindings->kernels.push_back(it->second);
  }
  for (const auto& w : compiled.plan->weights) {
    const gguf::TensorInfo* t = model.file().find_tensor(w->tensor);
    if (t == nullptr) return make_error("weight '{}' is not in the model file", w->tensor);
    bindings->weights.push_back(t->data);
  }
  // In plan order (the sidecar's): a blob's bytes stay where they are when the vector moves.
  for (const runtime::RepackedBlob& blob : compiled.repacked) bindings->repacked.emplace_back(blob.bytes);
  // The same checks as a plan file's; the model keeps the graphs the compiler made (the plan's
  // decoded ones are the same).
  if (auto checked = runtime::check_plan_graphs(*compiled.plan, *bindings); !checked.ok()) return checked.error();
  auto keep = std::make_shared<JitKeepalive>();
  keep->jit = std::move(compiled.jit);
  keep->repacked = std::move(compiled.repacked);
  std::shared_ptr<const planfb::PlanT> plan = std::move(compiled.plan);
  return runtime::install_plan_backend(model, std::move(plan), std::move(bindings),
                                       {.backend_name = "jit", .keepalive = std::move(keep)});
}

Status attach_backend(runtime::Model& model, const BackendOptions& options) {
  if (options.backend != "jit" && options.backend != "interp") {
    return make_error("unknown backend '{}' (use jit or interp)", options.backend);
  }
  BITNET_ASSIGN_OR_RETURN(auto head, requantized_lm_head(model));
  if (options.backend == "interp") {
    if (head) return no_interpreter_for(head->tensor, "--backend interp");
    use_interpreter(model);
    return Status::success();
  }
  BITNET_RETURN_IF_ERROR(check_target_runs_here(options.target));  // as load_jit_model: before any code runs
  const PlanCompileOptions compile_options{
      .target = options.target, .lm_head = head ? head->type.dtype : ir::DType::F16, .hash_weights = false};
  // The in-memory plan is bound to this model object, never stored: no content hash needed.
  auto compiled = compile_plan(model, compile_options, runtime::Hash128{});
  Status ran = compiled.ok() ? run_compiled_plan(model, std::move(*compiled), options) : Status(compiled.error());
  if (ran.ok()) return ran;
  if (head) return no_interpreter_for(head->tensor, fmt::format("JIT compilation failed ({})", ran.error().message));
  warn(options,
       fmt::format("bitnet: warning: JIT compilation failed ({}); using the interpreter", ran.error().message));
  use_interpreter(model);
  return Status::success();
}

Expected<std::unique_ptr<runtime::Model>> load_jit_model(const std::string& path, const JitModelOptions& options) {
  auto uncached = [&]() -> Expected<std::unique_ptr<runtime::Model>> {
    BITNET_ASSIGN_OR_RETURN(auto model, load_model(path, options.model));
    BITNET_RETURN_IF_ERROR(attach_backend(*model, options.backend));
    return model;
  };
  if (options.backend.backend == "jit") {
    // Before anything is compiled or cached: code this CPU cannot run would die with SIGILL.
    BITNET_RETURN_IF_ERROR(check_target_runs_here(options.backend.target));
  }
  if (!options.use_cache || options.backend.backend != "jit") return uncached();
  const bool verbose = options.backend.verbose;
  auto dir = options.cache_dir.empty() ? runtime::default_cache_dir() : Expected<std::string>(options.cache_dir);
  if (!dir.ok()) {
    warn(options.backend, fmt::format("bitnet: warning: {}; compiling in memory", dir.error().message));
    return uncached();
  }
  const runtime::PlanCache cache(*dir);
  const Status writable = cache.prepare();
  const std::string memo = writable.ok() ? cache.hashes_dir() : "";
  uint64_t size = 0;
  BITNET_ASSIGN_OR_RETURN(runtime::Hash128 hash, runtime::file_content_hash(path, memo, "model", &size));
  const PlanCompileOptions compile_options{.target = options.backend.target, .lm_head = options.model.lm_head};
  BITNET_ASSIGN_OR_RETURN(PlanKey key, plan_cache_key(compile_options, hash, size));
  const std::string plan_path = cache.plan_path(key.hex);

  // The cached plan, if there is one this machine accepts. `refused` names the file refused
  // (its fingerprint), so that the same file is not tried twice.
  std::optional<std::string> refused;
  auto try_hit = [&]() -> std::optional<Expected<std::unique_ptr<runtime::Model>>> {
    const auto start = std::chrono::steady_clock::now();
    auto fingerprint = runtime::fingerprint_file(plan_path);
    if (!fingerprint.ok() || (refused && *refused == fingerprint->text())) return std::nullopt;
    runtime::PlanLoadTimes times;
    runtime::PlanLoadFailure failure = runtime::PlanLoadFailure::kNone;
    auto model = runtime::load_model_from_plan(plan_path,
                                               {.model_path = path,
                                                .memo_dir = memo,
                                                .model_hash = hash,
                                                .model = {.tokenizer_path = options.model.tokenizer_path}},
                                               &times, &failure);
    if (model.ok()) {
      cache.touch(plan_path);
      reference::install_nonfinite_locator(**model);
      if (verbose) {
        info(options.backend,
             fmt::format("plan cache: hit {} ({:.1f} ms: read+verify {:.1f}, checks {:.1f}, code {:.1f}, model {:.1f})",
                         plan_path, ms_since(start), times.read_ms, times.checks_ms, times.code_ms, times.model_ms));
      }
      return model;
    }
    // The model with these options (a bad --tokenizer, ...): an error of its own, not the plan's.
    if (failure == runtime::PlanLoadFailure::kModel) return model.error();
    warn(options.backend,
         fmt::format("bitnet: warning: refusing the cached plan ({}); compiling again", model.error().message));
    refused = fingerprint->text();
    return std::nullopt;
  };
  if (auto hit = try_hit()) return std::move(*hit);

  // A miss: of the processes that miss this key at once, one compiles (holding the key's
  // lock) and the others wait for its plan, at most options.lock_timeout_s, then compile too.
  std::unique_ptr<runtime::PlanCache::KeyLock> lock;
  if (writable.ok()) {
    const double timeout_s = options.lock_timeout_s;
    auto locked = cache.lock_key(key.hex, timeout_s, [&] {
      info(options.backend,
           fmt::format("bitnet: waiting for another process compiling this model into the plan cache (lock {})",
                       cache.lock_path(key.hex)));
    });
    if (!locked.ok()) {
      warn(options.backend, fmt::format("bitnet: warning: {}; compiling without it", locked.error().message));
    } else if (!*locked) {
      warn(options.backend,
           fmt::format("bitnet: warning: gave up waiting for the plan cache lock {} after {:.0f} s; compiling here too",
                       cache.lock_path(key.hex), timeout_s));
    } else {
      lock = std::move(*locked);
      // The plan a process that held the lock before us stored.
      if (auto hit = try_hit()) return std::move(*hit);
    }
  }

  BITNET_ASSIGN_OR_RETURN(auto model, load_model(path, options.model));
  auto compiled = compile_plan(*model, compile_options, hash);
  if (!compiled.ok()) {
    // As attach_backend: the interpreter (load_model's backend) stands in, with the reason.
    BITNET_ASSIGN_OR_RETURN(auto head, requantized_lm_head(*model));
    if (head)
      return no_interpreter_for(head->tensor, fmt::format("compiling the plan failed ({})", compiled.error().message));
    warn(options.backend,
         fmt::format("bitnet: warning: compiling the plan failed ({}); not caching, using the interpreter",
                     compiled.error().message));
    return model;
  }
  if (verbose) {
    info(options.backend,
         fmt::format("plan cache: miss; compiled {} kernels in {:.1f} ms (link {:.1f} ms, weight hashes {:.1f} ms)",
                     compiled->plan->kernels.size(), compiled->compile_ms, compiled->link_ms, compiled->weights_ms));
    for (const runtime::RepackedBlob& blob : compiled->repacked) {
      info(options.backend,
           fmt::format("lm head: {} requantized to {} ({:.1f} MB, for the sidecar) in {:.1f} ms", blob.source,
                       blob.dtype, static_cast<double>(blob.bytes.size()) / 1e6, compiled->repack_ms));
    }
  }
  if (!writable.ok()) {
    warn(options.backend,
         fmt::format("bitnet: warning: the plan cache is not usable ({}); the compiled kernels are kept in memory only",
                     writable.error().message));
  } else if (auto s = runtime::write_plan(plan_path, *compiled->plan, compiled->repacked); !s.ok()) {
    warn(options.backend,
         fmt::format("bitnet: warning: cannot store the plan ({}); the compiled kernels are kept in memory only",
                     s.error().message));
  } else if (verbose) {
    info(options.backend, fmt::format("plan cache: stored {}", plan_path));
  }
  BackendOptions quiet = options.backend;  // the kernels were reported above
  quiet.verbose = false;
  BITNET_RETURN_IF_ERROR(run_compiled_plan(*model, std::move(*compiled), quiet));
  return model;
}

}  // namespace bitnet::compiler
