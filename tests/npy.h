// A small reader for NumPy .npy files (little-endian float32 / int32, C order), used to load
// the reference tensors in ../shared/crossval.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bitnet::testing {

struct NpyArray {
  std::string dtype;           // "<f4" or "<i4"
  std::vector<int64_t> shape;  // numpy order (the reverse of ggml ne)
  std::vector<float> f32;      // filled for "<f4"
  std::vector<int32_t> i32;    // filled for "<i4"

  int64_t size() const;  // product of shape
};

// Reads a version 1/2/3 .npy file; fails on other dtypes, Fortran order or a short file.
Expected<NpyArray> read_npy(const std::filesystem::path& path);

}  // namespace bitnet::testing
