// Compiling a model into a plan: the JIT compiles both graphs (kernels they share once,
// every object captured), lld links the objects into one shared object, and the plan records
// everything else the runtime needs (runtime/plan_*.h). Also the plan cache key, which names
// everything that changes the generated code.
#pragma once

#include "codegen_cpu/jit.h"
#include "plan_generated.h"
#include "runtime/model.h"
#include "runtime/plan_format.h"
#include "runtime/plan_writer.h"
#include "schema/abi.h"

#include <memory>
#include <string>
#include <vector>

namespace bitnet::compiler {

struct PlanCompileOptions {
  std::string target = "host";  // host | x86-64-v3 | x86-64-v4
  int opt_level = 3;
  int compile_threads = 2;
  // The LM head's type (--lm-head): the model must have been loaded with the same option
  // (compiler::LoadOptions::lm_head); a requantized head goes into the sidecar.
  ir::DType lm_head = ir::DType::F16;
  // Record each weight's xxh3-64 (a plan file does; the JIT's in-memory plan, bound to the model
  // it was compiled from, skips the cost).
  bool hash_weights = true;
};

// The cache key: xxh3-128 of `material`, a text of "name=value" lines (the plan stores both).
struct PlanKey {
  std::string material;
  std::string hex;
};
// Fails for an unknown target (or an invalid BITNET_CPU_DISABLE).
Expected<PlanKey> plan_cache_key(const PlanCompileOptions& options, const runtime::Hash128& model_hash,
                                 uint64_t model_size);

struct CompiledPlan {
  std::unique_ptr<planfb::PlanT> plan;
  std::vector<runtime::RepackedBlob> repacked;  // for the sidecar: the requantized LM head, if any
  std::unique_ptr<codegen::Jit> jit;            // owns the in-process kernels below
  codegen::CompiledGraph compiled[2];           // graph(false), graph(true): runnable now
  double compile_ms = 0;
  double link_ms = 0;
  double weights_ms = 0;  // hashing each weight tensor
  double repack_ms = 0;   // requantizing the LM head
};

// Compiles `model` (whose file has content hash `model_hash`) for `options.target`.
Expected<CompiledPlan> compile_plan(const runtime::Model& model, const PlanCompileOptions& options,
                                    const runtime::Hash128& model_hash);

// Whether code compiled for `target` can run on this CPU: the check a plan's code gets before
// it is loaded (runtime::check_cpu_features, on the features the plan would record), for the
// JIT to run before it compiles anything. Fails naming the missing features.
Status check_target_runs_here(const std::string& target);

// GNU build id of the running executable (hex), or a hash of its file when it has none.
std::string compiler_build_id();

}  // namespace bitnet::compiler
