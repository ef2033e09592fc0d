// Pass manager (see pass_manager.h).
#include "passes/pass_manager.h"

#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/memory_plan.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>

namespace bitnet::passes {

Status PassManager::run(ir::Graph& graph, const PassOptions& options) const {
  // A misspelt --print-after would otherwise print nothing and look like a pass that did nothing.
  for (const std::string& name : options.print_after) {
    if (std::none_of(passes_.begin(), passes_.end(), [&](const Pass& p) { return p.name == name; })) {
      std::vector<std::string_view> known;
      for (const Pass& p : passes_) {
        if (std::find(known.begin(), known.end(), p.name) == known.end()) known.push_back(p.name);
      }
      return make_error("--print-after: no pass named '{}' (passes: {})", name, fmt::join(known, ", "));
    }
  }
  for (const Pass& pass : passes_) {
    const auto start = std::chrono::steady_clock::now();
    auto status = pass.run(graph);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!status.ok()) return make_error("pass '{}' failed: {}", pass.name, status.error().message);
    auto verified = ir::verify(graph);
    if (!verified.ok()) {
      return make_error("the graph does not verify after pass '{}': {}", pass.name, verified.error().message);
    }
    if (options.time_passes && options.sink) {
      options.sink(fmt::format("pass {:<28} {:8.3f} ms  {} nodes\n", pass.name, ms, graph.nodes().size()));
    }
    const bool print = options.print_after_all || std::find(options.print_after.begin(), options.print_after.end(),
                                                            std::string(pass.name)) != options.print_after.end();
    if (print && options.sink) options.sink(fmt::format("// ----- IR after {} -----\n{}", pass.name, ir::print(graph)));
  }
  return Status::success();
}

PassManager default_pipeline(int64_t t_max) {
  PassManager pm;
  pm.add(share_activation_quantization());  // first: Q/K/V and gate/up then read one quantized value
  pm.add(dead_code_elimination());
  pm.add(fuse_norm());
  pm.add(fuse_norm_quantize());  // needs norm, and the single quantize share-quantize left
  pm.add(fuse_rope_attention());
  pm.add(fuse_gated_ffn());
  pm.add(fuse_residual());  // last: the O and down products are plain matmuls until here
  pm.add(dead_code_elimination());
  pm.add(schedule());
  pm.add(plan_memory_pass(t_max));  // after every rewrite: it plans the final values
  return pm;
}

}  // namespace bitnet::passes
