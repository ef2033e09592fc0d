// The compiled executor: runs an optimised graph whose kernel nodes have compiled kernels
// (codegen_cpu/kernel_abi.h), with every activation at its planned offset in one arena,
// a KV cache per layer, and a persistent worker pool that meets at a barrier between
// kernels. Nothing is allocated per token. Links no compiler: the kernels come in as
// function pointers (from the JIT, or later from a plan).
#pragma once

#include "codegen_cpu/kernel_abi.h"
#include "frontend_gguf/gguf_file.h"
#include "ir/graph.h"
#include "runtime/session.h"

#include <memory>
#include <vector>

namespace bitnet::runtime {

struct ExecutorOptions {
  int64_t n_ctx = 512;
  int threads = 1;
  int64_t t_max = 512;                   // tokens per internal step; longer batches run in chunks
  int64_t scratch_bytes_per_thread = 0;  // on top of what the executor reserves itself
  // Weights that are not in the model file (repacked into a plan's sidecar), by the tensor
  // name their weight nodes use; looked up before the file. They must outlive the executor.
  std::map<std::string, const void*> extra_weights;
  std::string backend_name = "jit";  // what backend() reports ("plan" for kernels from a plan)
  // Time every kernel and barrier per thread and print a summary by op on destruction
  // (also switched on by BITNET_PROFILE=1).
  bool profile = false;
};

// Per-thread scratch the kernels get for a context of n_ctx tokens (attention keeps a block of
// query rows' probabilities over the cells there), the same for JIT and plan sessions.
inline int64_t kernel_scratch_bytes(int64_t n_ctx) {
  return 64 * 1024 + n_ctx * 16;
}

// The multiple a kernel node's thread ranges are split on: whole KV-head groups for attention
// (each thread appends only its own KV heads), 64 rows for the matmul family (SIMD row
// blocks), 1 otherwise. Plans record it in their schedule.
int64_t split_granularity(const ir::Graph& graph, const ir::Node& node);

class Executor : public Session {
 public:
  // `kernels[i]` is the kernel of graph node i (null for nodes that need none). `graph` and
  // `file` must outlive the executor.
  static Expected<std::unique_ptr<Executor>> create(const ir::Graph& graph, const gguf::GgufFile& file,
                                                    std::vector<codegen::KernelFn> kernels,
                                                    const ExecutorOptions& options);
  ~Executor() override;

  Expected<std::map<std::string, Matrix>> run(std::span<const int32_t> tokens) override;
  int64_t pos() const override { return pos_; }
  int64_t n_ctx() const override { return n_ctx_; }
  int64_t n_vocab() const override { return n_vocab_; }
  void reset() override { pos_ = 0; }
  void truncate(int64_t pos) override { pos_ = std::min(pos_, pos); }
  std::string_view backend() const override { return backend_name_; }

  int64_t arena_bytes() const;

 private:
  struct Impl;
  explicit Executor(std::unique_ptr<Impl> impl);
  Status run_chunk(std::span<const int32_t> tokens, std::map<std::string, Matrix>& outputs, bool last_chunk);
  std::unique_ptr<Impl> impl_;
  int64_t pos_ = 0;
  int64_t n_ctx_ = 0;
  int64_t n_vocab_ = 0;
  std::string backend_name_;
};

}  // namespace bitnet::runtime
