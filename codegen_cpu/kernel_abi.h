// The calling convention between compiled kernels and the executor that runs them.
// Header-only plain C types: the lean runtime includes it without linking LLVM, and the
// same ABI holds for kernels loaded later from a plan.
//
// Every kernel has one signature. The executor fills a KernelArgs per graph node and
// calls the kernel on disjoint work ranges [begin, end) from its thread pool; what a
// work unit is (an output row, a head, a token) is fixed per kernel kind (WorkSplit).
#pragma once

#include <cstdint>

namespace bitnet::codegen {

inline constexpr int kMaxKernelInputs = 8;

struct KernelArgs {
  const void* in[kMaxKernelInputs];  // operands in node order: activations, weights (mapped GGUF data)
  void* out;                         // the node's result buffer
  int64_t n_tokens;                  // T of this call
  int64_t pos;                       // position of the first token (rope, attention)
  // Attention: this layer's KV cache, F16, kv_cells * n_head_kv * head_dim halves each,
  // zero-filled when allocated (the attended window is padded to 32 cells, and padding
  // cells must hold finite values). Laid out for decode, each KV head contiguous:
  //   K[g][cell][d]                      at ((g * kv_cells + cell) * head_dim + d)
  //   V[g][cell / 32][d][cell % 32]      at ((g * kv_cells / 32 + cell / 32) * head_dim + d) * 32 + cell % 32
  // K rows are dotted with q; V is transposed in tiles of 32 cells so that each output
  // element is a dot over contiguous cells (as the reference's V^T) while one head's window
  // stays one contiguous stream. Not the reference's layout (runtime/reference/kernels.h).
  void* kv_k;
  void* kv_v;
  int64_t kv_cells;  // cells allocated per layer cache (a multiple of 32, >= pos + n_tokens)
  void* scratch;     // per-thread scratch: scratch + thread * scratch_stride
  int64_t scratch_stride;
  int32_t thread;  // index of the calling thread
  int32_t n_threads;
};

using KernelFn = void (*)(const KernelArgs* args, int64_t begin, int64_t end);

// What [begin, end) counts for a kernel.
enum class WorkSplit : int32_t {
  kRows = 0,    // output features (columns of the result): matmul family
  kTokens = 1,  // rows of the result: norms, quantization, elementwise
  kHeads = 2,   // query heads: attention
};

}  // namespace bitnet::codegen
