// Random inputs for the CUDA kernel tests, built the way the models' tensors are.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace bitnet::testing {

inline std::vector<float> random_normal(size_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// GGUF I2_S tensor data (spec 6): random codes 0..2 packed in 128-weight blocks, then the
// float scale and 28 bytes of trailer.
inline std::vector<uint8_t> random_i2s(int64_t rows, int64_t cols, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> data(static_cast<size_t>(rows * cols / 4 + 32), 0);
  for (int64_t j = 0; j < rows * cols; ++j) {
    const uint32_t code = rng() % 3;
    data[j / 128 * 32 + j % 32] |= static_cast<uint8_t>(code << (6 - 2 * (j % 128 / 32)));
  }
  std::memcpy(data.data() + rows * cols / 4, &scale, 4);
  return data;
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace bitnet::testing
