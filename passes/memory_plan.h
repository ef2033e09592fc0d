// Static memory planning: every activation value of a graph gets a byte range in one arena,
// sized for calls of up to t_max tokens, with values whose lifetimes do not overlap sharing
// memory. The executor allocates the arena once and never allocates during a call.
#pragma once

#include "passes/pass_manager.h"
#include "schema/abi.h"

namespace bitnet::passes {

using abi::kArenaAlignment;  // every slot starts on a cache line

// Where a value lives. Weights (mapped from the GGUF) have no slot (offset -1).
struct Slot {
  int64_t offset = -1;
  int64_t bytes = 0;       // reserved for t_max tokens, a multiple of kArenaAlignment
  int32_t first = -1;      // index of the defining node
  int32_t last = -1;       // index of the last node that reads it (graph end for outputs)
  ir::ValueId alias = -1;  // an `output` value shares the slot of the value it marks
};

struct MemoryPlan {
  int64_t t_max = 0;
  int64_t arena_bytes = 0;
  std::vector<Slot> slots;  // by value id
};

// Plans the arena: live ranges by node order (a value lives from its definition to its last
// reader, inclusive, so a result never shares memory with an operand of its own node), then
// the largest values are placed first, each at the lowest offset free of every placed value
// whose range overlaps its own. Values marked as outputs live to the end of the graph.
Expected<MemoryPlan> plan_memory(const ir::Graph& graph, int64_t t_max);

// The pass: records `t_max` and `arena_bytes` as graph properties (dump-ir shows them); the
// compiler stores plan_memory()'s slots in the plan.
Pass plan_memory_pass(int64_t t_max = abi::kTMax);

}  // namespace bitnet::passes
