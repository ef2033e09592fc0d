// The reference interpreter: executes any ir::Graph op by op with the exact reference
// kernels (reference/kernels.h). It is the golden model every pass and backend is tested
// against, so it favours plain code over speed (matmuls are split over threads by rows,
// which leaves results independent of the thread count).
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "ir/graph.h"
#include "reference/kernels.h"
#include "runtime/session.h"
#include "runtime/thread_pool.h"

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace bitnet::reference {

struct InterpreterOptions {
  int64_t n_ctx = 512;  // KV cache positions
  int threads = 1;
  // > 0: between nodes, activations live only in one arena at the offsets of
  // passes::plan_memory(graph, arena_t_max), in the plan's byte layouts; calls are limited to
  // that many tokens. Results are unchanged exactly when the plan is valid (tests use it).
  int64_t arena_t_max = 0;
};

class Interpreter : public runtime::Session {
 public:
  // Binds the graph's weight nodes to the file's tensors (checking type and shape) and
  // allocates the KV cache. `graph` and `file` must outlive the interpreter.
  static Expected<std::unique_ptr<Interpreter>> create(const ir::Graph& graph, const gguf::GgufFile& file,
                                                       const InterpreterOptions& options);
  ~Interpreter() override;

  Expected<std::map<std::string, runtime::Matrix>> run(std::span<const int32_t> tokens) override;
  // Sees the F32 result of each node as it is computed (node index in graph order, the values
  // row-major); returning false stops the run there, leaving the cache partly written
  // (reset() before reusing the session). Used to find the first node that goes non-finite.
  using NodeObserver = std::function<bool(size_t node_index, std::span<const float> values)>;
  Status run_observed(std::span<const int32_t> tokens, const NodeObserver& observe);
  int64_t pos() const override { return pos_; }
  int64_t n_ctx() const override { return n_ctx_; }
  int64_t n_vocab() const override { return n_vocab_; }
  void reset() override { pos_ = 0; }  // cells are overwritten later
  void truncate(int64_t pos) override { pos_ = std::min(pos_, pos); }
  std::string_view backend() const override { return "interp"; }

 private:
  struct Impl;
  explicit Interpreter(std::unique_ptr<Impl> impl);
  Expected<std::map<std::string, runtime::Matrix>> run_impl(std::span<const int32_t> tokens,
                                                            const NodeObserver* observe);
  std::unique_ptr<Impl> impl_;
  int64_t pos_ = 0;
  int64_t n_ctx_ = 0;
  int64_t n_vocab_ = 0;
};

}  // namespace bitnet::reference
