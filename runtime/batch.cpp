// Batches and the cells of each sequence (see batch.h).
#include "runtime/batch.h"

#include <algorithm>
#include <numeric>

namespace bitnet::runtime {

Status SequenceCells::check_seq(int32_t seq, bool allow_all) const {
  if ((allow_all && seq == -1) || (seq >= 0 && seq < n_seq())) return Status::success();
  return make_error("sequence id {} is outside [0, {}) (the context's n_seq_max)", seq, n_seq());
}

Expected<BatchLayout> SequenceCells::layout(const Batch& batch, int64_t n_vocab, int64_t max_rows) const {
  const size_t n = batch.tokens.size();
  if (n == 0) return make_error("empty batch: nothing to evaluate");
  if (batch.pos.size() != n || batch.seq_ids.size() != n || batch.logits.size() != n) {
    return make_error("batch arrays differ in length");
  }
  if (static_cast<int64_t>(n) > max_rows) {
    return make_error("a batch of {} tokens exceeds the {} tokens a call takes (n_batch)", n, max_rows);
  }
  // Walk the batch in order: every sequence a token belongs to must be at that position.
  std::vector<int64_t> next(length_);
  std::vector<int32_t> own_tokens(length_.size(), 0);    // tokens with this sequence first
  std::vector<int32_t> shared_with(length_.size(), -1);  // the first sequence of its shared tokens
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = batch.tokens[i];
    if (id < 0 || id >= n_vocab) return make_error("token id {} is outside the vocabulary [0, {})", id, n_vocab);
    const auto& seqs = batch.seq_ids[i];
    if (seqs.empty()) return make_error("batch token {} belongs to no sequence", i);
    for (size_t s = 0; s < seqs.size(); ++s) {
      const int32_t seq = seqs[s];
      BITNET_RETURN_IF_ERROR(check_seq(seq, false));
      if (has_hole(seq)) {
        return make_error(
            "sequence {} has positions {}..{} removed from its middle; shift the positions after them down (seq_add) "
            "before decoding it",
            seq, hole(seq).first, hole(seq).second - 1);
      }
      if (std::count(seqs.begin(), seqs.end(), seq) > 1) {
        return make_error("batch token {} names sequence {} twice", i, seq);
      }
      auto& at = next[static_cast<size_t>(seq)];
      if (batch.pos[i] != at) {
        return make_error(
            "batch token {}: sequence {} continues at position {}, not {} (a sequence's positions are 0, 1, 2, ... "
            "in batch order)",
            i, seq, at, batch.pos[i]);
      }
      if (at >= cells_per_seq_) {
        Error full =
            make_error("context is full: {} tokens in the cache + {} new exceed the context size {}",
                       length_[static_cast<size_t>(seq)], at - length_[static_cast<size_t>(seq)] + 1, cells_per_seq_);
        full.kind = ErrorKind::kContextFull;
        return full;
      }
      ++at;
      if (s == 0) {
        ++own_tokens[static_cast<size_t>(seq)];
      } else {
        int32_t& first = shared_with[static_cast<size_t>(seq)];
        if (first != -1 && first != seqs[0]) {
          return make_error("sequence {} shares tokens with both sequence {} and {} in one batch", seq, first, seqs[0]);
        }
        first = seqs[0];
      }
    }
  }
  // A sequence that receives copies of another's cells may not compute tokens of its own in
  // the same call: they would attend to cells not copied yet.
  for (size_t seq = 0; seq < length_.size(); ++seq) {
    if (shared_with[seq] != -1 && own_tokens[seq] > 0) {
      return make_error(
          "sequence {} has tokens of its own and tokens shared with sequence {} in one batch; decode them in separate "
          "batches",
          seq, shared_with[seq]);
    }
  }

  BatchLayout out;
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  // Stable: a sequence's tokens keep batch order, which is position order.
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return batch.seq_ids[a][0] < batch.seq_ids[b][0]; });
  std::vector<int32_t> rank(n, -1);  // a wanted token's index among the batch's wanted outputs
  int32_t wanted = 0;
  for (size_t i = 0; i < n; ++i) {
    if (batch.logits[i]) rank[i] = wanted++;
  }
  for (size_t row = 0; row < n; ++row) {
    const int32_t i = order[row];
    const int32_t seq = batch.seq_ids[i][0];
    out.tokens.push_back(batch.tokens[i]);
    out.batch_index.push_back(i);
    const auto r = static_cast<int64_t>(row);
    if (out.groups.empty() || out.groups.back().seq != seq) out.groups.push_back({seq, r, 0, batch.pos[i]});
    ++out.groups.back().n;
    if (batch.logits[i]) {
      const auto sel = static_cast<int64_t>(out.selected.size());
      out.selected.push_back(r);
      out.output_index.push_back(rank[i]);
      if (out.out_groups.empty() || out.out_groups.back().seq != seq) out.out_groups.push_back({seq, sel, 0, 0});
      ++out.out_groups.back().n;
    }
    for (size_t s = 1; s < batch.seq_ids[i].size(); ++s) out.shares.push_back({seq, batch.seq_ids[i][s], batch.pos[i]});
  }
  return out;
}

void SequenceCells::commit(const BatchLayout& layout) {
  for (const SequenceRows& g : layout.groups) length_[static_cast<size_t>(g.seq)] = g.pos0 + g.n;
  for (const BatchLayout::Share& s : layout.shares) length_[static_cast<size_t>(s.to_seq)] = s.pos + 1;
}

}  // namespace bitnet::runtime
