// Sampling: llama.cpp's chain and defaults - repetition, frequency and presence penalties over
// the last tokens, top-k,
// top-p, min-p, temperature, then a seeded draw (greedy when temperature <= 0). Keep one
// Sampler per sequence: it remembers the tokens accepted for the penalty.
#pragma once

#include "bitnet/export.h"

#include "bitnet/model.h"

#include <cstdint>
#include <memory>
#include <span>

namespace bitnet {

struct SamplerParams {
  float temperature = 0.8f;        // <= 0: greedy
  int32_t top_k = 40;              // <= 0: off
  float top_p = 0.95f;             // >= 1: off
  float min_p = 0.05f;             // <= 0: off
  float repeat_penalty = 1.0f;     // 1: off
  float frequency_penalty = 0.0f;  // minus this times a token's count in the window (OpenAI's)
  float presence_penalty = 0.0f;   // minus this for a token that is in the window at all
  int32_t repeat_last_n = 64;      // the window of accepted tokens the penalties look at
  uint64_t seed = 0;
};

class BITNET_API Sampler {
 public:
  // Fails on values outside their ranges (temperature or top-p negative, ...).
  static Result<Sampler> create(const SamplerParams& params);
  Sampler(Sampler&&) noexcept;
  Sampler& operator=(Sampler&&) noexcept;
  ~Sampler();

  Token sample(std::span<const float> logits);  // does not accept the token
  void accept(Token token);                     // the token was chosen: the penalty sees it
  void reset();                                 // forget accepted tokens, restart the seed
  const SamplerParams& params() const;

 private:
  struct Impl;
  explicit Sampler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet
