// Sampling: greedy ties, top-k ordering, each filter, seeded reproducibility, and the
// UTF-8 stream that holds back partial characters.
#include "runtime/sampler.h"
#include "runtime/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

namespace bitnet::runtime {
namespace {

TEST(Sampler, GreedyBreaksTiesByLowestId) {
  const std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f};
  EXPECT_EQ(greedy_pick(logits), 1);
  SamplerOptions o;
  o.greedy = true;
  Sampler s(o);
  EXPECT_EQ(s.sample(logits, {}), 1);
  o.greedy = false;
  o.temperature = 0.0f;  // temperature 0 is greedy too
  Sampler t(o);
  EXPECT_EQ(t.sample(logits, {}), 1);
}

TEST(Sampler, TopKOrderingIsDeterministic) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
  const auto top = top_k_logits(logits, 4);
  ASSERT_EQ(top.size(), 4u);
  EXPECT_EQ(top[0].id, 1);
  EXPECT_EQ(top[1].id, 2);
  EXPECT_EQ(top[2].id, 4);
  EXPECT_EQ(top[3].id, 3);
  EXPECT_EQ(top_k_logits(logits, 10).size(), 5u);
}

// The one-pass heap selection gives exactly the full sort's first k: logits with many ties (a
// few distinct values, so the id order decides), in rising, falling and random order, every k
// from 0 to past the end.
TEST(Sampler, TopKIsTheFullSortsPrefix) {
  std::mt19937 rng(7);
  for (int order = 0; order < 3; ++order) {
    std::vector<float> logits(3000);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(rng() % 23) * 0.25f - 2.0f;
    if (order == 1) std::sort(logits.begin(), logits.end());
    if (order == 2) std::sort(logits.rbegin(), logits.rend());
    std::vector<Candidate> sorted;
    for (size_t i = 0; i < logits.size(); ++i) sorted.push_back({static_cast<int32_t>(i), logits[i]});
    std::sort(sorted.begin(), sorted.end(), [](const Candidate& a, const Candidate& b) {
      return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    });
    for (size_t k :
         {size_t{0}, size_t{1}, size_t{2}, size_t{40}, size_t{129}, size_t{2999}, size_t{3000}, size_t{5000}}) {
      const std::vector<Candidate> top = top_k_logits(logits, k);
      ASSERT_EQ(top.size(), std::min(k, logits.size())) << "k " << k;
      for (size_t i = 0; i < top.size(); ++i) {
        ASSERT_EQ(top[i].id, sorted[i].id) << "order " << order << " k " << k << " rank " << i;
        ASSERT_EQ(top[i].logit, sorted[i].logit);
      }
    }
  }
}

TEST(Sampler, SeedReproducesAndDiffers) {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(i % 7) * 0.3f;
  SamplerOptions o;
  o.temperature = 1.5f;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.min_p = 0.0f;
  auto draw = [&](uint64_t seed) {
    o.seed = seed;
    Sampler s(o);
    std::vector<int32_t> ids;
    for (int i = 0; i < 64; ++i) ids.push_back(s.sample(logits, {}));
    return ids;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampler, FiltersRestrictTheChoice) {
  const std::vector<float> logits = {5.0f, 4.9f, 1.0f, 0.5f, 0.0f, -3.0f};
  auto support = [&](SamplerOptions o) {
    std::map<int32_t, int> seen;
    for (uint64_t seed = 0; seed < 400; ++seed) {
      o.seed = seed;
      Sampler s(o);
      ++seen[s.sample(logits, {})];
    }
    return seen;
  };
  SamplerOptions base;
  base.temperature = 5.0f;  // flatten so every kept token gets drawn
  base.top_k = 0;
  base.top_p = 1.0f;
  base.min_p = 0.0f;
  EXPECT_EQ(support(base).size(), 6u);
  SamplerOptions k = base;
  k.top_k = 2;
  auto sk = support(k);
  EXPECT_EQ(sk.size(), 2u);
  EXPECT_TRUE(sk.count(0) && sk.count(1));
  SamplerOptions p = base;
  p.top_p = 0.5f;  // at temperature 1 token 0 alone holds ~51%
  EXPECT_EQ(support(p).size(), 1u);
  SamplerOptions m = base;
  m.min_p = 0.05f;  // e^(1-5) = 0.018 < 0.05: only tokens 0 and 1 survive
  EXPECT_EQ(support(m).size(), 2u);
}

TEST(Sampler, RepetitionPenalty) {
  const std::vector<float> logits = {2.0f, 1.9f, -1.0f};
  SamplerOptions o;
  o.greedy = true;
  o.repeat_penalty = 1.5f;
  Sampler s(o);
  const std::vector<int32_t> history = {0};
  EXPECT_EQ(s.sample(logits, history), 1);  // 2.0 / 1.5 < 1.9
  EXPECT_EQ(s.sample(logits, {}), 0);
  o.repeat_last_n = 1;
  Sampler window(o);
  const std::vector<int32_t> old = {0, 2};
  EXPECT_EQ(window.sample(logits, old), 0);  // token 0 is outside the last-1 window
}

// OpenAI's penalties as llama.cpp applies them after the repetition penalty: frequency once per
// occurrence in the window, presence once.
TEST(Sampler, FrequencyAndPresencePenalties) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f};
  SamplerOptions o;
  o.greedy = true;
  o.frequency_penalty = 0.6f;
  const std::vector<int32_t> twice = {0, 0};
  EXPECT_EQ(Sampler(o).sample(logits, twice), 1);                    // 2.0 - 2 * 0.6 = 0.8 < 1.0
  EXPECT_EQ(Sampler(o).sample(logits, std::vector<int32_t>{0}), 0);  // 1.4 > 1.0
  o.frequency_penalty = 0;
  o.presence_penalty = 1.2f;
  EXPECT_EQ(Sampler(o).sample(logits, std::vector<int32_t>{0}), 1);  // 0.8 < 1.0
  o.repeat_penalty = 2.0f;  // 2.0 / 2 - 1.2 = -0.2 and 1.0 / 2 - 1.2 = -0.7: token 2 wins
  EXPECT_EQ(Sampler(o).sample(logits, std::vector<int32_t>{0, 1}), 2);
  o.repeat_last_n = 1;  // only token 1 is in the window
  EXPECT_EQ(Sampler(o).sample(logits, std::vector<int32_t>{0, 1}), 0);
}

TEST(Utf8Stream, HoldsBackPartialCharacters) {
  Utf8Stream s;
  EXPECT_EQ(s.push("a\xE2"), "a");
  EXPECT_EQ(s.push("\x96"), "");
  EXPECT_EQ(s.push("\x81"
                   "b"),
            "\xE2\x96\x81"
            "b");
  EXPECT_EQ(s.push("\xF0\x9F"), "");
  EXPECT_EQ(s.flush(), "\xF0\x9F");
  EXPECT_EQ(s.push("\xFF"
                   "x"),
            "\xFF"
            "x");  // invalid bytes pass through, never stall
}

}  // namespace
}  // namespace bitnet::runtime
