// The CUDA backend from the compiler's side: a model's decode step as a runtime CudaProgram
// (codegen_cuda's decode program, its kernels through NVRTC for the device's SM, its weights
// repacked from the GGUF), and `--backend cuda`: the model's sessions made CudaSessions on a
// device, with a program compiled per context size when a session first needs it.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "bitnet/log.h"
#include "codegen_cuda/decode_program.h"
#include "compiler/cuda_module_cache.h"
#include "runtime/cuda/cuda_program.h"
#include "runtime/cuda/device.h"
#include "runtime/model.h"
#include "runtime/plan_format.h"
#include "runtime/plan_writer.h"

namespace bitnet::compiler {

// The decode program's configuration of a model (`config` read from `file`) for `n_ctx` cells
// per sequence (rounded up to a multiple of 32; at most 2^20), read from the model's optimised IR
// (codegen_cuda/decode_graph.h: the CPU compilers' graph, its fused ops matched to the kernels);
// an error for architectures it does not run (not BitNet: no sub-norms or not NEOX RoPE) or for
// the first op the kernels do not run. The LM head reads the matrix the graph's LM head reads
// (output.weight where the architecture uses one, else the embedding); a Q8_0 table gets the
// Q8_0 kernels.
Expected<codegen_cuda::DecodeModelConfig> cuda_decode_config(const gguf::ModelConfig& config,
                                                             const gguf::GgufFile& file, int64_t n_ctx);

// Whether the CUDA decode program runs this model: BitNet architectures (sub-norms, NEOX RoPE)
// with I2_S projections, F32 norms, an F16 or Q8_0 embedding and LM head (the embedding or
// output.weight). The error names what does not fit.
Status check_cuda_support(const runtime::Model& model);

struct CudaCompileOptions {
  int sm = 0;  // NVRTC's target (CUBIN for it, and its PTX); 0: the CUDA C++ only (the host emulator)
  // Programmatic dependent launch points (sm_90+; the kernels are correct without them).
  bool programmatic_launch = true;
  // Tokens one batched step runs at most (prompts, several sequences' decode tokens); 1: one
  // token per step only. Scratch memory grows with it (the attention scores: max_tokens * n_head *
  // n_ctx floats).
  int max_tokens = 64;
  // The batched step's GEMMs on int8 tensor cores (codegen_cuda::DecodeProgramOptions::mma_gemm).
  bool mma_gemm = false;
  // NVRTC's output through the plan cache (cuda_module_cache.h; an empty cache_dir: none). An
  // empty note becomes the kernels, cells and model this program was compiled for.
  CudaModuleCacheOptions cache;
};

// The decode program of `model` for `n_ctx` cells per sequence (rounded up to a multiple of
// 32). Its weight bytes are read from the model's mapped GGUF when the backend uploads them,
// so `model` must outlive the program.
Expected<std::shared_ptr<const runtime::cuda::CudaProgram>> compile_cuda_program(const runtime::Model& model,
                                                                                 int64_t n_ctx,
                                                                                 const CudaCompileOptions& options);

// A CUDA plan (runtime/cuda/cuda_plan.h) of `model`, whose file has content hash `model_hash`,
// for `n_ctx` cells per sequence: the program compiled for `sm` (0: CUDA C++ only, for the host
// emulator), its weights repacked for the sidecar.
struct CompiledCudaPlan {
  std::unique_ptr<planfb::PlanT> plan;
  std::vector<runtime::RepackedBlob> weights;
  double compile_ms = 0;
};
Expected<CompiledCudaPlan> compile_cuda_plan(const runtime::Model& model, const runtime::Hash128& model_hash, int sm,
                                             int64_t n_ctx, bool mma_gemm = false);

// "cuda-sm_90" -> 90; "cuda": the SM of the CUDA driver's device 0.
Expected<int> cuda_target_sm(std::string_view target);

struct CudaBackendOptions {
  // The device to run on; null: the CUDA driver's device 0 (runtime/cuda/cuda_driver_device.h).
  std::unique_ptr<runtime::cuda::Device> device;
  bool use_graphs = true;
  int max_tokens = 64;    // tokens per batched step (CudaCompileOptions::max_tokens)
  bool mma_gemm = false;  // CudaCompileOptions::mma_gemm
  // The plan cache's root, where compiled kernels are kept (cuda_module_cache.h); empty: none.
  std::string cache_dir;
  bool verbose = false;  // compile and upload times at LogLevel::kInfo
  std::function<void(LogLevel level, std::string_view line)> log;
};

// Makes `model`'s sessions CudaSessions (checks the model, opens the device); fails, leaving
// the model as it was, when either cannot be done.
Status attach_cuda_backend(runtime::Model& model, CudaBackendOptions options);

}  // namespace bitnet::compiler
