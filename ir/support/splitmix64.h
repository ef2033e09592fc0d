// splitmix64: a fast, seedable generator whose sequence is the same on every platform (the
// std distributions are not). Used where a run must be reproducible from a seed: the sampler,
// the synthetic-model generator, test fixtures.
#pragma once

#include <cstdint>

namespace bitnet {

struct SplitMix64 {
  uint64_t state;

  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

}  // namespace bitnet
