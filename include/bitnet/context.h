// A Context: the KV cache of up to n_seq_max sequences and the code that advances them. Use
// one Context from one thread at a time (it is not synchronised); many Contexts of one Model
// may run on different threads at once.
#pragma once

#include "bitnet/export.h"

#include "bitnet/batch.h"
#include "bitnet/model.h"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace bitnet {

struct ContextParams {
  int64_t n_ctx = 0;        // cells of all sequences; 0: the training context capped at 4096
  int32_t n_seq_max = 1;    // sequences; each gets n_ctx / n_seq_max cells
  int threads = 0;          // 0: the CPUs this process may use, at most 8
  bool all_logits = false;  // every token's logits (perplexity) instead of the wanted rows
};

class BITNET_API Context {
 public:
  static Result<std::unique_ptr<Context>> create(std::shared_ptr<const Model> model, const ContextParams& params = {});
  ~Context();

  // Runs the batch. Fails, changing nothing, on an empty or too large batch (n_batch), an
  // unknown token or sequence, positions that do not continue a sequence, a full sequence.
  Status decode(const Batch& batch);
  // Logits of output row i of the last decode (rows in batch order of the tokens whose
  // logits were wanted; all tokens with all_logits); i < 0 counts from the end. Empty when
  // there is no such row.
  std::span<const float> logits(int32_t i) const;
  int32_t n_outputs() const;

  // KV edits (llama.cpp's llama_memory_*): seq < 0 means every sequence where allowed, p0 < 0
  // means 0 and p1 < 0 means the end. A sequence's cells are its positions: seq_rm of a middle
  // range leaves a hole that seq_add must close before the sequence is decoded again.
  void memory_clear();
  bool seq_rm(int32_t seq, int64_t p0, int64_t p1);
  Status seq_cp(int32_t src, int32_t dst, int64_t p0, int64_t p1);
  Status seq_keep(int32_t seq);
  // Shifts positions [p0, p1) of `seq` by delta, rotating their cached keys. It must close a
  // range seq_rm removed from the middle: seq_rm(s, a, b) then seq_add(s, b, -1, a - b) (the
  // context shift of llama.cpp's examples); the sequence cannot be decoded in between.
  Status seq_add(int32_t seq, int64_t p0, int64_t p1, int64_t delta);
  int64_t seq_pos_min(int32_t seq) const;  // -1 when empty
  int64_t seq_pos_max(int32_t seq) const;  // -1 when empty

  int64_t n_ctx() const;
  int64_t n_ctx_seq() const;
  int32_t n_seq_max() const;
  int64_t n_batch() const;  // tokens per decode
  int threads() const;
  const Model& model() const;
  std::string backend() const;  // what runs it: "jit", "plan", "interp" or "cuda"

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit Context(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet
