// Many sequences per step: a batch of tokens, each with its position, the sequences it belongs
// to and whether its logits are wanted (as llama.cpp's llama_batch), and the bookkeeping of the
// KV cells each sequence holds.
//
// The KV cache keeps one region of cells per sequence (llama.cpp's non-unified cache), and a
// sequence's cell index is its position: a region holds positions 0..n-1 with no holes. The
// kernels then need no masks, and a sequence's attention reads exactly what it would read if
// it ran alone, so batching never changes a result bit (batch invariance by construction).
// A token that belongs to several sequences (a prompt shared by several completions) is
// computed once, with the context of its first sequence; its K/V cells are then copied to
// the other sequences' regions.
#pragma once

#include "bitnet/batch.h"
#include "ir/support/expected.h"

#include <cstdint>
#include <initializer_list>
#include <span>
#include <utility>
#include <vector>

namespace bitnet::runtime {

using Batch = ::bitnet::Batch;  // include/bitnet/batch.h

// Rows of one sequence in a call: rows [row0, row0 + n) hold its tokens at positions
// pos0..pos0+n-1, in its KV region `seq`.
struct SequenceRows {
  int32_t seq = 0;
  int64_t row0 = 0;
  int64_t n = 0;
  int64_t pos0 = 0;
};

// How a checked batch runs. Rows are the batch's tokens reordered so that each sequence's
// tokens are contiguous and in position order (sequences in increasing id order).
struct BatchLayout {
  std::vector<int32_t> tokens;           // by row
  std::vector<int32_t> batch_index;      // by row: the token's index in the batch
  std::vector<SequenceRows> groups;      // the rows of each sequence
  std::vector<int64_t> selected;         // rows whose logits are wanted, ascending
  std::vector<SequenceRows> out_groups;  // the selected rows per sequence (row0 indexes `selected`)
  std::vector<int32_t> output_index;     // by selected row: its index among the batch's wanted outputs
  struct Share {
    int32_t from_seq, to_seq;
    int64_t pos;
  };
  std::vector<Share> shares;  // K/V cells to copy after the call (tokens of several sequences)
  int64_t n_rows() const { return static_cast<int64_t>(tokens.size()); }
};

// The cells each sequence holds: positions 0..length-1.
class SequenceCells {
 public:
  SequenceCells(int32_t n_seq, int64_t cells_per_seq)
      : length_(static_cast<size_t>(n_seq), 0),
        hole_(static_cast<size_t>(n_seq), {0, 0}),
        cells_per_seq_(cells_per_seq) {}

  int32_t n_seq() const { return static_cast<int32_t>(length_.size()); }
  int64_t cells_per_seq() const { return cells_per_seq_; }
  int64_t length(int32_t seq) const { return length_[static_cast<size_t>(seq)]; }

  // Checks `batch` (non-empty, at most max_rows tokens, ids below n_vocab, known sequences,
  // positions that continue each sequence, room in every region, tokens of several sequences
  // only where the others have no tokens of their own) and lays it out.
  Expected<BatchLayout> layout(const Batch& batch, int64_t n_vocab, int64_t max_rows) const;
  void commit(const BatchLayout& layout);  // the batch ran: its sequences are longer

  // KV edits (llama.cpp's llama_memory_* semantics where the region design allows; see the
  // comments in batch.cpp). Cell contents are copied by the caller (SequenceSession).
  Status check_seq(int32_t seq, bool allow_all) const;
  void set_length(int32_t seq, int64_t n) { length_[static_cast<size_t>(seq)] = n; }
  // Positions [begin, end) removed from the middle of a sequence (seq_rm), waiting for a
  // seq_add that shifts the positions after them down; a sequence with a hole cannot be
  // decoded. {0, 0}: none.
  std::pair<int64_t, int64_t> hole(int32_t seq) const { return hole_[static_cast<size_t>(seq)]; }
  bool has_hole(int32_t seq) const { return hole(seq).first < hole(seq).second; }
  void set_hole(int32_t seq, int64_t begin, int64_t end) { hole_[static_cast<size_t>(seq)] = {begin, end}; }

 private:
  std::vector<int64_t> length_;
  std::vector<std::pair<int64_t, int64_t>> hole_;
  int64_t cells_per_seq_;
};

}  // namespace bitnet::runtime
