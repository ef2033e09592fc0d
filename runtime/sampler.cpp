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

// One pass that keeps the k best seen so far in a heap with the worst of them on top. On a 128k
// vocabulary nearly every logit loses to that worst in one comparison, so a draw costs a pass
// over the logits instead of a 1 MB candidate copy and a selection in it (1.7 ms per token
// before, which a server pays once per sequence per step). `better` is a total order, so the
// result is exactly the full sort's first k.
std::vector<Candidate> top_k_logits(std::span<const float> logits, size_t k) {
  k = std::min(k, logits.size());
  std::vector<Candidate> heap;
  heap.reserve(k);
  for (size_t i = 0; i < k; ++i) heap.push_back({static_cast<int32_t>(i), logits[i]});
  std::make_heap(heap.begin(), heap.end(), better);  // the front is the one no other is worse than
  for (size_t i = k; i < logits.size() && k > 0; ++i) {
    const Candidate c{static_cast<int32_t>(i), logits[i]};
    if (!better(c, heap.front())) continue;
    std::pop_heap(heap.begin(), heap.end(), better);
    heap.back() = c;
    std::push_heap(heap.begin(), heap.end(), better);
  }
  std::sort(heap.begin(), heap.end(), better);
  return heap;
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

  // Best first: the top k, or every candidate when top-k is off.
  const size_t k = options_.top_k > 0 ? static_cast<size_t>(options_.top_k) : adjusted.size();
  std::vector<Candidate> c = top_k_logits(adjusted, k);

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
