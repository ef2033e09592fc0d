// The ABI between compiled kernels and the executor that runs them: the facts the compiler
// and the runtime must agree on, defined once. Plain C++ types and constants, no logic: the
// op table (ir/ops.h), the passes, both code generators and the lean runtime include it,
// and plans (schema/plan.fbs) store values of these types.
//
// Every kernel has one signature. The executor fills a KernelArgs per call and runs the
// kernel on disjoint work ranges [begin, end) from its thread pool; what a work unit is (an
// output feature, a head, a token) is fixed per op (WorkSplit, from the op table).
#pragma once

#include <cstdint>

namespace bitnet::abi {

// What [begin, end) of a kernel call counts. The values are stored in plans
// (planfb::WorkSplit has the same numbering; runtime/plan_reader.cpp asserts it).
enum class WorkSplit : int32_t {
  kRows = 0,    // output features (columns of the result): matmul family; bits independent of threads
  kTokens = 1,  // rows of the result: embed, norms, quantization, rope, softmax, elementwise
  kHeads = 2,   // query heads: attention (each thread appends only its own KV head groups)
};

inline constexpr int kMaxKernelInputs = 8;

// Tokens per executor step: activations are laid out for this many rows, longer batches run
// in chunks of it. Part of every plan's layout and of the plan cache key.
inline constexpr int64_t kTMax = 512;

// Rows of logits one call can return from a graph that selects them (select_rows: R <= this),
// as llama.cpp's n_outputs_max; the graph of all logits returns T rows.
inline constexpr int64_t kMaxOutputRows = 64;

// Row-split thread ranges are multiples of this many output features (SIMD row blocks).
inline constexpr int64_t kRowSplitGranularity = 64;

// KV cache cells are allocated in multiples of this: attention reads whole windows of it.
inline constexpr int64_t kKvCellMultiple = 32;
inline constexpr int64_t kv_cells_for(int64_t n_ctx) {
  return (n_ctx + kKvCellMultiple - 1) / kKvCellMultiple * kKvCellMultiple;
}

// Where KV head g's element d of cell `cell` is in a layer cache of kv_cells cells (the layouts
// KernelArgs describes), in halves.
inline constexpr int64_t kv_k_index(int64_t g, int64_t cell, int64_t d, int64_t kv_cells, int64_t head_dim) {
  return (g * kv_cells + cell) * head_dim + d;
}
inline constexpr int64_t kv_v_index(int64_t g, int64_t cell, int64_t d, int64_t kv_cells, int64_t head_dim) {
  return ((g * kv_cells / kKvCellMultiple + cell / kKvCellMultiple) * head_dim + d) * kKvCellMultiple +
         cell % kKvCellMultiple;
}

// Per-thread scratch a kernel may use for a context of n_ctx cells (attention keeps a block
// of query rows' probabilities over the cells there).
inline constexpr int64_t kernel_scratch_bytes(int64_t n_ctx) {
  return 64 * 1024 + n_ctx * 16;
}

// Quantized activations (i8q[T, K], the result of quantize_i8 and norm_quantize), for a call
// of T tokens: int8 q[T][K], then float scale[T] at byte T*K, then int32 sum[T] at byte
// T*K + 4*T (per token row: the absmax scale and the sum of that row's q, as the reference
// kernels' I8Row).
inline constexpr int64_t i8q_scales_offset(int64_t n_tokens, int64_t k) {
  return n_tokens * k;
}
inline constexpr int64_t i8q_sums_offset(int64_t n_tokens, int64_t k) {
  return n_tokens * k + 4 * n_tokens;
}
inline constexpr int64_t i8q_bytes(int64_t n_tokens, int64_t k) {
  return i8q_sums_offset(n_tokens, k) + 4 * n_tokens;
}

// Every activation slot starts on a cache line.
inline constexpr int64_t kArenaAlignment = 64;

struct KernelArgs {
  const void* in[kMaxKernelInputs];  // operands in node order: activations, weights (mapped data)
  void* out;                         // the call's result buffer
  int64_t n_tokens;                  // T of this call
  int64_t pos;                       // position of the first token (rope, attention)
  // Attention: this layer's KV cache, F16, kv_cells * n_head_kv * head_dim halves each,
  // zero-filled when allocated (the attended window is padded to kKvCellMultiple cells, and
  // padding cells must hold finite values). Laid out for decode, each KV head contiguous:
  //   K[g][cell][d]                      at ((g * kv_cells + cell) * head_dim + d)
  //   V[g][cell / 32][d][cell % 32]      at ((g * kv_cells / 32 + cell / 32) * head_dim + d) * 32 + cell % 32
  // K rows are dotted with q; V is transposed in tiles of 32 cells so that each output
  // element is a dot over contiguous cells (as the reference's V^T) while one head's window
  // stays one contiguous stream. Not the reference's layout (reference/kernels.h).
  void* kv_k;
  void* kv_v;
  int64_t kv_cells;  // cells allocated per layer cache (kv_cells_for(n_ctx), >= pos + n_tokens)
  // Per-thread scratch: scratch + thread * scratch_stride, kernel_scratch_bytes(n_ctx) plus the
  // plan's GraphPlan.kernel_scratch_bytes; a kernel may use all of it during its call.
  void* scratch;
  int64_t scratch_stride;
  int32_t thread;  // index of the calling thread
  int32_t n_threads;
  // Float matmuls: 1 when each of the n_tokens rows is a sequence of its own with one token
  // (batched decode, or the logits rows of several sequences): every row then gets the
  // arithmetic the kernel uses for n_tokens == 1 (bit-identical to calling it row by row),
  // with the weights read once for all rows. 0: the rows are one sequence's tokens.
  int32_t decode_rows;
};

using KernelFn = void (*)(const KernelArgs* args, int64_t begin, int64_t end);

}  // namespace bitnet::abi
