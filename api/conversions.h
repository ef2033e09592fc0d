// The public types as the runtime's, and back (api/ only): one place for each mapping.
#pragma once

#include "bitnet/generate.h"
#include "bitnet/sampler.h"
#include "runtime/sampler.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace bitnet::api {

inline runtime::SamplerOptions sampler_options(const SamplerParams& p) {
  return {.greedy = p.temperature <= 0,
          .temperature = p.temperature,
          .top_k = p.top_k,
          .top_p = p.top_p,
          .min_p = p.min_p,
          .repeat_penalty = p.repeat_penalty,
          .frequency_penalty = p.frequency_penalty,
          .presence_penalty = p.presence_penalty,
          .repeat_last_n = p.repeat_last_n,
          .seed = p.seed};
}

inline std::vector<std::vector<TopLogit>> top_logits(const std::vector<std::vector<runtime::Candidate>>& steps) {
  std::vector<std::vector<TopLogit>> out;
  for (const auto& step : steps) {
    std::vector<TopLogit> top;
    for (const runtime::Candidate& c : step) top.push_back({c.id, c.logit});
    out.push_back(std::move(top));
  }
  return out;
}

// `threads`, or for 0 the CPUs this process may use, at most 8.
inline int resolve_threads(int threads) {
  return threads > 0 ? threads : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
}

}  // namespace bitnet::api
