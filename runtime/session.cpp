// Sessions: single-sequence runs, batches, KV edits (see session.h).
#include "runtime/session.h"

#include <algorithm>

namespace bitnet::runtime {

Status Session::check_tokens(std::span<const int32_t> tokens) const {
  if (tokens.empty()) return make_error("empty batch: nothing to evaluate");
  if (pos() + static_cast<int64_t>(tokens.size()) > n_ctx_seq()) {
    Error full = make_error("context is full: {} tokens in the cache + {} new exceed the context size {}", pos(),
                            tokens.size(), n_ctx_seq());
    full.kind = ErrorKind::kContextFull;
    return full;
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= n_vocab()) return make_error("token id {} is outside the vocabulary [0, {})", id, n_vocab());
  }
  return Status::success();
}

Expected<Outputs> Session::run(std::span<const int32_t> tokens) {
  BITNET_RETURN_IF_ERROR(check_tokens(tokens));  // all of them before any call runs
  Outputs all;
  const auto n = static_cast<int64_t>(tokens.size());
  Batch batch;
  for (int64_t start = 0; start < n; start += max_batch()) {
    const int64_t count = std::min(max_batch(), n - start);
    batch.clear();
    const int64_t p0 = pos();
    for (int64_t i = 0; i < count; ++i)
      batch.add(tokens[static_cast<size_t>(start + i)], p0 + i, {0}, start + i == n - 1);
    BITNET_ASSIGN_OR_RETURN(Outputs out, decode(batch));
    for (auto& [name, m] : out) {
      Matrix& into = all[name];
      if (m.rows == count) {  // every token's row: concatenate
        into.cols = m.cols;
        into.rows += m.rows;
        into.data.insert(into.data.end(), m.data.begin(), m.data.end());
      } else if (m.rows > 0) {
        into = std::move(m);
      }
    }
  }
  return all;
}

SequenceSession::SequenceSession(int32_t n_seq, int64_t n_ctx, int64_t max_batch, int64_t n_vocab)
    : cells_(n_seq, n_ctx / n_seq), n_ctx_(n_ctx), max_batch_(max_batch), n_vocab_(n_vocab) {}

Status SequenceSession::decode_into(const Batch& batch, Outputs& out) {
  BITNET_ASSIGN_OR_RETURN(BatchLayout layout, cells_.layout(batch, n_vocab_, max_batch_));
  BITNET_RETURN_IF_ERROR(run_layout(layout, rows_));
  cells_.commit(layout);
  for (const BatchLayout::Share& s : layout.shares) copy_cells(s.from_seq, s.to_seq, s.pos, s.pos + 1);
  // Back to batch order: nothing to move when the batch was already in row order (one
  // sequence, or sequences in increasing order); the buffers are swapped instead of copied.
  bool in_order = true;
  for (size_t r = 0; r < layout.batch_index.size() && in_order; ++r)
    in_order = layout.batch_index[r] == static_cast<int32_t>(r);
  for (size_t r = 0; r < layout.output_index.size() && in_order; ++r)
    in_order = layout.output_index[r] == static_cast<int32_t>(r);
  if (in_order) {
    out.swap(rows_);
    return Status::success();
  }
  const auto n_rows = static_cast<size_t>(layout.n_rows());
  for (auto it = out.begin(); it != out.end();) it = rows_.count(it->first) ? std::next(it) : out.erase(it);
  for (const auto& [name, m] : rows_) {
    Matrix& into = out[name];
    into.rows = m.rows;
    into.cols = m.cols;
    into.data.resize(m.data.size());
    const bool every_row = static_cast<size_t>(m.rows) == n_rows;
    const auto cols = static_cast<size_t>(m.cols);
    for (size_t r = 0; r < static_cast<size_t>(m.rows); ++r) {
      const auto to = static_cast<size_t>(every_row ? layout.batch_index[r] : layout.output_index[r]);
      std::copy_n(m.data.begin() + static_cast<ptrdiff_t>(r * cols), cols,
                  into.data.begin() + static_cast<ptrdiff_t>(to * cols));
    }
  }
  return Status::success();
}

void SequenceSession::clear() {
  for (int32_t s = 0; s < cells_.n_seq(); ++s) {
    cells_.set_length(s, 0);
    cells_.set_hole(s, 0, 0);
  }
}

bool SequenceSession::seq_rm(int32_t seq, int64_t p0, int64_t p1) {
  if (!cells_.check_seq(seq, true).ok()) return false;
  p0 = std::max<int64_t>(p0, 0);
  const int32_t first = seq < 0 ? 0 : seq;
  const int32_t last = seq < 0 ? cells_.n_seq() - 1 : seq;
  // All or nothing: check every sequence before changing any.
  for (int32_t s = first; s <= last; ++s) {
    const int64_t len = cells_.length(s);
    const int64_t end = p1 < 0 ? len : std::min(p1, len);
    if (p0 >= end) continue;
    if (end < len && (seq < 0 || cells_.has_hole(s))) return false;  // a (second) hole
    if (end == len && cells_.has_hole(s) && p0 > cells_.hole(s).first) return false;
  }
  for (int32_t s = first; s <= last; ++s) {
    const int64_t len = cells_.length(s);
    const int64_t end = p1 < 0 ? len : std::min(p1, len);
    if (p0 >= end) continue;
    if (end < len) {
      cells_.set_hole(s, p0, end);
    } else {
      cells_.set_length(s, p0);
      cells_.set_hole(s, 0, 0);
    }
  }
  return true;
}

Status SequenceSession::seq_cp(int32_t src, int32_t dst, int64_t p0, int64_t p1) {
  BITNET_RETURN_IF_ERROR(cells_.check_seq(src, false));
  BITNET_RETURN_IF_ERROR(cells_.check_seq(dst, false));
  if (src == dst) return Status::success();
  if (cells_.has_hole(src) || cells_.has_hole(dst)) {
    return make_error("seq_cp: sequence {} has a removed range not shifted yet (seq_add)",
                      cells_.has_hole(src) ? src : dst);
  }
  p0 = std::max<int64_t>(p0, 0);
  const int64_t end = p1 < 0 ? cells_.length(src) : std::min(p1, cells_.length(src));
  if (p0 >= end) return Status::success();
  if (p0 > cells_.length(dst)) {
    return make_error("seq_cp: sequence {} holds positions 0..{}; copying from position {} would leave a hole", dst,
                      cells_.length(dst) - 1, p0);
  }
  copy_cells(src, dst, p0, end);
  cells_.set_length(dst, std::max(cells_.length(dst), end));
  return Status::success();
}

Status SequenceSession::seq_keep(int32_t seq) {
  BITNET_RETURN_IF_ERROR(cells_.check_seq(seq, false));
  for (int32_t s = 0; s < cells_.n_seq(); ++s) {
    if (s == seq) continue;
    cells_.set_length(s, 0);
    cells_.set_hole(s, 0, 0);
  }
  return Status::success();
}

Status SequenceSession::seq_add(int32_t seq, int64_t p0, int64_t p1, int64_t delta) {
  BITNET_RETURN_IF_ERROR(cells_.check_seq(seq, false));
  p0 = std::max<int64_t>(p0, 0);
  const int64_t len = cells_.length(seq);
  const int64_t end = p1 < 0 ? len : std::min(p1, len);
  if (delta == 0 || p0 >= end) return Status::success();
  const auto [h0, h1] = cells_.hole(seq);
  if (!cells_.has_hole(seq) || p0 > h1 || end != len || delta != h0 - h1) {
    return make_error(
        "seq_add: sequence {} holds positions 0..{}{}; a shift must close a removed range: seq_rm(s, a, b) then "
        "seq_add(s, b, -1, a - b)",
        seq, len - 1, cells_.has_hole(seq) ? fmt::format(" without {}..{}", h0, h1 - 1) : "");
  }
  move_cells(seq, h1, h0, len - h1);
  cells_.set_length(seq, len - (h1 - h0));
  cells_.set_hole(seq, 0, 0);
  return Status::success();
}

int64_t SequenceSession::seq_pos_min(int32_t seq) const {
  if (!cells_.check_seq(seq, false).ok()) return -1;
  if (cells_.length(seq) == 0) return -1;
  return cells_.has_hole(seq) && cells_.hole(seq).first == 0 ? cells_.hole(seq).second : 0;
}

int64_t SequenceSession::seq_pos_max(int32_t seq) const {
  if (!cells_.check_seq(seq, false).ok()) return -1;
  return cells_.length(seq) - 1;
}

}  // namespace bitnet::runtime
