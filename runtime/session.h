// A running model: the KV cache and the code that advances it. Two implementations: the
// reference interpreter (reference/interpreter.h) and the compiled executor
// (runtime/executor.h). Generation and evaluation work with either.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::runtime {

// A row-major float matrix (outputs, logits).
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> data;
  std::span<const float> row(int64_t r) const { return {data.data() + r * cols, static_cast<size_t>(cols)}; }
};

class Session {
 public:
  virtual ~Session() = default;
  // Runs the graph for `tokens` at positions pos()..pos()+n-1, appending to the KV cache,
  // and returns the outputs by name. Fails, changing nothing, on an empty batch, a token
  // outside the vocabulary, or a batch that does not fit the context.
  virtual Expected<std::map<std::string, Matrix>> run(std::span<const int32_t> tokens) = 0;
  virtual int64_t pos() const = 0;
  virtual int64_t n_ctx() const = 0;
  virtual int64_t n_vocab() const = 0;
  virtual void reset() = 0;                      // forget the cache
  virtual void truncate(int64_t pos) = 0;        // drop cache entries from `pos` on
  virtual std::string_view backend() const = 0;  // "interp" or "jit"
};

// Checks a batch against the vocabulary and the free context (shared by both backends).
Status check_batch(std::span<const int32_t> tokens, int64_t pos, int64_t n_ctx, int64_t n_vocab);

}  // namespace bitnet::runtime
