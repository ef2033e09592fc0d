// Sampling (see sampler.h).
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace bitnet::runtime {
namespace {

bool better(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

}  // namespace

std::vector<Candidate> top_k_logits(std::span<const float> logits, size_t k) {
  std::vector<Candidate> all(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) all[i] = {static_cast<int32_t>(i), logits[i]};
  k = std::min(k, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(), better);
  all.resize(k);
  return all;
}

int32_t greedy_pick(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_{options.seed ^ 0x5eed5eed5eed5eedull} {}

double Sampler::uniform() {
  return rng_.uniform();
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  if (logits.empty()) return -1;
  const bool penalised =
      options_.repeat_penalty != 1.0f || options_.frequency_penalty != 0.0f || options_.presence_penalty != 0.0f;
  // A copy only when penalties change it (a vocabulary of 128k logits is 0.5 MB per token).
  std::vector<float> penalised_logits;
  std::span<const float> adjusted = logits;
  if (penalised && options_.repeat_last_n != 0) {
    penalised_logits.assign(logits.begin(), logits.end());
    adjusted = penalised_logits;
    const size_t n = options_.repeat_last_n < 0 ? history.size()
                                                : std::min(history.size(), static_cast<size_t>(options_.repeat_last_n));
    std::unordered_map<int32_t, int> count;
    for (auto it = history.end() - static_cast<std::ptrdiff_t>(n); it != history.end(); ++it) ++count[*it];
    for (const auto& [id, times] : count) {
      if (id < 0 || static_cast<size_t>(id) >= penalised_logits.size()) continue;
      float& l = penalised_logits[static_cast<size_t>(id)];
      // llama.cpp's rules in its order: the repetition penalty, then frequency and presence.
      l = l > 0 ? l / options_.repeat_penalty : l * options_.repeat_penalty;
      l -= static_cast<float>(times) * options_.frequency_penalty + options_.presence_penalty;
    }
  }
  if (options_.greedy || options_.temperature <= 0.0f) return greedy_pick(adjusted);

  std::vector<Candidate> c(adjusted.size());
  for (size_t i = 0; i < adjusted.size(); ++i) c[i] = {static_cast<int32_t>(i), adjusted[i]};
  // `better` is a total order, so sorting only the top k gives exactly the full sort's first k:
  // O(n) instead of O(n log n) over a 128k vocabulary (a full sort took ~14 ms per token).
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < c.size()) {
    const auto k = static_cast<std::ptrdiff_t>(options_.top_k);
    std::nth_element(c.begin(), c.begin() + k, c.end(), better);
    c.resize(static_cast<size_t>(k));
  }
  std::sort(c.begin(), c.end(), better);

  // Probabilities at temperature 1 for the top-p and min-p cuts (as llama.cpp applies them
  // before the temperature), computed in double.
  auto probs = [&](double temperature) {
    std::vector<double> p(c.size());
    double sum = 0;
    for (size_t i = 0; i < c.size(); ++i) sum += p[i] = std::exp((c[i].logit - c[0].logit) / temperature);
    for (double& x : p) x /= sum;
    return p;
  };
  if (options_.top_p < 1.0f) {
    const auto p = probs(1.0);
    double cumulative = 0;
    size_t keep = c.size();
    for (size_t i = 0; i < c.size(); ++i) {
      cumulative += p[i];
      if (cumulative >= options_.top_p) {
        keep = i + 1;
        break;
      }
    }
    c.resize(std::max<size_t>(keep, 1));
  }
  if (options_.min_p > 0.0f) {
    const auto p = probs(1.0);
    size_t keep = 1;
    while (keep < c.size() && p[keep] >= options_.min_p * p[0]) ++keep;
    c.resize(keep);
  }
  const auto p = probs(options_.temperature);
  const double r = uniform();
  double cumulative = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    cumulative += p[i];
    if (r < cumulative) return c[i].id;
  }
  return c.back().id;
}

}  // namespace bitnet::runtime
