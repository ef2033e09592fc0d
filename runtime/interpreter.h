// The reference interpreter: executes any ir::Graph op by op with the exact reference
// kernels (runtime/reference). It is the golden model every pass and backend is tested
// against, so it favours plain code over speed (matmuls are split over threads by rows,
// which leaves results independent of the thread count).
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "ir/graph.h"
#include "runtime/reference/kernels.h"
#include "runtime/thread_pool.h"

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace bitnet::runtime {

// A row-major float matrix (outputs, logits).
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> data;
  std::span<const float> row(int64_t r) const { return {data.data() + r * cols, static_cast<size_t>(cols)}; }
};

struct InterpreterOptions {
  int64_t n_ctx = 512;  // KV cache positions
  int threads = 1;
};

class Interpreter {
 public:
  // Binds the graph's weight nodes to the file's tensors (checking type and shape) and
  // allocates the KV cache. `graph` and `file` must outlive the interpreter.
  static Expected<std::unique_ptr<Interpreter>> create(const ir::Graph& graph, const gguf::GgufFile& file,
                                                       const InterpreterOptions& options);
  ~Interpreter();

  // Runs the graph for `tokens` at positions pos()..pos()+n-1, appending to the KV cache.
  // Returns the graph outputs by name. Fails (changing nothing) on an empty batch, a token
  // id outside the vocabulary, or a batch that does not fit the context.
  Expected<std::map<std::string, Matrix>> run(std::span<const int32_t> tokens);

  int64_t pos() const { return pos_; }     // tokens in the KV cache
  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_vocab() const { return n_vocab_; }
  void reset() { pos_ = 0; }               // forget the cache (cells are overwritten later)
  // Drops the cache entries from `pos` on (for sliding-window evaluation).
  void truncate(int64_t pos) { pos_ = std::min(pos_, pos); }

 private:
  struct Impl;
  explicit Interpreter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int64_t pos_ = 0;
  int64_t n_ctx_ = 0;
  int64_t n_vocab_ = 0;
};

}  // namespace bitnet::runtime
