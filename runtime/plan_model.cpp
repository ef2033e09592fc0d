// Loading a plan to run (see plan_model.h).
#include "runtime/plan_model.h"

#include "frontend_gguf/mapped_file.h"
#include "runtime/executor.h"
#include "runtime/plan_check.h"
#include "runtime/plan_code.h"
#include "runtime/plan_cpu.h"
#include "runtime/plan_files.h"
#include "runtime/plan_graph.h"
#include "runtime/plan_reader.h"

#include <chrono>

namespace bitnet::runtime {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Hash128 hash_of(const std::unique_ptr<planfb::Hash128>& h) {
  return h ? Hash128{h->lo(), h->hi()} : Hash128{};
}

// What a plan's sessions need alive besides the plan and its bindings: the code and the sidecar.
struct LoadedPlanFiles {
  std::shared_ptr<LoadedCode> code;
  std::shared_ptr<const gguf::MappedFile> sidecar;
};

// The GGUF's tensor table must still be what the plan bound (the model hash already says so;
// this names the tensor when a plan and model disagree anyway); binds each tensor's bytes.
Status bind_weights(const planfb::PlanT& plan, const gguf::GgufFile& file, PlanBindings& bindings) {
  for (const auto& w : plan.weights) {
    const gguf::TensorInfo* t = w ? file.find_tensor(w->tensor) : nullptr;
    if (!t || file.data_offset() + t->offset != w->offset || t->nbytes != w->bytes) {
      return make_error("the model's tensor '{}' is not where the plan expects it", w ? w->tensor : "?");
    }
    bindings.weights.push_back(t->data);
  }
  return Status::success();
}

}  // namespace

Status check_plan_model(const planfb::PlanT& plan, const std::string& path, const PlanRunOptions& options) {
  const planfb::ModelIdentityT* want = plan.model.get();
  if (!want) return make_error("the plan names no model");
  Hash128 have;
  uint64_t size = 0;
  if (options.model_hash) {
    have = *options.model_hash;
    BITNET_ASSIGN_OR_RETURN(FileFingerprint fp, fingerprint_file(path));
    size = fp.size;
  } else {
    auto hash = file_content_hash(path, options.memo_dir, "model", &size);
    if (!hash.ok() && options.model_path.empty()) {
      return make_error("the plan's model is not where it was compiled ({}); pass -m MODEL", hash.error().message);
    }
    BITNET_ASSIGN_OR_RETURN(have, std::move(hash));
  }
  if (have != hash_of(want->hash) || size != want->file_size) {
    return make_error(
        "model mismatch: the plan was compiled for '{}' ({} bytes, xxh3-128 {}) but '{}' is {} bytes "
        "with xxh3-128 {}; compile a plan for this model",
        want->path, want->file_size, to_hex(hash_of(want->hash)), path, size, to_hex(have));
  }
  return Status::success();
}

Expected<std::shared_ptr<const gguf::MappedFile>> open_plan_sidecar(const planfb::PlanT& plan,
                                                                    const std::string& plan_path,
                                                                    const PlanRunOptions& options,
                                                                    std::vector<std::span<const uint8_t>>& weights) {
  const planfb::SidecarT* sc = plan.sidecar.get();
  if (!sc) return std::shared_ptr<const gguf::MappedFile>();
  if (sc->file_name.empty() || sc->file_name.find('/') != std::string::npos) {
    return make_error("the plan's sidecar name '{}' is not a plain file name", sc->file_name);
  }
  const std::string path = dir_of(plan_path) + "/" + sc->file_name;
  uint64_t size = 0;
  auto h = file_content_hash(path, options.memo_dir, "sidecar", &size);
  if (!h.ok()) return make_error("the plan's sidecar of repacked weights: {}", h.error().message);
  if (*h != hash_of(sc->hash) || size != sc->file_size) {
    return make_error(
        "sidecar mismatch: '{}' is not the file of repacked weights this plan was written with "
        "({} bytes, xxh3-128 {}; expected {} bytes, {}); recompile the plan",
        path, size, to_hex(*h), sc->file_size, to_hex(hash_of(sc->hash)));
  }
  BITNET_ASSIGN_OR_RETURN(std::shared_ptr<const gguf::MappedFile> sidecar, gguf::MappedFile::open(path));
  const auto bytes = sidecar->bytes();
  for (size_t i = 0; i < sc->weights.size(); ++i) {
    const planfb::RepackedWeightT* w = sc->weights[i].get();
    if (!w || w->offset % kSidecarAlignment != 0 || w->offset > bytes.size() || w->bytes > bytes.size() - w->offset) {
      return make_error("the plan's repacked weight #{} lies outside its sidecar", i);
    }
    weights.push_back(bytes.subspan(w->offset, w->bytes));
  }
  return sidecar;
}

Expected<std::unique_ptr<Model>> load_model_from_plan(const std::string& plan_path, const PlanRunOptions& options,
                                                      PlanLoadTimes* times, PlanLoadFailure* failure) {
  // Every error is the plan's, but for opening the model with the caller's options (below).
  PlanLoadFailure ignored;
  PlanLoadFailure& why = failure ? *failure : ignored;
  why = PlanLoadFailure::kPlanRefused;
  PlanLoadTimes t;
  auto start = Clock::now();
  BITNET_ASSIGN_OR_RETURN(auto plan, read_plan(plan_path));
  t.read_ms = ms_since(start);
  if (auto fp = fingerprint_file(plan_path); fp.ok()) t.plan_bytes = static_cast<int64_t>(fp->size);
  auto fail = [&](const Error& e) -> Error { return make_error("{}: {}", plan_path, e.message); };

  start = Clock::now();
  const planfb::TargetT* target = plan->target.get();
  if (!target) return fail(make_error("the plan names no target"));
  if (plan->cuda) {
    return fail(make_error("a CUDA plan ({}): it runs with the CUDA backend", target->name));
  }
  if (!target->triple.starts_with(std::string(host_arch()) + "-")) {
    return fail(make_error("the plan is for {}, this machine is {}", target->triple, host_arch()));
  }
  if (auto s = check_cpu_features(target->required); !s.ok()) return fail(s.error());
  const std::string model_path = options.model_path.empty() && plan->model ? plan->model->path : options.model_path;
  if (auto s = check_plan_model(*plan, model_path, options); !s.ok()) return fail(s.error());

  auto files = std::make_shared<LoadedPlanFiles>();
  auto bindings = std::make_shared<PlanBindings>();
  auto sidecar = open_plan_sidecar(*plan, plan_path, options, bindings->repacked);
  if (!sidecar.ok()) return fail(sidecar.error());
  files->sidecar = std::move(*sidecar);
  auto loaded = Model::open(model_path, options.model);
  if (!loaded.ok()) {
    // The model's content is the plan's (checked above): what failed is the tokenizer file
    // or another option, which a recompiled plan would not fix.
    why = PlanLoadFailure::kModel;
    return loaded.error();
  }
  std::unique_ptr<Model> model = std::move(*loaded);
  if (auto st = bind_weights(*plan, model->file(), *bindings); !st.ok()) return fail(st.error());
  // Every index and byte range of the schedule, before any of the plan's code is loaded.
  auto graphs = check_plan_graphs(*plan, *bindings);
  if (!graphs.ok()) return fail(graphs.error());
  model->set_graphs(std::move(graphs->last), std::move(graphs->all));
  t.checks_ms = ms_since(start);

  start = Clock::now();
  if (!plan->code || plan->code->format != planfb::CodeFormat::ElfSharedObject) {
    return fail(make_error("the plan holds no shared-object code image"));
  }
  std::vector<std::string> symbols;
  for (const auto& k : plan->kernels) symbols.push_back(k->symbol);
  auto code = LoadedCode::load(plan->code->image, symbols);
  if (!code.ok()) return fail(code.error());
  files->code = std::move(*code);
  bindings->kernels = files->code->kernels();
  t.code_ms = ms_since(start);

  start = Clock::now();
  std::shared_ptr<const planfb::PlanT> shared_plan = std::move(plan);
  if (auto st = install_plan_backend(*model, shared_plan, bindings, {.backend_name = "plan", .keepalive = files});
      !st.ok()) {
    return fail(st.error());
  }
  t.model_ms = ms_since(start);
  if (times) *times = t;
  why = PlanLoadFailure::kNone;
  return model;
}

Expected<PlanGraphs> check_plan_graphs(const planfb::PlanT& plan, PlanBindings& bindings) {
  bindings.kernel_splits.clear();
  for (const auto& k : plan.kernels) {
    if (!k) return make_error("the plan has an empty kernel entry");
    const auto split = static_cast<abi::WorkSplit>(k->split);
    if (split != abi::WorkSplit::kRows && split != abi::WorkSplit::kTokens && split != abi::WorkSplit::kHeads) {
      return make_error("kernel '{}' has a bad work split", k->symbol);
    }
    bindings.kernel_splits.push_back(split);
  }
  if (plan.graphs.size() != 2 || !plan.graphs[0] || !plan.graphs[1] || plan.graphs[0]->all_logits ||
      !plan.graphs[1]->all_logits) {
    return make_error("the plan must hold the last-token and the all-logits graph");
  }
  for (const auto& g : plan.graphs) BITNET_RETURN_IF_ERROR(check_graph_plan(*g, bindings));
  // The graphs as IR: the stored nodes must type-check as any graph does.
  BITNET_ASSIGN_OR_RETURN(DecodedGraph last, decode_graph(*plan.graphs[0], bindings.kernel_splits));
  BITNET_ASSIGN_OR_RETURN(DecodedGraph all, decode_graph(*plan.graphs[1], bindings.kernel_splits));
  return PlanGraphs{std::move(last.graph), std::move(all.graph)};
}

Status install_plan_backend(Model& model, std::shared_ptr<const planfb::PlanT> plan,
                            std::shared_ptr<const PlanBindings> bindings, const PlanBackendOptions& options) {
  if (bindings->kernels.size() != plan->kernels.size() || bindings->kernel_splits.size() != plan->kernels.size()) {
    return make_error("the plan's kernels are not all bound");
  }
  for (size_t k = 0; k < bindings->kernels.size(); ++k) {
    if (!bindings->kernels[k]) return make_error("the plan's kernel '{}' is not bound", plan->kernels[k]->symbol);
  }
  const int64_t n_vocab = static_cast<int64_t>(model.config().n_vocab);
  model.set_session_factory(
      [plan, bindings, options, n_vocab](const SessionOptions& so) -> Expected<std::unique_ptr<Session>> {
        ExecutorOptions eo;
        eo.n_ctx = so.n_ctx;
        eo.n_seq_max = so.n_seq_max;
        eo.threads = so.threads;
        eo.n_vocab = n_vocab;
        eo.backend_name = options.backend_name;
        // The factory (owned by the model) holds the plan, its bindings and what keeps them valid
        // (options.keepalive: the loaded code), so they live as long as the model, which no session
        // may outlive.
        BITNET_ASSIGN_OR_RETURN(auto exec, Executor::create(*plan->graphs[so.all_logits ? 1 : 0], *bindings, eo));
        return std::unique_ptr<Session>(std::move(exec));
      });
  return Status::success();
}

}  // namespace bitnet::runtime
