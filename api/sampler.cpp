// Samplers of the public API (see bitnet/sampler.h): runtime::Sampler plus the accepted tokens.
#include "bitnet/sampler.h"
#include "api/conversions.h"
#include "runtime/sampler.h"

#include <cmath>
#include <vector>

namespace bitnet {

struct Sampler::Impl {
  SamplerParams params;
  runtime::Sampler sampler;
  std::vector<Token> history;
  runtime::SamplerOptions options() const { return api::sampler_options(params); }
};

Result<Sampler> Sampler::create(const SamplerParams& p) {
  if (!std::isfinite(p.temperature)) return Error{"temperature must be finite"};
  if (!(p.top_p >= 0 && p.top_p <= 1)) return Error{"top_p must be in [0, 1]"};
  if (!(p.min_p >= 0 && p.min_p <= 1)) return Error{"min_p must be in [0, 1]"};
  if (!(p.repeat_penalty > 0) || !std::isfinite(p.repeat_penalty)) return Error{"repeat_penalty must be positive"};
  if (!std::isfinite(p.frequency_penalty) || !std::isfinite(p.presence_penalty)) {
    return Error{"frequency_penalty and presence_penalty must be finite"};
  }
  if (p.top_k < 0 || p.repeat_last_n < 0) return Error{"top_k and repeat_last_n must not be negative"};
  auto impl = std::make_unique<Impl>(Impl{p, runtime::Sampler(runtime::SamplerOptions{}), {}});
  impl->sampler = runtime::Sampler(impl->options());
  return Sampler(std::move(impl));
}

Sampler::Sampler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sampler::Sampler(Sampler&&) noexcept = default;
Sampler& Sampler::operator=(Sampler&&) noexcept = default;
Sampler::~Sampler() = default;

Token Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) return -1;
  return impl_->sampler.sample(logits, impl_->history);
}

void Sampler::accept(Token token) {
  impl_->history.push_back(token);
}

void Sampler::reset() {
  impl_->history.clear();
  impl_->sampler = runtime::Sampler(impl_->options());
}

const SamplerParams& Sampler::params() const {
  return impl_->params;
}

}  // namespace bitnet
