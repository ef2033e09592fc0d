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

// The pipeline `dump-ir --stage optimized` and the compilers start from.
PassManager default_pipeline();

// Individual passes.
Pass dead_code_elimination();
Pass share_activation_quantization();

}  // namespace bitnet::passes
