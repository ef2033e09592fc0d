// Running a plan: every refusal check that needs this machine or the model (CPU features, the
// model's content hash, the sidecar's hash, the bounds of every slot, binding and index of the
// schedule), then the code loaded with dlopen and a Model whose sessions run the plan's
// schedule on the executor. The JIT runs its in-memory plan through the same checks and
// executor (install_plan_backend). Nothing here needs a compiler.
#pragma once

#include "frontend_gguf/mapped_file.h"
#include "plan_generated.h"
#include "runtime/executor.h"
#include "runtime/model.h"
#include "runtime/plan_format.h"

#include <memory>
#include <span>
#include <vector>

#include <optional>
#include <string>

namespace bitnet::runtime {

struct PlanRunOptions {
  std::string model_path;             // empty: the path the plan recorded at compile time
  std::string memo_dir;               // where content hashes are memoised (plan_files.h); may be empty
  std::optional<Hash128> model_hash;  // already known to the caller (skips hashing the model)
  ModelOptions model;                 // tokenizer override
};

// What loading took, for `bitnet run -v` and the benchmarks.
struct PlanLoadTimes {
  double read_ms = 0;    // map the file, checksum, Verifier, unpack
  double checks_ms = 0;  // CPU features, model and sidecar hashes (memoised), model open, graph checks
  double code_ms = 0;    // memfd + dlopen + dlsym
  double model_ms = 0;   // GGUF parse, tokenizer
  int64_t plan_bytes = 0;
};

// Why load_model_from_plan failed: the plan was refused (a check of the plan itself, against
// this machine or against the model failed: recompiling it may help), or the model could not
// be opened with the options given, e.g. a bad --tokenizer file (not the plan's fault:
// recompiling would fail the same way).
enum class PlanLoadFailure { kNone, kPlanRefused, kModel };

// The checks every plan's loading makes (the CUDA backend's too, runtime/cuda/cuda_plan.h): the
// model at `model_path` is the one the plan was compiled for (content hash and size); the
// sidecar beside the plan is the one it was written with (size and hash), mapped, with the
// byte range of each of its weights appended to `weights` (a plan without one: null).
Status check_plan_model(const planfb::PlanT& plan, const std::string& model_path, const PlanRunOptions& options);
Expected<std::shared_ptr<const gguf::MappedFile>> open_plan_sidecar(const planfb::PlanT& plan,
                                                                    const std::string& plan_path,
                                                                    const PlanRunOptions& options,
                                                                    std::vector<std::span<const uint8_t>>& weights);

Expected<std::unique_ptr<Model>> load_model_from_plan(const std::string& plan_path, const PlanRunOptions& options,
                                                      PlanLoadTimes* times = nullptr,
                                                      PlanLoadFailure* failure = nullptr);

// The plan-wide checks of the graphs (plan_check.h for each, and their nodes type-checked as
// IR); fills bindings.kernel_splits from the plan's kernels. Needs no code loaded.
// Returns the two graphs as IR (last-token, all logits), for Model::set_graphs.
struct PlanGraphs {
  ir::Graph last;
  ir::Graph all;
};
Expected<PlanGraphs> check_plan_graphs(const planfb::PlanT& plan, PlanBindings& bindings);

struct PlanBackendOptions {
  std::string backend_name = "plan";      // what sessions report as their backend
  std::shared_ptr<const void> keepalive;  // what the bindings point into (loaded code, JIT, blobs)
};

// Makes `model`'s sessions executors of `plan`'s graphs with `bindings` (checked by
// check_plan_graphs, kernels bound).
Status install_plan_backend(Model& model, std::shared_ptr<const planfb::PlanT> plan,
                            std::shared_ptr<const PlanBindings> bindings, const PlanBackendOptions& options);

}  // namespace bitnet::runtime
