// `bitnet compile`: compile a model ahead of time into a plan that `bitnet run --plan` and the
// compiler-free `bitnet-rt` run (runtime/plan_model.h), for this CPU or a baseline target.
#include "compiler/cuda_model.h"
#include "compiler/lm_head.h"
#include "compiler/load_model.h"
#include "compiler/plan_compiler.h"
#include "frontend_gguf/output_file.h"
#include "runtime/plan_cache.h"
#include "runtime/plan_files.h"
#include "tools/commands.h"
#include "tools/option_values.h"
#include "tools/pass_options.h"
#include "tools/run_options.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>

namespace bitnet::tools {

namespace {

// `bitnet compile --target cuda...`: the model's CUDA decode step as a plan (runtime/cuda/cuda_plan.h).
template <class Options, class Fail>
void compile_cuda(const Options& o, const Fail& fail, std::chrono::steady_clock::time_point start, int& exit_code) {
  if (o.lm_head != "f16") return fail("--lm-head applies to CPU targets: the CUDA kernels read the F16 head");
  if (o.passes.any()) return fail("pass options apply to CPU targets");
  auto model = runtime::Model::open(o.model);
  if (!model.ok()) return fail(model.error().message);
  auto sm = compiler::cuda_target_sm(o.target);
  if (!sm.ok()) return fail(sm.error().message);
  const int64_t n_ctx =
      o.ctx > 0 ? o.ctx : std::min<int64_t>(static_cast<int64_t>((*model)->config().n_ctx_train), 4096);
  auto hash = runtime::file_content_hash(o.model, "", "model");
  if (!hash.ok()) return fail(hash.error().message);
  auto compiled = compiler::compile_cuda_plan(**model, *hash, *sm, n_ctx, o.cuda_gemm == "mma");
  if (!compiled.ok()) return fail(compiled.error().message);
  if (auto s = runtime::write_plan(o.output, *compiled->plan, compiled->weights); !s.ok())
    return fail(s.error().message);
  const planfb::CudaCodeT& c = *compiled->plan->cuda;
  const double total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (o.verbose) {
    for (const std::string& k : c.kernels) fmt::print("  {}\n", k);
  }
  uint64_t weight_bytes = 0;
  for (const auto& w : compiled->weights) weight_bytes += w.bytes.size();
  fmt::print(
      "compiled {} CUDA kernels for sm_{} (NVRTC {}) in {:.0f} ms ({:.0f} ms compiling), {} cells per sequence\n"
      "wrote {} (CUBIN {}, PTX {}) and {} ({} of repacked weights)\n",
      c.kernels.size(), c.sm, c.nvrtc_version, total_ms, compiled->compile_ms, c.n_ctx, o.output,
      format_size(c.cubin.size()), format_size(c.ptx.size()), o.output + runtime::kSidecarSuffix,
      format_size(weight_bytes));
  exit_code = kExitOk;
}

}  // namespace

void add_compile(CLI::App& app, int& exit_code) {
  struct Options {
    std::string model;
    std::string output;
    std::string target = "host";
    std::string lm_head = "f16";
    int64_t ctx = 0;
    std::string cuda_gemm = "dp4a";
    bool verbose = false;
    PassFlags passes;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("compile", "Compile a model ahead of time into a plan (kernels + schedule)");
  cmd->add_option("-m,--model", o->model, "GGUF model (default: $BITNET_GGUF)")->envname("BITNET_GGUF")->required();
  cmd->add_option("-o,--output", o->output, "plan file to write (PLAN.bnplan; repacked weights go to PLAN.weights)")
      ->required();
  cmd->add_option("--target", o->target,
                  "code target: host (this CPU, all its features) or a baseline that any CPU having it runs: "
                  "x86-64-v3 (AVX2, FMA, F16C) or x86-64-v4 (+AVX-512); or an NVIDIA GPU (BitNet I2_S models, "
                  "kernels through NVRTC): cuda (this machine's GPU) or cuda-sm_80|sm_86|sm_89|sm_90|sm_100|sm_120 "
                  "(a CUBIN for it and PTX that newer GPUs compile)")
      ->check(CLI::IsMember({"host", "x86-64-v3", "x86-64-v4", "cuda", "cuda-sm_80", "cuda-sm_86", "cuda-sm_89",
                             "cuda-sm_90", "cuda-sm_100", "cuda-sm_120"}))
      ->capture_default_str();
  cmd->add_option("-c,--ctx-size", o->ctx,
                  "cuda targets: the K/V cells per sequence the kernels hold (default: the model's context, at most "
                  "4096; at most 1048576)")
      ->check(integer_in(1, kMaxContext));
  cmd->add_option("--cuda-gemm", o->cuda_gemm,
                  "cuda targets: the batched steps' ternary GEMMs with dp4a or on int8 tensor cores (mma; the "
                  "same results, not yet measured on a GPU)")
      ->check(CLI::IsMember({"dp4a", "mma"}))
      ->capture_default_str();
  cmd->add_option("--lm-head", o->lm_head,
                  "the LM head's type: f16 (the model's) or an F16 head requantized to q8_0 or q6_k into the "
                  "sidecar (fewer bytes per decoded token, slightly different logits; opt-in)")
      ->check(CLI::IsMember({"f16", "q8_0", "q6_k"}))
      ->capture_default_str();
  cmd->add_flag("-v,--verbose", o->verbose, "list the kernels with their compile times");
  add_pass_options(*cmd, o->passes);
  cmd->callback([o, &exit_code] {
    exit_code = kExitFailure;
    auto fail = [](std::string_view message) { print_error("compile", message); };
    const auto start = std::chrono::steady_clock::now();
    if (o->target.starts_with("cuda")) return compile_cuda(*o, fail, start, exit_code);
    if (o->ctx > 0) return fail("-c applies to cuda targets: a CPU plan runs any context");
    if (o->cuda_gemm != "dp4a") return fail("--cuda-gemm applies to cuda targets");
    auto lm_head = compiler::parse_lm_head(o->lm_head);
    if (!lm_head.ok()) return fail(lm_head.error().message);
    auto model = compiler::load_model(o->model, {.passes = to_pass_options(o->passes), .lm_head = *lm_head});
    if (!model.ok()) return fail(model.error().message);
    if (auto note = compiler::lm_head_note(**model, *lm_head); !note.empty())
      fmt::print(stderr, "bitnet: note: {}\n", note);
    // No memo: `compile -o` writes the plan and nothing else (not into the plan cache).
    auto hash = runtime::file_content_hash(o->model, "", "model");
    if (!hash.ok()) return fail(hash.error().message);
    auto compiled = compiler::compile_plan(**model, {.target = o->target, .lm_head = *lm_head}, *hash);
    if (!compiled.ok()) return fail(compiled.error().message);
    // A device or FIFO (-o /dev/null) gets the plan but no PLAN.weights beside it (output_file.h).
    const auto kind = gguf::output_kind(o->output);
    const bool to_file = kind.ok() && *kind == gguf::OutputKind::kRegularFile;
    if (auto s = runtime::write_plan(o->output, *compiled->plan, compiled->repacked); !s.ok()) {
      return fail(s.error().message);
    }
    const double total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const planfb::PlanT& plan = *compiled->plan;
    if (o->verbose) {
      for (const auto& k : plan.kernels) fmt::print("  {:8.2f} ms  {:10}  {}\n", k->compile_ms, k->symbol, k->key);
    }
    auto size = runtime::fingerprint_file(o->output);
    const uint64_t plan_bytes = size.ok() ? size->size : runtime::serialize_plan(plan).size();
    fmt::print(
        "compiled {} kernels for {} ({}) in {:.0f} ms (codegen {:.0f} ms, link {:.1f} ms, weight hashes {:.0f} ms)\n"
        "wrote {} ({}; code image {}); cache key {}\n",
        plan.kernels.size(), plan.target->name, plan.target->cpu, total_ms, compiled->compile_ms, compiled->link_ms,
        compiled->weights_ms, o->output, format_size(plan_bytes), format_size(plan.code->image.size()),
        plan.provenance->cache_key);
    for (const runtime::RepackedBlob& blob : compiled->repacked) {
      if (!to_file) {
        fmt::print(stderr, "bitnet: note: '{}' is not a regular file: the sidecar {} ({}) was not written\n", o->output,
                   o->output + runtime::kSidecarSuffix, format_size(blob.bytes.size()));
        continue;
      }
      fmt::print("LM head {} requantized to {} in {:.0f} ms: {} in {}\n", blob.source, blob.dtype, compiled->repack_ms,
                 format_size(blob.bytes.size()), o->output + runtime::kSidecarSuffix);
    }
    exit_code = kExitOk;
  });
}

}  // namespace bitnet::tools
