// CUDA plans (see cuda_plan.h).
#include "runtime/cuda/cuda_plan.h"

#include "runtime/cuda/cuda_driver_device.h"
#include "runtime/plan_reader.h"

namespace bitnet::runtime::cuda {

Expected<std::unique_ptr<planfb::CudaCodeT>> encode_cuda_code(const CudaProgram& p,
                                                              std::vector<RepackedBlob>& weights) {
  BITNET_RETURN_IF_ERROR(p.check());
  auto c = std::make_unique<planfb::CudaCodeT>();
  c->sm = p.sm;
  c->kernels = p.kernels;
  c->cubin = p.cubin;
  c->ptx = p.ptx;
  c->source = p.source;
  for (size_t i = 0; i < p.buffers.size(); ++i) {
    const CudaBuffer& b = p.buffers[i];
    auto fb = std::make_unique<planfb::CudaBufferT>();
    fb->name = b.name;
    fb->kind = static_cast<int8_t>(b.kind);
    fb->bytes = b.bytes;
    fb->tensor = b.tensor;
    c->buffers.push_back(std::move(fb));
    if (b.kind != BufferKind::kWeight || !b.tensor.empty()) continue;
    auto bytes = p.weight_bytes(static_cast<int>(i));
    if (!bytes.ok()) return make_error("CUDA weights {}: {}", b.name, bytes.error().message);
    weights.push_back({b.name, b.name, "cuda", std::move(*bytes)});
    c->weight_buffers.push_back(static_cast<int32_t>(i));
  }
  for (const auto* list : {&p.launches, &p.batch_launches}) {
    for (const CudaLaunch& l : *list) {
      auto fl = std::make_unique<planfb::CudaLaunchT>();
      fl->kernel = l.kernel;
      fl->grid_x = l.grid.x, fl->grid_y = l.grid.y, fl->grid_z = l.grid.z;
      fl->threads = l.threads;
      fl->args = l.args;
      fl->n_tokens_arg = l.n_tokens_arg;
      fl->label = l.label;
      fl->tokens = static_cast<int8_t>(l.tokens);
      fl->token_axis = l.token_axis;
      fl->token_tile = l.token_tile;
      (list == &p.launches ? c->launches : c->batch_launches).push_back(std::move(fl));
    }
  }
  c->max_tokens = p.max_tokens;
  c->seq_buffer = p.seq_buffer;
  c->rows_buffer = p.rows_buffer;
  c->prompt_buffer = p.prompt_buffer;
  c->head_prompt_buffer = p.head_prompt_buffer;
  c->token_buffer = p.token_buffer;
  c->pos_buffer = p.pos_buffer;
  c->logits_buffer = p.logits_buffer;
  c->programmatic_launch = p.programmatic_launch;
  c->n_vocab = p.n_vocab;
  c->n_ctx = p.n_ctx;
  c->n_embd_kv = p.n_embd_kv;
  c->head_dim = p.head_dim;
  c->rope_freq_base = p.rope_freq_base;
  c->rope_freq_scale = p.rope_freq_scale;
  for (const CudaKvLayer& layer : p.kv) {
    auto kv = std::make_unique<planfb::CudaKvLayerT>();
    kv->k_buffer = layer.k_buffer;
    kv->v_buffer = layer.v_buffer;
    c->kv.push_back(std::move(kv));
  }
  return c;
}

Expected<std::shared_ptr<const CudaProgram>> decode_cuda_code(const planfb::CudaCodeT& c,
                                                              std::vector<std::span<const uint8_t>> weights,
                                                              std::shared_ptr<const void> keepalive,
                                                              const gguf::GgufFile& file) {
  auto p = std::make_shared<CudaProgram>();
  p->sm = c.sm;
  p->kernels = c.kernels;
  p->cubin = c.cubin;
  p->ptx = c.ptx;
  p->source = c.source;
  for (const auto& b : c.buffers) {
    if (!b || b->kind < 0 || b->kind > static_cast<int8_t>(BufferKind::kOutput)) {
      return make_error("the plan's CUDA buffer #{} is not valid", p->buffers.size());
    }
    p->buffers.push_back({b->name, static_cast<BufferKind>(b->kind), b->bytes, b->tensor});
  }
  for (const auto* list : {&c.launches, &c.batch_launches}) {
    auto& to = list == &c.launches ? p->launches : p->batch_launches;
    for (const auto& l : *list) {
      if (!l || l->tokens < 0 || l->tokens > static_cast<int8_t>(LaunchTokens::kOutputs)) {
        return make_error("the plan's CUDA launch #{} is not valid", to.size());
      }
      to.push_back({l->kernel,
                    {l->grid_x, l->grid_y, l->grid_z},
                    l->threads,
                    l->args,
                    l->n_tokens_arg,
                    l->label,
                    static_cast<LaunchTokens>(l->tokens),
                    l->token_axis,
                    l->token_tile});
    }
  }
  p->max_tokens = c.max_tokens;
  p->seq_buffer = c.seq_buffer;
  p->rows_buffer = c.rows_buffer;
  p->prompt_buffer = c.prompt_buffer;
  p->head_prompt_buffer = c.head_prompt_buffer;
  p->token_buffer = c.token_buffer;
  p->pos_buffer = c.pos_buffer;
  p->logits_buffer = c.logits_buffer;
  p->programmatic_launch = c.programmatic_launch;
  p->n_vocab = c.n_vocab;
  p->n_ctx = c.n_ctx;
  p->n_embd_kv = c.n_embd_kv;
  p->head_dim = c.head_dim;
  p->rope_freq_base = c.rope_freq_base;
  p->rope_freq_scale = c.rope_freq_scale;
  for (const auto& kv : c.kv) {
    if (!kv) return make_error("the plan's CUDA K/V layer #{} is empty", p->kv.size());
    p->kv.push_back({kv->k_buffer, kv->v_buffer});
  }
  // Every weight buffer is filled by exactly one sidecar weight or one model tensor of its size.
  std::vector<std::span<const uint8_t>> stored(p->buffers.size());
  for (size_t b = 0; b < p->buffers.size(); ++b) {
    const CudaBuffer& buffer = p->buffers[b];
    if (buffer.tensor.empty()) continue;
    const gguf::TensorInfo* t = file.find_tensor(buffer.tensor);
    if (buffer.kind != BufferKind::kWeight || t == nullptr || static_cast<int64_t>(t->data.size()) < buffer.bytes) {
      return make_error("the plan's CUDA buffer {} names tensor {}, which the model does not hold as {} bytes",
                        buffer.name, buffer.tensor, buffer.bytes);
    }
    stored[b] = t->data.first(static_cast<size_t>(buffer.bytes));
  }
  if (c.weight_buffers.size() != weights.size()) {
    return make_error("the plan's CUDA code names {} weights; its sidecar holds {}", c.weight_buffers.size(),
                      weights.size());
  }
  std::vector<int> source(p->buffers.size(), -1);
  for (size_t i = 0; i < c.weight_buffers.size(); ++i) {
    const int b = c.weight_buffers[i];
    if (b < 0 || b >= static_cast<int>(p->buffers.size()) ||
        p->buffers[static_cast<size_t>(b)].kind != BufferKind::kWeight || source[static_cast<size_t>(b)] >= 0 ||
        !stored[static_cast<size_t>(b)].empty() ||
        static_cast<int64_t>(weights[i].size()) != p->buffers[static_cast<size_t>(b)].bytes) {
      return make_error("the plan's CUDA weight #{} does not fill a weight buffer of its size", i);
    }
    source[static_cast<size_t>(b)] = static_cast<int>(i);
  }
  for (size_t b = 0; b < p->buffers.size(); ++b) {
    if (p->buffers[b].kind == BufferKind::kWeight && source[b] < 0 && stored[b].empty()) {
      return make_error("the plan's CUDA weight buffer {} has no bytes in the sidecar", p->buffers[b].name);
    }
  }
  p->weight_bytes = [weights = std::move(weights), source = std::move(source), stored = std::move(stored),
                     keepalive = std::move(keepalive)](int index) -> Expected<std::vector<uint8_t>> {
    const auto i = static_cast<size_t>(index);
    const std::span<const uint8_t> w = stored[i].empty() ? weights[static_cast<size_t>(source[i])] : stored[i];
    return std::vector<uint8_t>(w.begin(), w.end());
  };
  BITNET_RETURN_IF_ERROR(p->check());
  return std::shared_ptr<const CudaProgram>(std::move(p));
}

void install_cuda_program(Model& model, std::shared_ptr<const CudaProgram> program,
                          std::shared_ptr<CudaBackend> backend, bool use_graphs) {
  install_cuda_sessions(
      model, std::move(backend),
      [program](int64_t cells) -> Expected<std::shared_ptr<const CudaProgram>> {
        if (cells > program->n_ctx) {
          return make_error("{} cells per sequence asked; the CUDA plan holds at most {} (compile it with a larger -c)",
                            cells, program->n_ctx);
        }
        return program;
      },
      use_graphs);
}

Expected<std::unique_ptr<Model>> load_cuda_model_from_plan(const std::string& plan_path, const PlanRunOptions& options,
                                                           std::unique_ptr<Device> device, PlanLoadFailure* failure) {
  PlanLoadFailure ignored;
  PlanLoadFailure& why = failure ? *failure : ignored;
  why = PlanLoadFailure::kPlanRefused;
  auto fail = [&](const Error& e) -> Error { return make_error("{}: {}", plan_path, e.message); };
  BITNET_ASSIGN_OR_RETURN(std::shared_ptr<const planfb::PlanT> plan, read_plan(plan_path));
  if (!plan->cuda) return fail(make_error("not a CUDA plan"));
  const std::string model_path = options.model_path.empty() && plan->model ? plan->model->path : options.model_path;
  if (auto s = check_plan_model(*plan, model_path, options); !s.ok()) return fail(s.error());
  std::vector<std::span<const uint8_t>> weights;
  auto sidecar = open_plan_sidecar(*plan, plan_path, options, weights);
  if (!sidecar.ok()) return fail(sidecar.error());
  auto loaded = Model::open(model_path, options.model);
  if (!loaded.ok()) {
    why = PlanLoadFailure::kModel;
    return loaded.error();
  }
  auto program = decode_cuda_code(*plan->cuda, std::move(weights), *sidecar, (*loaded)->file());
  if (!program.ok()) return fail(program.error());
  if (!device) {
    // Not the plan's fault: a GPU, a driver or a device of the plan's architecture is missing.
    auto opened = open_cuda_device(0);
    if (!opened.ok()) {
      why = PlanLoadFailure::kModel;
      return fail(opened.error());
    }
    device = std::move(*opened);
  }
  auto backend = std::make_shared<CudaBackend>(std::move(device));
  {
    // Weights uploaded and the code loaded now: a plan for another architecture fails here.
    std::lock_guard lock(backend->mutex());
    if (auto s = backend->load(*program); !s.ok()) return fail(s.error());
  }
  install_cuda_program(**loaded, *program, std::move(backend));
  why = PlanLoadFailure::kNone;
  return std::move(*loaded);
}

}  // namespace bitnet::runtime::cuda
