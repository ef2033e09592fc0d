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
  int64_t t_max = 512;                  // tokens per internal step; longer batches run in chunks
  int64_t scratch_bytes_per_thread = 0;  // on top of what the executor reserves itself
};

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
  std::string_view backend() const override { return "jit"; }

  int64_t arena_bytes() const;

 private:
  struct Impl;
  explicit Executor(std::unique_ptr<Impl> impl);
  Status run_chunk(std::span<const int32_t> tokens, std::map<std::string, Matrix>& outputs, bool last_chunk);
  std::unique_ptr<Impl> impl_;
  int64_t pos_ = 0;
  int64_t n_ctx_ = 0;
  int64_t n_vocab_ = 0;
};

}  // namespace bitnet::runtime
