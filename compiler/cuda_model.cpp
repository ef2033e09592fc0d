// The CUDA backend from the compiler's side (see cuda_model.h).
#include "compiler/cuda_model.h"

#include <chrono>
#include <ctime>
#include <map>
#include <mutex>

#include "codegen_cuda/decode_graph.h"
#include "codegen_cuda/decode_program.h"
#include "codegen_cuda/emit_attention_decode.h"
#include "codegen_cuda/emit_q8_0.h"
#include "codegen_cuda/nvrtc.h"
#include "frontend_gguf/lowering.h"
#include "frontend_gguf/retype_ternary.h"
#include "passes/pass_manager.h"
#include "runtime/cuda/cuda_driver_device.h"
#include "runtime/cuda/cuda_plan.h"
#include "runtime/cuda/cuda_session.h"

namespace bitnet::compiler {

namespace cc = codegen_cuda;
namespace rc = runtime::cuda;

Expected<cc::DecodeModelConfig> cuda_decode_config(const gguf::ModelConfig& m, const gguf::GgufFile& file,
                                                   int64_t n_ctx) {
  // A clear message for other architectures before the graph walk would name their first op.
  if (m.arch == nullptr || !m.arch->sub_norms || m.arch->rope_style != gguf::RopeStyle::kNeox) {
    return make_error("the CUDA backend runs BitNet models (sub-norms, NEOX RoPE); this is a {} model",
                      m.arch ? m.arch->name : std::string_view("?"));
  }
  if (n_ctx < 1 || n_ctx > cc::kMaxAttentionCells) {
    return make_error("the CUDA backend holds at most {} cells per sequence; {} asked", cc::kMaxAttentionCells, n_ctx);
  }
  // The graph the CPU compilers start from: the CUDA kernels run its fused ops.
  BITNET_ASSIGN_OR_RETURN(ir::Graph graph, gguf::lower_to_ir(file, m, {}));
  BITNET_RETURN_IF_ERROR(passes::default_pipeline().run(graph));
  auto c = cc::decode_config_from_graph(graph, n_ctx);
  if (!c) return make_error("the CUDA backend cannot run this model: {}", c.error().message);
  return std::move(*c);
}

namespace {

// Every tensor a weight buffer is made from has the type and shape its layout reads.
Status check_tensors(const cc::DecodeProgram& program, const gguf::GgufFile& file) {
  for (const cc::DecodeBuffer& b : program.buffers) {
    if (b.kind != cc::BufferKind::kWeight) continue;
    for (size_t i = 0; i < b.tensors.size(); ++i) {
      const gguf::TensorInfo* t = file.find_tensor(b.tensors[i]);
      if (t == nullptr) return make_error("the CUDA backend needs tensor {}", b.tensors[i]);
      const auto rows = static_cast<uint64_t>(b.rows[i]);
      const auto cols = static_cast<uint64_t>(b.cols);
      gguf::GgmlType want = gguf::GgmlType::F32;
      std::vector<uint64_t> shape = {rows};
      uint64_t bytes = rows * 4;
      switch (b.layout) {
        case cc::WeightLayout::kF32:
          break;
        case cc::WeightLayout::kI2sRows:
        case cc::WeightLayout::kI2sPairs:
        case cc::WeightLayout::kI2sScales:
          // I2_S, or TQ2_0 / TQ1_0 with one scale, handed to the kernels as I2_S (ternary_as_i2s).
          if (t->ne != std::vector<uint64_t>{cols, rows}) {
            return make_error(
                "the CUDA backend needs {} as a ternary matrix of {} x {}; the file has {} of {} elements", t->name,
                cols, rows, gguf::ggml_type_name(t->type), t->element_count());
          }
          if (auto s = gguf::check_ternary_as_i2s(*t); !s.ok()) {
            return make_error("the CUDA backend cannot run this model: {}", s.error().message);
          }
          continue;
        case cc::WeightLayout::kF16:
        case cc::WeightLayout::kF16LmHead:
          want = gguf::GgmlType::F16, shape = {cols, rows}, bytes = rows * cols * 2;
          break;
        case cc::WeightLayout::kQ8_0:
        case cc::WeightLayout::kQ8_0LmHead:
          want = gguf::GgmlType::Q8_0, shape = {cols, rows}, bytes = rows * cc::q8_0_row_bytes(cols);
          break;
        case cc::WeightLayout::kRopeCos:
        case cc::WeightLayout::kRopeSin:
          continue;
      }
      if (t->type != want || t->ne != shape || t->data.size() < bytes) {
        const bool table = want == gguf::GgmlType::F16 || want == gguf::GgmlType::Q8_0;
        return make_error("the CUDA backend needs {} as {} of {} x {}; the file has {} of {} elements", t->name,
                          table ? "F16 or Q8_0" : gguf::ggml_type_name(want), cols, rows, gguf::ggml_type_name(t->type),
                          t->element_count());
      }
    }
  }
  return Status::success();
}

}  // namespace

Status check_cuda_support(const runtime::Model& model) {
  BITNET_ASSIGN_OR_RETURN(const cc::DecodeModelConfig config, cuda_decode_config(model.config(), model.file(), 32));
  auto program = cc::plan_decode_program(config, {.pdl = cc::PdlMode::kOff});
  if (!program.ok()) return make_error("the CUDA backend cannot run this model: {}", program.error().message);
  return check_tensors(*program, model.file());
}

Expected<std::shared_ptr<const rc::CudaProgram>> compile_cuda_program(const runtime::Model& model, int64_t n_ctx,
                                                                      const CudaCompileOptions& options) {
  BITNET_ASSIGN_OR_RETURN(const cc::DecodeModelConfig config, cuda_decode_config(model.config(), model.file(), n_ctx));
  // PDL instructions need sm_90; the emulator (sm 0) runs them as no-ops.
  const bool pdl = options.programmatic_launch && (options.sm == 0 || options.sm >= 90);
  auto planned = cc::plan_decode_program(config, {.pdl = pdl ? cc::PdlMode::kAfterWait : cc::PdlMode::kOff,
                                                  .max_tokens = options.max_tokens,
                                                  .mma_gemm = options.mma_gemm});
  if (!planned.ok()) return make_error("the CUDA backend cannot run this model: {}", planned.error().message);
  BITNET_RETURN_IF_ERROR(check_tensors(*planned, model.file()));
  auto decode = std::make_shared<const cc::DecodeProgram>(std::move(*planned));

  auto p = std::make_shared<rc::CudaProgram>();
  for (const cc::KernelSource& k : decode->kernels) p->kernels.push_back(k.name);
  p->source = decode->source();
  if (options.sm != 0) {
    BITNET_ASSIGN_OR_RETURN(const cc::Nvrtc* nvrtc, cc::Nvrtc::load());
    CudaModuleCacheOptions cache = options.cache;
    if (cache.note.empty()) {
      cache.note = fmt::format("{} kernels, {} cells, {} tokens per step, first for {}", p->kernels.size(),
                               config.n_ctx, decode->max_tokens, model.file().path());
    }
    auto out = compile_cuda_module(*nvrtc, p->source, "bitnet_decode.cu", {.sm = options.sm}, cache);
    if (!out.ok()) return make_error("NVRTC (sm_{}): {}", options.sm, out.error().message);
    p->cubin = std::move(out->cubin);
    p->ptx = std::move(out->ptx);
    p->sm = options.sm;
  }
  for (const cc::DecodeBuffer& b : decode->buffers) {
    static constexpr rc::BufferKind kKinds[] = {rc::BufferKind::kWeight, rc::BufferKind::kState,
                                                rc::BufferKind::kScratch, rc::BufferKind::kInput,
                                                rc::BufferKind::kOutput};
    // Norm gains, the embedding and a Q8_0 head are the file's bytes as stored: a plan maps them from the GGUF.
    const bool as_stored = b.kind == cc::BufferKind::kWeight && b.tensors.size() == 1 &&
                           (b.layout == cc::WeightLayout::kF32 || b.layout == cc::WeightLayout::kF16 ||
                            b.layout == cc::WeightLayout::kQ8_0 || b.layout == cc::WeightLayout::kQ8_0LmHead);
    p->buffers.push_back({b.name, kKinds[static_cast<int>(b.kind)], b.bytes, as_stored ? b.tensors[0] : ""});
  }
  for (const auto* list : {&decode->launches, &decode->batch_launches}) {
    for (const cc::DecodeLaunch& l : *list) {
      (list == &decode->launches ? p->launches : p->batch_launches)
          .push_back({l.kernel,
                      {l.grid.x, l.grid.y, l.grid.z},
                      l.threads,
                      l.args,
                      l.n_tokens_arg,
                      l.label,
                      static_cast<rc::LaunchTokens>(l.tokens),
                      l.token_axis,
                      l.token_tile});
    }
  }
  p->max_tokens = decode->max_tokens;
  p->token_buffer = decode->token_buffer;
  p->pos_buffer = decode->pos_buffer;
  p->seq_buffer = decode->seq_buffer;
  p->rows_buffer = decode->rows_buffer;
  p->prompt_buffer = decode->prompt_buffer;
  p->head_prompt_buffer = decode->head_prompt_buffer;
  p->logits_buffer = decode->logits_buffer;
  p->programmatic_launch = decode->programmatic_launch;
  p->n_vocab = config.n_vocab;
  p->n_ctx = config.n_ctx;
  p->head_dim = config.n_embd / config.n_head;
  p->n_embd_kv = p->head_dim * config.n_head_kv;
  p->rope_freq_base = config.freq_base;
  p->rope_freq_scale = config.freq_scale;
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    const std::string blk = "blk." + std::to_string(layer) + ".";
    p->kv.push_back({decode->find_buffer(blk + "k_cache"), decode->find_buffer(blk + "v_cache")});
  }
  const gguf::GgufFile* file = &model.file();
  // TQ2_0 / TQ1_0 matrices reach the kernels as I2_S. A matrix's codes buffer and its scales
  // buffer come one after the other, so the previous call's conversions are kept for the next
  // (and no longer): each tensor is converted once, and at most one buffer's worth is held.
  struct Converted {
    std::mutex mutex;
    std::map<std::string, std::vector<uint8_t>> last;
  };
  auto cache = std::make_shared<Converted>();
  p->weight_bytes = [decode, file, cache](int index) -> Expected<std::vector<uint8_t>> {
    std::lock_guard lock(cache->mutex);
    std::map<std::string, std::vector<uint8_t>> now;
    Status failed = Status::success();
    auto bytes = cc::decode_weight_bytes(*decode, index, [&](const std::string& name) -> const uint8_t* {
      const gguf::TensorInfo* t = file->find_tensor(name);
      if (t == nullptr) return nullptr;
      if (t->type != gguf::GgmlType::TQ2_0 && t->type != gguf::GgmlType::TQ1_0) return t->data.data();
      if (auto it = now.find(name); it != now.end()) return it->second.data();
      if (auto it = cache->last.find(name); it != cache->last.end()) return (now[name] = std::move(it->second)).data();
      auto i2s = gguf::ternary_as_i2s(*t);
      if (!i2s) {
        failed = i2s.error();
        return nullptr;
      }
      return (now[name] = std::move(*i2s)).data();
    });
    cache->last = std::move(now);
    if (!failed.ok()) return failed.error();
    return bytes;
  };
  BITNET_RETURN_IF_ERROR(p->check());
  return std::shared_ptr<const rc::CudaProgram>(std::move(p));
}

Expected<int> cuda_target_sm(std::string_view target) {
  if (target == "cuda") {
    BITNET_ASSIGN_OR_RETURN(auto device, rc::open_cuda_device(0));
    return device->info().sm;
  }
  for (int sm : {80, 86, 89, 90, 100, 120}) {
    if (target == "cuda-sm_" + std::to_string(sm)) return sm;
  }
  return make_error(
      "unknown CUDA target '{}' (cuda, cuda-sm_80, cuda-sm_86, cuda-sm_89, cuda-sm_90, cuda-sm_100, "
      "cuda-sm_120)",
      target);
}

Expected<CompiledCudaPlan> compile_cuda_plan(const runtime::Model& model, const runtime::Hash128& model_hash, int sm,
                                             int64_t n_ctx, bool mma_gemm) {
  const auto start = std::chrono::steady_clock::now();
  BITNET_ASSIGN_OR_RETURN(auto program, compile_cuda_program(model, n_ctx, {.sm = sm, .mma_gemm = mma_gemm}));
  CompiledCudaPlan out;
  out.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  auto plan = std::make_unique<planfb::PlanT>();
  BITNET_ASSIGN_OR_RETURN(plan->cuda, rc::encode_cuda_code(*program, out.weights));
  if (sm != 0) {
    BITNET_ASSIGN_OR_RETURN(const cc::Nvrtc* nvrtc, cc::Nvrtc::load());
    plan->cuda->nvrtc_version = nvrtc->version();
  }
  plan->format_version = runtime::kPlanFormatVersion;
  plan->weight_layout_version = runtime::kWeightLayoutVersion;
  plan->tokenizer = "gguf";
  auto& prov = plan->provenance = std::make_unique<planfb::ProvenanceT>();
  prov->compiler_version = BITNET_VERSION;
  prov->created_unix_s = static_cast<int64_t>(std::time(nullptr));
  for (const auto& [k, v] :
       std::vector<std::pair<std::string, std::string>>{{"target", "cuda-sm_" + std::to_string(sm)},
                                                        {"n_ctx", std::to_string(program->n_ctx)},
                                                        {"gemm", mma_gemm ? "mma" : "dp4a"}}) {
    auto kv = std::make_unique<planfb::KeyValueT>();
    kv->key = k;
    kv->value = v;
    prov->options.push_back(std::move(kv));
  }
  auto& target = plan->target = std::make_unique<planfb::TargetT>();
  target->name = "cuda-sm_" + std::to_string(sm);
  target->triple = "nvptx64-nvidia-cuda";
  target->cpu = "sm_" + std::to_string(sm);
  plan->model = runtime::plan_model_identity(model.file(), model_hash);
  out.plan = std::move(plan);
  return out;
}

Status attach_cuda_backend(runtime::Model& model, CudaBackendOptions options) {
  BITNET_RETURN_IF_ERROR(check_cuda_support(model));
  std::unique_ptr<rc::Device> device = std::move(options.device);
  if (!device) {
    BITNET_ASSIGN_OR_RETURN(device, rc::open_cuda_device(0));
  }
  const rc::DeviceInfo info = device->info();
  if (options.verbose && options.log) {
    options.log(LogLevel::kInfo, fmt::format("cuda: {} (sm_{}, {:.1f} GiB)", info.name, info.sm,
                                             static_cast<double>(info.memory) / (1 << 30)));
  }
  struct Shared {
    std::shared_ptr<rc::CudaBackend> backend;
    std::mutex mutex;
    std::map<int64_t, std::shared_ptr<const rc::CudaProgram>> programs;  // by cells per sequence
  };
  auto shared = std::make_shared<Shared>();
  shared->backend = std::make_shared<rc::CudaBackend>(std::move(device));
  const runtime::Model* m = &model;
  const CudaModuleCacheOptions cache{.cache_dir = options.cache_dir, .verbose = options.verbose, .log = options.log};
  rc::install_cuda_sessions(
      model, shared->backend,
      [shared, m, log = options.log, verbose = options.verbose, max_tokens = options.max_tokens,
       mma_gemm = options.mma_gemm, cache](int64_t cells) -> Expected<std::shared_ptr<const rc::CudaProgram>> {
        std::lock_guard lock(shared->mutex);
        const int64_t key = (cells + 31) / 32 * 32;
        if (auto it = shared->programs.find(key); it != shared->programs.end()) return it->second;
        const auto t0 = std::chrono::steady_clock::now();
        BITNET_ASSIGN_OR_RETURN(auto program, compile_cuda_program(*m, cells,
                                                                   {.sm = shared->backend->device().info().sm,
                                                                    .max_tokens = max_tokens,
                                                                    .mma_gemm = mma_gemm,
                                                                    .cache = cache}));
        {
          std::lock_guard device_lock(shared->backend->mutex());
          BITNET_RETURN_IF_ERROR(shared->backend->load(program));
        }
        if (verbose && log) {
          const double taken = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          log(LogLevel::kInfo,
              fmt::format("cuda: {} kernels for {} cells compiled and {:.1f} MiB of weights on the device in {:.2f} s",
                          program->kernels.size(), key,
                          static_cast<double>(shared->backend->weight_bytes()) / (1 << 20), taken));
        }
        shared->programs[key] = program;
        return program;
      },
      options.use_graphs);
  return Status::success();
}

}  // namespace bitnet::compiler
