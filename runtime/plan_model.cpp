// Loading a plan to run (see plan_model.h).
#include "runtime/plan_model.h"

#include "frontend_gguf/mapped_file.h"
#include "runtime/executor.h"
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

// What every session of a plan's model shares: the code, the sidecar mapping, and the kernels
// of each graph's nodes.
struct PlanState {
  std::shared_ptr<LoadedCode> code;
  std::shared_ptr<const gguf::MappedFile> sidecar;
  std::map<std::string, const void*> extra_weights;
  const ir::Graph* graphs[2] = {nullptr, nullptr};
  std::vector<int32_t> kernel_of_node[2];
  int64_t t_max[2] = {0, 0};
};

Status check_model(const planfb::PlanT& plan, const std::string& path, const PlanRunOptions& options) {
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

// Maps and checks the sidecar; fills the extra weights and their index entries.
Status open_sidecar(const planfb::PlanT& plan, const std::string& plan_path, const PlanRunOptions& options,
                    PlanState& state, WeightIndex& index) {
  const planfb::SidecarT* sc = plan.sidecar.get();
  if (!sc) return Status::success();
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
  BITNET_ASSIGN_OR_RETURN(state.sidecar, gguf::MappedFile::open(path));
  const auto bytes = state.sidecar->bytes();
  for (size_t i = 0; i < sc->weights.size(); ++i) {
    const planfb::RepackedWeightT* w = sc->weights[i].get();
    if (!w || w->offset % kSidecarAlignment != 0 || w->offset > bytes.size() || w->bytes > bytes.size() - w->offset) {
      return make_error("the plan's repacked weight #{} lies outside its sidecar", i);
    }
    state.extra_weights[w->tensor] = bytes.data() + w->offset;
    index[w->tensor] = {planfb::BindingKind::Repacked, static_cast<int32_t>(i)};
  }
  return Status::success();
}

// The GGUF's tensor table must still be what the plan bound (the model hash already says so;
// this names the tensor when a plan and model disagree anyway).
Status check_weight_bindings(const planfb::PlanT& plan, const gguf::GgufFile& file) {
  for (const auto& w : plan.weights) {
    const gguf::TensorInfo* t = w ? file.find_tensor(w->tensor) : nullptr;
    if (!t || file.data_offset() + t->offset != w->offset || t->nbytes != w->bytes) {
      return make_error("the model's tensor '{}' is not where the plan expects it", w ? w->tensor : "?");
    }
  }
  return Status::success();
}

}  // namespace

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
  if (!target->triple.starts_with(std::string(host_arch()) + "-")) {
    return fail(make_error("the plan is for {}, this machine is {}", target->triple, host_arch()));
  }
  if (auto s = check_cpu_features(target->required); !s.ok()) return fail(s.error());
  const std::string model_path = options.model_path.empty() && plan->model ? plan->model->path : options.model_path;
  if (auto s = check_model(*plan, model_path, options); !s.ok()) return fail(s.error());

  auto state = std::make_shared<PlanState>();
  WeightIndex index;
  for (size_t i = 0; i < plan->weights.size(); ++i) {
    if (plan->weights[i]) index[plan->weights[i]->tensor] = {planfb::BindingKind::Weight, static_cast<int32_t>(i)};
  }
  if (auto s = open_sidecar(*plan, plan_path, options, *state, index); !s.ok()) return fail(s.error());
  std::vector<planfb::WorkSplit> splits;
  std::vector<std::string> symbols;
  for (const auto& k : plan->kernels) {
    if (!k) return fail(make_error("the plan has an empty kernel entry"));
    splits.push_back(k->split);
    symbols.push_back(k->symbol);
  }
  if (plan->graphs.size() != 2 || !plan->graphs[0] || !plan->graphs[1] || plan->graphs[0]->all_logits ||
      !plan->graphs[1]->all_logits) {
    return fail(make_error("the plan must hold the last-token and the all-logits graph"));
  }
  std::vector<DecodedGraph> graphs;
  for (const auto& g : plan->graphs) {
    auto decoded = decode_graph(*g, index, splits);
    if (!decoded.ok()) return fail(decoded.error());
    graphs.push_back(std::move(*decoded));
  }
  t.checks_ms = ms_since(start);

  start = Clock::now();
  if (!plan->code || plan->code->format != planfb::CodeFormat::ElfSharedObject) {
    return fail(make_error("the plan holds no shared-object code image"));
  }
  auto code = LoadedCode::load(plan->code->image, symbols);
  if (!code.ok()) return fail(code.error());
  state->code = std::move(*code);
  t.code_ms = ms_since(start);

  start = Clock::now();
  for (int g = 0; g < 2; ++g) state->kernel_of_node[g] = graphs[static_cast<size_t>(g)].kernel_of_node;
  auto loaded =
      Model::load_with_graphs(model_path, std::move(graphs[0].graph), std::move(graphs[1].graph), options.model);
  if (!loaded.ok()) {
    // The model's content is the plan's (checked above): what failed is the tokenizer file
    // or another option, which a recompiled plan would not fix.
    why = PlanLoadFailure::kModel;
    return loaded.error();
  }
  std::unique_ptr<Model> model = std::move(*loaded);
  if (auto s = check_weight_bindings(*plan, model->file()); !s.ok()) return fail(s.error());
  state->graphs[0] = &model->graph(false);
  state->graphs[1] = &model->graph(true);
  for (int g = 0; g < 2; ++g) state->t_max[g] = plan->graphs[static_cast<size_t>(g)]->t_max;
  model->set_session_factory([state](const ir::Graph& graph, const gguf::GgufFile& file, int64_t n_ctx,
                                     int threads) -> Expected<std::unique_ptr<Session>> {
    const int g = &graph == state->graphs[1] ? 1 : 0;
    std::vector<codegen::KernelFn> kernels(graph.nodes().size(), nullptr);
    for (size_t i = 0; i < kernels.size(); ++i) {
      const int32_t k = state->kernel_of_node[g][i];
      if (k >= 0) kernels[i] = state->code->kernels()[static_cast<size_t>(k)];
    }
    ExecutorOptions eo;
    eo.n_ctx = n_ctx;
    eo.threads = threads;
    eo.t_max = state->t_max[g];  // the t_max its layout was checked for
    eo.scratch_bytes_per_thread = kernel_scratch_bytes(n_ctx);
    eo.extra_weights = state->extra_weights;
    eo.backend_name = "plan";
    // The factory (owned by the model) holds `state`, so the code stays loaded as long as the
    // model, which every session must not outlive anyway.
    BITNET_ASSIGN_OR_RETURN(auto exec, Executor::create(graph, file, std::move(kernels), eo));
    return std::unique_ptr<Session>(std::move(exec));
  });
  t.model_ms = ms_since(start);
  if (times) *times = t;
  why = PlanLoadFailure::kNone;
  return model;
}

}  // namespace bitnet::runtime
