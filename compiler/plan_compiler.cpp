// Plan compilation and the cache key (see plan_compiler.h).
#include "compiler/plan_compiler.h"

#include "codegen_cpu/host_features.h"
#include "codegen_cpu/matmul_tuning.h"
#include "codegen_cpu/plan_linker.h"
#include "compiler/lm_head.h"
#include "compiler/plan_encode.h"
#include "runtime/plan_cpu.h"
#include "runtime/plan_files.h"
#include "runtime/progress.h"

#include <elf.h>
#include <link.h>

#include <chrono>
#include <ctime>
#include <map>
#include <mutex>
#include <set>

namespace bitnet::compiler {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Every field of the matmul tuning (and the struct's size, so a new field changes the key
// even before it is listed here).
std::string tuning_text() {
  const codegen::MatmulTuning& t = codegen::matmul_tuning();
  return fmt::format(
      "size{} i2s:{},{},{},{},{},{},{},{},{},{},{},{},{},{} float:{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{} "
      "portable:{}",
      sizeof t, t.i2s_gemv_rows, t.i2s_gemm_rows, t.i2s_gemm_tokens, t.i2s_gemm_rows_avx2, t.i2s_gemm_tokens_avx2,
      t.i2s_gemv_split, t.i2s_gemm_accs, t.i2s_gemm_chunk_bytes, t.i2s_prefetch_bytes, t.i2s_start_prefetch_bytes,
      t.i2s_gemv_streams, t.i2s_gemv_batch, t.i2s_max_vector_bits, t.i2s_allow_vnni, t.float_gemv_rows,
      t.float_gemv_accs, t.float_gemm_rows, t.float_gemm_tokens, t.float_decode_tokens, t.float_decode_rows_tile,
      t.float_rows_min_k, t.float_rows_chunked, t.float_rows_tile, t.float_rows_reg_rows, t.float_rows_group,
      t.float_rows_chunk_bytes, t.float_prefetch_bytes, t.float_gemv_streams, t.float_max_vector_bits,
      t.float_zigzag_max_bytes, t.portable_only);
}

int build_id_note(dl_phdr_info* info, size_t, void* out) {
  auto* id = static_cast<std::string*>(out);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const auto* p = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
    const uint8_t* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* n = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const uint8_t* name = p + sizeof *n;
      const uint8_t* desc = name + ((n->n_namesz + 3) & ~3u);
      if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0 &&
          desc + n->n_descsz <= end) {
        for (uint32_t k = 0; k < n->n_descsz; ++k) *id += fmt::format("{:02x}", desc[k]);
        return 1;
      }
      p = desc + ((n->n_descsz + 3) & ~3u);
    }
  }
  return 1;  // only the first object (the executable) is of interest
}

}  // namespace

std::string compiler_build_id() {
  static const std::string id = [] {
    std::string out;
    dl_iterate_phdr(build_id_note, &out);
    if (out.empty()) {
      // No build-id note: the executable's bytes identify it just as well, if more slowly.
      auto h = runtime::file_content_hash("/proc/self/exe", "", "compiler");
      out = h.ok() ? "xxh3-" + runtime::to_hex(*h) : "unknown";
    }
    return out;
  }();
  return id;
}

Expected<PlanKey> plan_cache_key(const PlanCompileOptions& options, const runtime::Hash128& model_hash,
                                 uint64_t model_size) {
  codegen::TargetFeatures target;
  std::string error;
  if (!codegen::resolve_target(options.target, target, &error)) return make_error("{}", error);
  // BITNET_CPU_DISABLE changes the code only for the host target (named targets ignore it).
  BITNET_ASSIGN_OR_RETURN(std::string disabled, runtime::cpu_disable_value());
  const std::string codegen_env =
      options.target == "host" && !disabled.empty() ? fmt::format("{}={}", runtime::kCpuDisableEnv, disabled) : "";
  PlanKey key;
  key.material = fmt::format(
      "bitnet-plan-cache-key\n"
      "plan_format_version={}\nweight_layout_version={}\n"
      "compiler_version={}\ncompiler_build_id={}\nllvm_version={}\n"
      "target={}\ntriple={}\ncpu={}\nfeatures={}\n"
      "opt_level={}\nt_max={}\nmatmul_tuning={}\nlm_head={}\n"
      "codegen_env={}\n"  // the environment variables that change code generation
      "model_xxh3_128={}\nmodel_size={}\n",
      runtime::kPlanFormatVersion, runtime::kWeightLayoutVersion, BITNET_VERSION, compiler_build_id(),
      codegen::llvm_version(), options.target, target.triple, target.cpu,
      target.features.empty() ? codegen::enabled_features(target) : target.features, options.opt_level, abi::kTMax,
      tuning_text(), ir::dtype_name(options.lm_head), codegen_env, runtime::to_hex(model_hash), model_size);
  key.hex =
      runtime::to_hex(runtime::xxh3_128({reinterpret_cast<const uint8_t*>(key.material.data()), key.material.size()}));
  return key;
}

Status check_target_runs_here(const std::string& target_name) {
  codegen::TargetFeatures target;
  std::string error;
  if (!codegen::resolve_target(target_name, target, &error)) return make_error("{}", error);
  std::vector<std::string> required, unchecked;
  runtime::split_target_features(codegen::enabled_features(target), required, unchecked);
  return runtime::check_cpu_features(required, fmt::format("code for --target {}", target_name));
}

Expected<CompiledPlan> compile_plan(const runtime::Model& model, const PlanCompileOptions& options,
                                    const runtime::Hash128& model_hash) {
  CompiledPlan out;
  const ir::Graph* graphs[2] = {&model.graph(false), &model.graph(true)};
  // The key names options.lm_head, so the graphs must be what that option made of this model
  // (a head that is not F16 is left alone, and the option with it).
  BITNET_ASSIGN_OR_RETURN(auto head, requantized_lm_head(model));
  const ir::DType have = head ? head->type.dtype : ir::DType::F16;
  if (have != options.lm_head && lm_head_note(model, options.lm_head).empty()) {
    return make_error("the model's graphs read a {} LM head but the plan is for --lm-head {}", ir::dtype_name(have),
                      ir::dtype_name(options.lm_head));
  }
  std::set<std::string> keys;
  for (const ir::Graph* g : graphs) {
    for (const ir::Node& n : g->nodes()) {
      if (codegen::needs_kernel(n.op)) keys.insert(codegen::KernelDesc::from_node(*g, n).key());
    }
  }
  // Objects arrive from the JIT's compile threads.
  std::mutex mutex;
  std::map<std::string, std::string> objects;
  runtime::Progress progress("compiling kernels");
  codegen::JitOptions jo;
  jo.target = options.target;
  jo.opt_level = options.opt_level;
  jo.compile_threads = options.compile_threads;
  jo.on_object = [&](const std::string& symbol, std::string_view object) {
    std::lock_guard<std::mutex> lock(mutex);
    objects[symbol] = std::string(object);
    progress.count(static_cast<int64_t>(objects.size()), static_cast<int64_t>(keys.size()));
  };
  auto start = Clock::now();
  BITNET_ASSIGN_OR_RETURN(out.jit, codegen::Jit::create(jo));
  for (int g = 0; g < 2; ++g) {
    BITNET_ASSIGN_OR_RETURN(out.compiled[g], out.jit->compile(*graphs[g]));
  }
  out.compile_ms = ms_since(start);

  // One kernel list for both graphs: by symbol, in order of first use.
  auto plan = std::make_unique<planfb::PlanT>();
  std::map<std::string, int32_t> index_of_symbol;
  std::vector<std::pair<std::string, std::string>> to_link;
  std::vector<int32_t> kernel_of_node[2];
  for (int g = 0; g < 2; ++g) {
    const codegen::CompiledGraph& c = out.compiled[g];
    for (int32_t k : c.kernel_of_node) {
      if (k < 0) {
        kernel_of_node[g].push_back(-1);
        continue;
      }
      const codegen::CompiledKernel& kernel = c.kernels[static_cast<size_t>(k)];
      auto [it, added] = index_of_symbol.emplace(kernel.symbol, static_cast<int32_t>(plan->kernels.size()));
      if (added) {
        auto object = objects.find(kernel.symbol);
        if (object == objects.end()) return make_error("the JIT produced no object for kernel {}", kernel.key);
        to_link.emplace_back(kernel.symbol, object->second);
        auto pk = std::make_unique<planfb::KernelT>();
        pk->symbol = kernel.symbol;
        pk->key = kernel.key;
        pk->split = static_cast<planfb::WorkSplit>(kernel.split);
        pk->compile_ms = static_cast<float>(c.kernel_ms[static_cast<size_t>(k)]);
        plan->kernels.push_back(std::move(pk));
      }
      kernel_of_node[g].push_back(it->second);
    }
  }
  start = Clock::now();
  BITNET_ASSIGN_OR_RETURN(std::string image, codegen::link_shared_object(to_link));
  out.link_ms = ms_since(start);
  plan->code = std::make_unique<planfb::CodeT>();
  plan->code->format = planfb::CodeFormat::ElfSharedObject;
  plan->code->image.assign(image.begin(), image.end());

  // Weights the file does not have (the requantized LM head) go to the sidecar, so a plan
  // that is loaded needs no requantization.
  const gguf::GgufFile& file = model.file();
  WeightIndex index;
  if (head) {
    start = Clock::now();
    BITNET_ASSIGN_OR_RETURN(runtime::RepackedBlob blob, requantize_lm_head(file, *head));
    index[blob.tensor] = {planfb::BindingKind::Repacked, static_cast<int32_t>(out.repacked.size())};
    out.repacked.push_back(std::move(blob));
    out.repack_ms = ms_since(start);
  }
  // Weights: every other tensor the graphs read, from the GGUF, with its hash.
  start = Clock::now();
  {
    runtime::Progress hashing("hashing weights");
    for (const ir::Graph* g : graphs) {
      for (const ir::Node& n : g->nodes()) {
        if (n.op != ir::OpKind::Weight || index.count(n.attr_string("tensor"))) continue;
        const gguf::TensorInfo* t = file.find_tensor(n.attr_string("tensor"));
        if (t == nullptr) return make_error("weight '{}' is not in the model file", n.attr_string("tensor"));
        auto w = std::make_unique<planfb::WeightBindingT>();
        w->tensor = t->name;
        w->offset = file.data_offset() + t->offset;
        w->bytes = t->nbytes;
        w->hash = options.hash_weights ? runtime::xxh3_64(t->data) : 0;
        index[t->name] = {planfb::BindingKind::Weight, static_cast<int32_t>(plan->weights.size())};
        plan->weights.push_back(std::move(w));
        hashing.count(static_cast<int64_t>(plan->weights.size()), static_cast<int64_t>(file.tensors().size()));
      }
    }
  }
  out.weights_ms = ms_since(start);
  for (int g = 0; g < 2; ++g) {
    BITNET_ASSIGN_OR_RETURN(auto encoded, encode_graph(*graphs[g], g == 1, kernel_of_node[g], abi::kTMax, index));
    plan->graphs.push_back(std::move(encoded));
  }

  BITNET_ASSIGN_OR_RETURN(PlanKey key, plan_cache_key(options, model_hash, file.file_size()));
  plan->format_version = runtime::kPlanFormatVersion;
  plan->weight_layout_version = runtime::kWeightLayoutVersion;
  plan->tokenizer = "gguf";
  auto& prov = plan->provenance = std::make_unique<planfb::ProvenanceT>();
  prov->compiler_version = BITNET_VERSION;
  prov->compiler_build_id = compiler_build_id();
  prov->llvm_version = codegen::llvm_version();
  prov->created_unix_s = static_cast<int64_t>(std::time(nullptr));
  prov->cache_key = key.hex;
  prov->key_material = key.material;
  for (const auto& [k, v] :
       std::vector<std::pair<std::string, std::string>>{{"target", options.target},
                                                        {"opt_level", std::to_string(options.opt_level)},
                                                        {"t_max", std::to_string(abi::kTMax)},
                                                        {"lm_head", std::string(ir::dtype_name(have))}}) {
    auto kv = std::make_unique<planfb::KeyValueT>();
    kv->key = k;
    kv->value = v;
    prov->options.push_back(std::move(kv));
  }
  const codegen::TargetFeatures& t = out.jit->target();
  auto& target = plan->target = std::make_unique<planfb::TargetT>();
  target->name = options.target;
  target->triple = t.triple;
  target->cpu = t.cpu;
  target->llvm_features = codegen::enabled_features(t);
  runtime::split_target_features(target->llvm_features, target->required, target->unchecked);
  plan->model = runtime::plan_model_identity(file, model_hash);
  out.plan = std::move(plan);
  return out;
}

}  // namespace bitnet::compiler
