// Running a plan: every refusal check that needs this machine or the model (CPU features, the
// model's content hash, the sidecar's hash, the graphs re-derived by this runtime), then the
// code loaded with dlopen and a Model whose sessions run the plan's kernels on the executor.
// Nothing here needs a compiler.
#pragma once

#include "runtime/model.h"
#include "runtime/plan_format.h"

#include <optional>
#include <string>

namespace bitnet::runtime {

struct PlanRunOptions {
  std::string model_path;             // empty: the path the plan recorded at compile time
  std::string memo_dir;               // where content hashes are memoised (plan_files.h); may be empty
  std::optional<Hash128> model_hash;  // already known to the caller (skips hashing the model)
  ModelOptions model;                 // tokenizer override (the pass options are unused: no passes run)
};

// What loading took, for `bitnet run -v` and the benchmarks.
struct PlanLoadTimes {
  double read_ms = 0;    // map the file, checksum, Verifier, unpack
  double checks_ms = 0;  // CPU features, model and sidecar hashes (memoised), graphs re-derived
  double code_ms = 0;    // memfd + dlopen + dlsym
  double model_ms = 0;   // GGUF parse, tokenizer
  int64_t plan_bytes = 0;
};

// Why load_model_from_plan failed: the plan was refused (a check of the plan itself, against
// this machine or against the model failed: recompiling it may help), or the model could not
// be opened with the options given, e.g. a bad --tokenizer file (not the plan's fault:
// recompiling would fail the same way).
enum class PlanLoadFailure { kNone, kPlanRefused, kModel };

Expected<std::unique_ptr<Model>> load_model_from_plan(const std::string& plan_path, const PlanRunOptions& options,
                                                      PlanLoadTimes* times = nullptr,
                                                      PlanLoadFailure* failure = nullptr);

}  // namespace bitnet::runtime
