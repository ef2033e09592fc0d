// Token sampling: greedy, or llama.cpp's chain (repetition penalty -> top-k -> top-p ->
// min-p -> temperature -> draw) with a seeded generator, so that a seed reproduces a run
// exactly. Ties are always broken by the lower token id.
#pragma once

#include "ir/support/splitmix64.h"

#include <cstdint>
#include <span>
#include <vector>

namespace bitnet::runtime {

struct SamplerOptions {
  bool greedy = false;  // also implied by temperature <= 0
  float temperature = 0.8f;
  int32_t top_k = 40;              // <= 0: off
  float top_p = 0.95f;             // >= 1: off
  float min_p = 0.05f;             // <= 0: off
  float repeat_penalty = 1.0f;     // 1: off
  float frequency_penalty = 0.0f;  // subtracted once per occurrence in the window
  float presence_penalty = 0.0f;   // subtracted once for any occurrence in the window
  int32_t repeat_last_n = 64;      // how many previous tokens the penalties look at
  uint64_t seed = 0;
};

// A candidate after sorting: token id and its (penalised) logit.
struct Candidate {
  int32_t id;
  float logit;
};

// The k highest logits, descending, ties by lower id (used for --logits-topk dumps too).
std::vector<Candidate> top_k_logits(std::span<const float> logits, size_t k);
// argmax with the lowest id on ties.
int32_t greedy_pick(std::span<const float> logits);

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);
  // Picks the next token from `logits` given the tokens so far (for the penalty).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  const SamplerOptions& options() const { return options_; }

 private:
  double uniform();  // [0, 1), from the seeded generator
  SamplerOptions options_;
  SplitMix64 rng_;  // identical on every platform
};

}  // namespace bitnet::runtime
