// Static memory planning: every activation value of a graph gets a byte range in one arena,
// sized for calls of up to t_max tokens, with values whose lifetimes do not overlap sharing
// memory. The executor allocates the arena once and never allocates during a call.
#pragma once

#include "passes/pass_manager.h"

namespace bitnet::passes {

inline constexpr int64_t kArenaAlignment = 64;  // every slot starts on a cache line

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

// Byte layout of one value in its slot, for a call of n_tokens tokens:
//   f32 [T, N]  : float[T][N]
//   i32 [T]     : int32[T] (the token ids)
//   i8q [T, K]  : int8 q[T][K], then float scale[T] at byte T*K, then int32 sum[T] at byte
//                 T*K + 4*T (per token row: the absmax scale and the sum of that row's q, as
//                 runtime::ref::I8Row). The compiled kernels (codegen_cpu/kernel_abi.h) use it too.
inline int64_t i8q_scales_offset(int64_t n_tokens, int64_t k) {
  return n_tokens * k;
}
inline int64_t i8q_sums_offset(int64_t n_tokens, int64_t k) {
  return n_tokens * k + 4 * n_tokens;
}
// Bytes a value of `type` needs for n_tokens tokens (before alignment); -1 for weight types.
int64_t value_bytes(const ir::Type& type, int64_t n_tokens);

// Plans the arena: live ranges by node order (a value lives from its definition to its last
// reader, inclusive, so a result never shares memory with an operand of its own node), then
// the largest values are placed first, each at the lowest offset free of every placed value
// whose range overlaps its own. Values marked as outputs live to the end of the graph.
Expected<MemoryPlan> plan_memory(const ir::Graph& graph, int64_t t_max);

// The pass: records `t_max` and `arena_bytes` as graph properties (dump-ir shows them); the
// executor calls plan_memory() for the offsets.
Pass plan_memory_pass(int64_t t_max = 512);

}  // namespace bitnet::passes
