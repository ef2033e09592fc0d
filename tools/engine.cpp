// Backend wiring (see engine.h).
#include "tools/engine.h"

#include "codegen_cpu/jit.h"
#include "runtime/executor.h"
#include "runtime/interpreter.h"
#include "runtime/plan_cache.h"
#include "runtime/plan_files.h"
#include "runtime/plan_model.h"
#include "tools/lm_head.h"
#include "tools/plan_compiler.h"
#include "tools/run_options.h"

#include <fmt/format.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>

namespace bitnet::tools {
namespace {

// The JIT and the kernels it compiled for each graph, shared by every session of a model.
struct JitState {
  std::unique_ptr<codegen::Jit> jit;
  std::mutex mutex;
  std::map<const ir::Graph*, codegen::CompiledGraph> compiled;
  // Weights the graphs read that the file does not have (the --lm-head requantized head):
  // every session's extra weights.
  std::vector<runtime::RepackedBlob> repacked;
  bool verbose = false;
};

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Why the interpreter cannot stand in: it reads weights from the model file only.
Error no_interpreter_for(const std::string& tensor, const std::string& why) {
  return make_error("{}; the interpreter cannot run the requantized LM head {} (pass --lm-head f16)", why, tensor);
}

// The bytes of `model`'s requantized head for `state`, once per model; nothing for a file's own head.
Status requantize_for(const runtime::Model& model, JitState& state) {
  BITNET_ASSIGN_OR_RETURN(auto head, requantized_lm_head(model));
  if (!head) return Status::success();
  const auto start = std::chrono::steady_clock::now();
  BITNET_ASSIGN_OR_RETURN(runtime::RepackedBlob blob, requantize_lm_head(model.file(), *head));
  if (state.verbose) {
    fmt::print(stderr, "lm head: {} requantized to {} ({:.1f} MB) in {:.1f} ms\n", head->source, blob.dtype,
               static_cast<double>(blob.bytes.size()) / 1e6, ms_since(start));
  }
  state.repacked.push_back(std::move(blob));
  return Status::success();
}

void install_jit_factory(runtime::Model& model, std::shared_ptr<JitState> state) {
  model.set_session_factory([state](const ir::Graph& graph, const gguf::GgufFile& file, int64_t n_ctx,
                                    int threads) -> Expected<std::unique_ptr<runtime::Session>> {
    auto fallback = [&](const std::string& why) -> Expected<std::unique_ptr<runtime::Session>> {
      if (!state->repacked.empty()) {
        return no_interpreter_for(state->repacked[0].tensor, fmt::format("JIT compilation failed ({})", why));
      }
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
      if (it->second.kernel_of_node[i] >= 0)
        kernels[i] = it->second.kernels[static_cast<size_t>(it->second.kernel_of_node[i])].fn;
    }
    runtime::ExecutorOptions eo;
    eo.n_ctx = n_ctx;
    eo.threads = threads;
    eo.scratch_bytes_per_thread = runtime::kernel_scratch_bytes(n_ctx);
    for (const runtime::RepackedBlob& blob : state->repacked) eo.extra_weights[blob.tensor] = blob.bytes.data();
    BITNET_ASSIGN_OR_RETURN(auto exec, runtime::Executor::create(graph, file, std::move(kernels), eo));
    return std::unique_ptr<runtime::Session>(std::move(exec));
  });
}

}  // namespace

Status attach_backend(runtime::Model& model, const BackendOptions& options) {
  if (options.backend != "jit" && options.backend != "interp") {
    return make_error("unknown backend '{}' (use jit or interp)", options.backend);
  }
  BITNET_ASSIGN_OR_RETURN(auto head, requantized_lm_head(model));
  if (options.backend == "interp") {
    return head ? Status(no_interpreter_for(head->tensor, "--backend interp")) : Status::success();
  }
  BITNET_RETURN_IF_ERROR(check_target_runs_here(options.target));  // as load_jit_model: before any code runs
  auto state = std::make_shared<JitState>();
  state->verbose = options.verbose;
  auto jit = codegen::Jit::create({.target = options.target});
  if (!jit.ok()) {
    if (head) return no_interpreter_for(head->tensor, fmt::format("the JIT is unavailable ({})", jit.error().message));
    fmt::print(stderr, "bitnet: warning: the JIT is unavailable ({}); using the interpreter\n", jit.error().message);
    return Status::success();
  }
  state->jit = std::move(*jit);
  BITNET_RETURN_IF_ERROR(requantize_for(model, *state));
  install_jit_factory(model, std::move(state));
  return Status::success();
}

Expected<std::unique_ptr<runtime::Model>> load_jit_model(const std::string& path, const JitModelOptions& options) {
  auto uncached = [&]() -> Expected<std::unique_ptr<runtime::Model>> {
    BITNET_ASSIGN_OR_RETURN(auto model, runtime::Model::load(path, options.model));
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
    fmt::print(stderr, "bitnet: warning: {}; compiling in memory\n", dir.error().message);
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
    auto model = runtime::load_model_from_plan(
        plan_path, {.model_path = path, .memo_dir = memo, .model_hash = hash, .model = options.model}, &times,
        &failure);
    if (model.ok()) {
      cache.touch(plan_path);
      if (verbose) {
        fmt::print(stderr,
                   "plan cache: hit {} ({:.1f} ms: read+verify {:.1f}, checks {:.1f}, code {:.1f}, model {:.1f})\n",
                   plan_path, ms_since(start), times.read_ms, times.checks_ms, times.code_ms, times.model_ms);
      }
      return model;
    }
    // The model with these options (a bad --tokenizer, ...): an error of its own, not the plan's.
    if (failure == runtime::PlanLoadFailure::kModel) return model.error();
    fmt::print(stderr, "bitnet: warning: refusing the cached plan ({}); compiling again\n", model.error().message);
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
      fmt::print(stderr, "bitnet: waiting for another process compiling this model into the plan cache (lock {})\n",
                 cache.lock_path(key.hex));
    });
    if (!locked.ok()) {
      fmt::print(stderr, "bitnet: warning: {}; compiling without it\n", locked.error().message);
    } else if (!*locked) {
      fmt::print(stderr,
                 "bitnet: warning: gave up waiting for the plan cache lock {} after {:.0f} s; compiling here too\n",
                 cache.lock_path(key.hex), timeout_s);
    } else {
      lock = std::move(*locked);
      // The plan a process that held the lock before us stored.
      if (auto hit = try_hit()) return std::move(*hit);
    }
  }

  BITNET_ASSIGN_OR_RETURN(auto model, runtime::Model::load(path, options.model));
  auto compiled = compile_plan(*model, compile_options, hash);
  if (!compiled.ok()) {
    // As attach_backend: sessions fall back to the interpreter with the reason.
    fmt::print(stderr, "bitnet: warning: compiling the plan failed ({}); not caching\n", compiled.error().message);
    BITNET_RETURN_IF_ERROR(attach_backend(*model, options.backend));
    return model;
  }
  if (verbose) {
    fmt::print(stderr, "plan cache: miss; compiled {} kernels in {:.1f} ms (link {:.1f} ms, weight hashes {:.1f} ms)\n",
               compiled->plan->kernels.size(), compiled->compile_ms, compiled->link_ms, compiled->weights_ms);
    for (const runtime::RepackedBlob& blob : compiled->repacked) {
      fmt::print(stderr, "lm head: {} requantized to {} ({:.1f} MB, for the sidecar) in {:.1f} ms\n", blob.source,
                 blob.dtype, static_cast<double>(blob.bytes.size()) / 1e6, compiled->repack_ms);
    }
  }
  if (!writable.ok()) {
    fmt::print(stderr,
               "bitnet: warning: the plan cache is not usable ({}); the compiled kernels are kept in memory only\n",
               writable.error().message);
  } else if (auto s = runtime::write_plan(plan_path, *compiled->plan, compiled->repacked); !s.ok()) {
    fmt::print(stderr, "bitnet: warning: cannot store the plan ({}); the compiled kernels are kept in memory only\n",
               s.error().message);
  } else if (verbose) {
    fmt::print(stderr, "plan cache: stored {}\n", plan_path);
  }
  auto state = std::make_shared<JitState>();
  state->verbose = verbose;
  state->jit = std::move(compiled->jit);
  state->repacked = std::move(compiled->repacked);  // the bytes the plan's sidecar got, not made twice
  state->compiled[&model->graph(false)] = std::move(compiled->compiled[0]);
  state->compiled[&model->graph(true)] = std::move(compiled->compiled[1]);
  install_jit_factory(*model, std::move(state));
  return model;
}

void register_jit_backend() {
  set_jit_model_loader(
      [](const CommonRunOptions& o, const passes::PassOptions& passes) -> Expected<std::unique_ptr<runtime::Model>> {
        // Printing or timing passes needs them to run, which a cached plan skips.
        const bool passes_wanted = passes.print_after_all || passes.time_passes || !passes.print_after.empty();
        JitModelOptions jo;
        jo.model = {.tokenizer_path = o.tokenizer, .passes = passes};
        jo.backend = {o.backend, o.target, o.verbose};
        jo.use_cache = !o.no_cache && !passes_wanted;
        jo.lock_timeout_s = o.cache_lock_timeout_s;
        BITNET_ASSIGN_OR_RETURN(jo.model.lm_head, parse_lm_head(o.lm_head));
        BITNET_ASSIGN_OR_RETURN(auto model, load_jit_model(o.model, jo));
        if (auto note = lm_head_note(*model, jo.model.lm_head); !note.empty())
          fmt::print(stderr, "bitnet: note: {}\n", note);
        return model;
      });
}

}  // namespace bitnet::tools
