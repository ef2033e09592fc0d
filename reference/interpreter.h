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
  int64_t n_ctx = 512;  // KV cache positions of all sequences
  int threads = 1;
  // > 0: between nodes, activations live only in one arena at the offsets of
  // passes::plan_memory(graph, arena_t_max), in the plan's byte layouts; calls are limited to
  // that many tokens. Results are unchanged exactly when the plan is valid (tests use it).
  int64_t arena_t_max = 0;
  int32_t n_seq_max = 1;  // sequences: KV regions of n_ctx / n_seq_max positions
};

// Many sequences: a batch runs as each of its sequences alone, one after another, each with its
// own KV region (the semantics the executor must reproduce while running them together).
class Interpreter : public runtime::SequenceSession {
 public:
  // Binds the graph's weight nodes to the file's tensors (checking type and shape) and
  // allocates the KV cache. `graph` and `file` must outlive the interpreter.
  static Expected<std::unique_ptr<Interpreter>> create(const ir::Graph& graph, const gguf::GgufFile& file,
                                                       const InterpreterOptions& options);
  ~Interpreter() override;

  // Sees the F32 result of each node as it is computed (node index in graph order, the values
  // row-major); returning false stops the run there, leaving the cache partly written
  // (reset() before reusing the session). Used to find the first node that goes non-finite.
  using NodeObserver = std::function<bool(size_t node_index, std::span<const float> values)>;
  // Runs `tokens` of sequence 0 at positions pos().. (one call, no chunking).
  Status run_observed(std::span<const int32_t> tokens, const NodeObserver& observe);
  std::string_view backend() const override { return "interp"; }

 protected:
  Status run_layout(const runtime::BatchLayout& layout, runtime::Outputs& out) override;
  void copy_cells(int32_t from_seq, int32_t to_seq, int64_t p0, int64_t p1) override;
  void move_cells(int32_t seq, int64_t from, int64_t to, int64_t n) override;

 private:
  struct Impl;
  Interpreter(std::unique_ptr<Impl> impl, const InterpreterOptions& options, int64_t n_vocab);
  // One sequence's rows: tokens at pos0.. in KV region `seq`; `selected` (rows of `tokens`)
  // for select_rows, or null for the last row.
  Expected<runtime::Outputs> run_rows(std::span<const int32_t> tokens, int64_t pos0, int32_t seq,
                                      const std::vector<int64_t>* selected, const NodeObserver* observe);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet::reference
