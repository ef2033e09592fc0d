// A running model: the KV cache of its sequences and the code that advances them. Two
// implementations: the reference interpreter (reference/interpreter.h) and the compiled
// executor (runtime/executor.h), both SequenceSessions. Generation and evaluation work with
// either.
#pragma once

#include "ir/support/expected.h"
#include "runtime/batch.h"

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
using Outputs = std::map<std::string, Matrix>;

class Session {
 public:
  virtual ~Session() = default;

  // Runs a batch of tokens of one or more sequences (batch.h), appending to their KV cells.
  // The outputs hold one row per token whose logits are wanted, in batch order (a graph of all
  // logits gives every token's row). Fails, changing nothing, on a batch that
  // SequenceCells::layout refuses (empty, too large, unknown token or sequence, positions that
  // do not continue a sequence, a full region).
  // Into `out`, whose buffers are reused (a decode loop allocates nothing once they have
  // grown); on failure `out` is unspecified.
  virtual Status decode_into(const Batch& batch, Outputs& out) = 0;
  Expected<Outputs> decode(const Batch& batch) {
    Outputs out;
    BITNET_RETURN_IF_ERROR(decode_into(batch, out));
    return out;
  }

  virtual int32_t n_seq_max() const = 0;
  virtual int64_t n_ctx() const = 0;      // cells of all sequences together
  virtual int64_t n_ctx_seq() const = 0;  // cells of one sequence: n_ctx / n_seq_max
  virtual int64_t max_batch() const = 0;  // tokens per decode
  virtual int64_t n_vocab() const = 0;
  virtual std::string_view backend() const = 0;  // "interp", "jit" or "plan"

  // KV edits, as llama.cpp's llama_memory_*; seq < 0 means every sequence where it says so.
  // p0 < 0 means 0 and p1 < 0 means "to the end".
  virtual void clear() = 0;
  // Removes positions [p0, p1) of `seq` (< 0: all). A range in the middle of one sequence
  // leaves a hole that only seq_add may close (the sequence cannot be decoded meanwhile);
  // false, changing nothing, for a middle range of all sequences or a second hole.
  virtual bool seq_rm(int32_t seq, int64_t p0, int64_t p1) = 0;
  // Copies positions [p0, p1) of `src` to `dst` (cells and contents). Fails when dst would be
  // left with a hole (its cells must reach p0) or on unknown sequences.
  virtual Status seq_cp(int32_t src, int32_t dst, int64_t p0, int64_t p1) = 0;
  virtual Status seq_keep(int32_t seq) = 0;  // removes every other sequence
  // Adds `delta` to the positions [p0, p1) of `seq`, rotating their cached keys (kv_shift.h).
  // A sequence's cells are its positions, so the shift must close a range removed by seq_rm:
  // seq_rm(s, a, b) then seq_add(s, b, -1, a - b), llama.cpp's context shift. Other shifts
  // fail, changing nothing.
  virtual Status seq_add(int32_t seq, int64_t p0, int64_t p1, int64_t delta) = 0;
  virtual int64_t seq_pos_min(int32_t seq) const = 0;  // -1 when empty
  virtual int64_t seq_pos_max(int32_t seq) const = 0;  // -1 when empty

  // Sequence 0 alone: feeds `tokens` at positions pos().. in calls of at most max_batch()
  // tokens. The outputs are the graph's for the whole run: the last token's row (the last
  // call's), or every token's row.
  Expected<Outputs> run(std::span<const int32_t> tokens);
  // Whether run(tokens) would accept `tokens` (non-empty, in the vocabulary, fitting).
  Status check_tokens(std::span<const int32_t> tokens) const;
  int64_t pos() const { return seq_pos_max(0) + 1; }
  void reset() { clear(); }
  void truncate(int64_t pos) { seq_rm(0, pos, -1); }
};

// The sequence bookkeeping and KV edits shared by the backends: they lay out and run a
// checked batch, and copy cells between sequences' regions.
class SequenceSession : public Session {
 public:
  SequenceSession(int32_t n_seq, int64_t n_ctx, int64_t max_batch, int64_t n_vocab);

  Status decode_into(const Batch& batch, Outputs& out) override;
  int32_t n_seq_max() const override { return cells_.n_seq(); }
  int64_t n_ctx() const override { return n_ctx_; }
  int64_t n_ctx_seq() const override { return cells_.cells_per_seq(); }
  int64_t max_batch() const override { return max_batch_; }
  int64_t n_vocab() const override { return n_vocab_; }

  void clear() override;
  bool seq_rm(int32_t seq, int64_t p0, int64_t p1) override;
  Status seq_cp(int32_t src, int32_t dst, int64_t p0, int64_t p1) override;
  Status seq_keep(int32_t seq) override;
  Status seq_add(int32_t seq, int64_t p0, int64_t p1, int64_t delta) override;
  int64_t seq_pos_min(int32_t seq) const override;
  int64_t seq_pos_max(int32_t seq) const override;

 protected:
  // Runs the laid-out batch into `out` (buffers reused). Each output has layout.n_rows() rows
  // (graphs of all logits, rows in layout order) or layout.selected.size() rows (in
  // `selected` order).
  virtual Status run_layout(const BatchLayout& layout, Outputs& out) = 0;
  // Copies the K/V contents of cells [p0, p1) of every layer from one region to another.
  virtual void copy_cells(int32_t from_seq, int32_t to_seq, int64_t p0, int64_t p1) = 0;
  // Within one sequence's region: cells [from, from + n) to [to, to + n) (to < from), keys
  // rotated by to - from.
  virtual void move_cells(int32_t seq, int64_t from, int64_t to, int64_t n) = 0;
  const SequenceCells& cells() const { return cells_; }

 private:
  SequenceCells cells_;
  Outputs rows_;  // run_layout's, reused
  int64_t n_ctx_;
  int64_t max_batch_;
  int64_t n_vocab_;
};

}  // namespace bitnet::runtime
