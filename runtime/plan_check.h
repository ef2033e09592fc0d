// The bounds check of a plan's graph before it runs: every index (node, value, kernel, weight,
// KV layer) in range, every binding's byte range inside what it points to (the arena, a mapped
// weight), every call's kind, split and work units consistent with its kernel. It checks, and
// never re-derives: the compiler's deep "re-derive and compare" lives in compiler/plan_encode.h.
// A plan that passes cannot make the executor read or write outside its buffers, except through
// kernel code itself, which the plan's checksum and the model/target checks vouch for.
#pragma once

#include "ir/support/expected.h"
#include "plan_generated.h"
#include "runtime/executor.h"

namespace bitnet::runtime {

// The largest arena and t_max a plan may ask for (a corrupt size must not become an allocation).
inline constexpr int64_t kMaxArenaBytes = int64_t{1} << 40;
inline constexpr int64_t kMaxPlanTMax = 65536;

// Needs bindings.kernel_splits, weights and repacked (not the kernels' code).
Status check_graph_plan(const planfb::GraphPlanT& graph, const PlanBindings& bindings);

}  // namespace bitnet::runtime
