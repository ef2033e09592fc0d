// NumPy .npy (format 1.0) writing for float32 C-order arrays, e.g. `eval --logits-out`.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bitnet::tools {

Status write_npy_f32(const std::string& path, std::span<const float> data, const std::vector<int64_t>& shape);

}  // namespace bitnet::tools
