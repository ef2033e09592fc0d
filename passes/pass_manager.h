// Passes are small named IR-to-IR rewrites; the pass manager runs a pipeline of them,
// verifying the graph after each one, and can print the IR after a pass and time them.
#pragma once

#include "ir/graph.h"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::passes {

struct Pass {
  std::string_view name;
  std::string_view summary;  // one line: what it does and why it is legal
  std::function<Status(ir::Graph&)> run;
};

struct PassOptions {
  bool print_after_all = false;
  std::vector<std::string> print_after;  // pass names
  bool time_passes = false;
  // Where printed IR and timings go (stderr in the tools).
  std::function<void(std::string_view)> sink;
};

class PassManager {
 public:
  void add(Pass pass) { passes_.push_back(std::move(pass)); }
  const std::vector<Pass>& passes() const { return passes_; }
  // Runs every pass in order; fails with the pass's name when a pass fails or leaves a
  // graph that does not verify.
  Status run(ir::Graph& graph, const PassOptions& options = {}) const;

 private:
  std::vector<Pass> passes_;
};

// The pipeline `dump-ir --stage optimized`, the runtime and the compilers start from: share
// quantization, fuse (norms, QKV + attention, gated FFN, residual adds), then schedule and plan
// memory for calls of up to `t_max` tokens.
PassManager default_pipeline(int64_t t_max = abi::kTMax);

// Individual passes (plan-memory and the schedule's queries are in memory_plan.h and schedule.h).
Pass dead_code_elimination();
Pass share_activation_quantization();
Pass fuse_norm();
Pass fuse_norm_quantize();
Pass fuse_rope_attention();
Pass fuse_gated_ffn();
Pass fuse_residual();
Pass schedule();  // records the kernel count

}  // namespace bitnet::passes
