// Non-finite logits (see nonfinite.h).
#include "runtime/nonfinite.h"

#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace bitnet::runtime {
namespace {

// Forwards to a backend session and records the tokens it was fed since the last reset.
class DiagnosableSession final : public Session {
 public:
  DiagnosableSession(std::unique_ptr<Session> inner, const Model& model) : inner_(std::move(inner)), model_(model) {}

  // Records sequence 0's tokens (what the locator re-runs); other sequences are not traced.
  Status decode_into(const Batch& batch, Outputs& outputs) override {
    auto out = inner_->decode_into(batch, outputs);
    if (out.ok()) {
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch.seq_ids[i].front() == 0) tokens_.push_back(batch.tokens[i]);
      }
    }
    return out;
  }
  int32_t n_seq_max() const override { return inner_->n_seq_max(); }
  int64_t n_ctx() const override { return inner_->n_ctx(); }
  int64_t n_ctx_seq() const override { return inner_->n_ctx_seq(); }
  int64_t max_batch() const override { return inner_->max_batch(); }
  int64_t n_vocab() const override { return inner_->n_vocab(); }
  std::string_view backend() const override { return inner_->backend(); }
  void clear() override {
    inner_->clear();
    tokens_.clear();
  }
  bool seq_rm(int32_t seq, int64_t p0, int64_t p1) override {
    const bool ok = inner_->seq_rm(seq, p0, p1);
    sync();
    return ok;
  }
  Status seq_cp(int32_t src, int32_t dst, int64_t p0, int64_t p1) override {
    auto s = inner_->seq_cp(src, dst, p0, p1);
    sync();
    return s;
  }
  Status seq_keep(int32_t seq) override {
    auto s = inner_->seq_keep(seq);
    sync();
    return s;
  }
  Status seq_add(int32_t seq, int64_t p0, int64_t p1, int64_t delta) override {
    // The recorded tokens no longer describe the cache: re-running them would not reproduce it.
    auto s = inner_->seq_add(seq, p0, p1, delta);
    if (s.ok() && seq == 0 && delta != 0) tokens_.clear();
    return s;
  }
  int64_t seq_pos_min(int32_t seq) const override { return inner_->seq_pos_min(seq); }
  int64_t seq_pos_max(int32_t seq) const override { return inner_->seq_pos_max(seq); }

  const Model& model() const { return model_; }
  std::span<const int32_t> tokens() const { return tokens_; }

 private:
  void sync() {
    tokens_.resize(static_cast<size_t>(std::clamp<int64_t>(inner_->pos(), 0, static_cast<int64_t>(tokens_.size()))));
  }
  std::unique_ptr<Session> inner_;
  const Model& model_;
  std::vector<int32_t> tokens_;
};

}  // namespace

std::optional<size_t> first_non_finite(std::span<const float> values) {
  bool bad = false;
  for (float v : values) bad |= !std::isfinite(v);
  if (!bad) return std::nullopt;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) return i;
  }
  return std::nullopt;
}

std::unique_ptr<Session> diagnosable_session(std::unique_ptr<Session> inner, const Model& model) {
  return std::make_unique<DiagnosableSession>(std::move(inner), model);
}

Error nonfinite_logits_error(const Session& session) {
  const auto* d = dynamic_cast<const DiagnosableSession*>(&session);
  if (d && d->model().nonfinite_locator()) {
    return make_error("{}", d->model().nonfinite_locator()(d->tokens(), d->backend()));
  }
  return make_error("logits are not finite (NaN or infinity); run `bitnet compat-check` on the model");
}

}  // namespace bitnet::runtime
