// CUDA plans: a model's decode step compiled ahead of time for one GPU architecture
// (`bitnet compile --target cuda-sm_90`) and run without a compiler (`--plan`, bitnet-rt). The
// plan is a Plan (schema/plan.fbs) with a CudaCode instead of CPU kernels, code and graphs,
// the same footer, model identity and provenance, and the repacked weights in its sidecar.
// Loading makes the same checks as a CPU plan (runtime/plan_model.h: checksum, Verifier, the
// model's content hash, the sidecar's), then the program's bounds (CudaProgram::check); the
// device refuses code for another architecture unless its PTX can be compiled for it.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "plan_generated.h"
#include "runtime/cuda/cuda_program.h"
#include "runtime/cuda/cuda_session.h"
#include "runtime/model.h"
#include "runtime/plan_model.h"
#include "runtime/plan_writer.h"

namespace bitnet::runtime::cuda {

// The plan's CUDA part for `program`, and its repacked weights as sidecar blobs (made now, in
// order); weights that are a GGUF tensor as stored stay in the model file.
Expected<std::unique_ptr<planfb::CudaCodeT>> encode_cuda_code(const CudaProgram& program,
                                                              std::vector<RepackedBlob>& weights);

// The program a plan holds; its weights are the sidecar's byte ranges `weights` (in the order
// encode_cuda_code wrote them), which `keepalive` keeps mapped, and the tensors of `file` (the
// plan's model, whose content its hash has checked), which must outlive the program's uploads.
Expected<std::shared_ptr<const CudaProgram>> decode_cuda_code(const planfb::CudaCodeT& code,
                                                              std::vector<std::span<const uint8_t>> weights,
                                                              std::shared_ptr<const void> keepalive,
                                                              const gguf::GgufFile& file);

// Makes `model`'s sessions run `program` (specialised to program.n_ctx cells per sequence).
void install_cuda_program(Model& model, std::shared_ptr<const CudaProgram> program,
                          std::shared_ptr<CudaBackend> backend, bool use_graphs = true);

// Loads a CUDA plan to run on `device` (null: the CUDA driver's device 0). The same failures
// as load_model_from_plan's.
Expected<std::unique_ptr<Model>> load_cuda_model_from_plan(const std::string& plan_path, const PlanRunOptions& options,
                                                           std::unique_ptr<Device> device,
                                                           PlanLoadFailure* failure = nullptr);

}  // namespace bitnet::runtime::cuda
