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

  Expected<std::map<std::string, Matrix>> run(std::span<const int32_t> tokens) override {
    auto out = inner_->run(tokens);
    if (out.ok()) tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
    return out;
  }
  int64_t pos() const override { return inner_->pos(); }
  int64_t n_ctx() const override { return inner_->n_ctx(); }
  int64_t n_vocab() const override { return inner_->n_vocab(); }
  void reset() override {
    inner_->reset();
    tokens_.clear();
  }
  void truncate(int64_t pos) override {
    inner_->truncate(pos);
    tokens_.resize(static_cast<size_t>(std::clamp<int64_t>(inner_->pos(), 0, static_cast<int64_t>(tokens_.size()))));
  }
  std::string_view backend() const override { return inner_->backend(); }

  const Model& model() const { return model_; }
  std::span<const int32_t> tokens() const { return tokens_; }

 private:
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
