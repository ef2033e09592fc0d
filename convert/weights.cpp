// Conversion arithmetic (see weights.h).
#include "convert/weights.h"

#include "ir/support/half.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace bitnet::convert {
namespace {

float bf16_to_float(uint16_t h) {
  const uint32_t bits = uint32_t{h} << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// ggml's fp32 -> bf16: round to nearest even, NaN kept quiet.
uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64);
  return static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

Expected<std::vector<float>> read_floats(const StTensor& t) {
  const uint64_t n = t.elements();
  std::vector<float> out(n);
  const uint8_t* p = t.data.data();
  switch (t.dtype) {
    case StDtype::kF32:
      std::memcpy(out.data(), p, n * 4);
      break;
    case StDtype::kF16:
      for (uint64_t i = 0; i < n; ++i) out[i] = half::to_float(load<uint16_t>(p + 2 * i));
      break;
    case StDtype::kBF16:
      for (uint64_t i = 0; i < n; ++i) out[i] = bf16_to_float(load<uint16_t>(p + 2 * i));
      break;
    default:
      return make_error("tensor '{}' ({}) has dtype {}; expected F32, F16 or BF16", t.name, t.file,
                        st_dtype_name(t.dtype));
  }
  for (uint64_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i])) return make_error("tensor '{}' holds a non-finite value at element {}", t.name, i);
  }
  return out;
}

Matrix ternarize_absmean(std::span<const float> w, uint64_t rows, uint64_t cols) {
  Matrix m;
  m.rows = rows, m.cols = cols, m.ternary = true;
  double sum = 0;
  for (float x : w) sum += std::fabs(x);
  const float mean = w.empty() ? 0.0f : static_cast<float>(sum / static_cast<double>(w.size()));
  const float s = 1.0f / std::max(mean, 1e-5f);
  m.codes.resize(w.size());
  bool any = false;
  for (size_t i = 0; i < w.size(); ++i) {
    const float r = std::nearbyint(w[i] * s);  // the default rounding mode: half to even, as torch.round
    const auto code = static_cast<int8_t>(std::clamp(r, -1.0f, 1.0f));
    m.codes[i] = code;
    any = any || code != 0;
  }
  m.scale = any ? 1.0f / s : 0.0f;
  return m;
}

Expected<Matrix> unpack_hf_ternary(const StTensor& packed, float weight_scale) {
  if (packed.dtype != StDtype::kU8 && packed.dtype != StDtype::kI8)
    return make_error("packed weight '{}' has dtype {}, expected U8", packed.name, st_dtype_name(packed.dtype));
  if (packed.shape.size() != 2) return make_error("packed weight '{}' is not 2-D", packed.name);
  if (!std::isfinite(weight_scale) || weight_scale <= 0)
    return make_error("weight_scale of '{}' is {}, not a positive number", packed.name, weight_scale);
  const uint64_t quarter = packed.shape[0], cols = packed.shape[1];
  Matrix m;
  m.rows = quarter * 4, m.cols = cols, m.ternary = true;
  m.scale = 1.0f / weight_scale;
  m.codes.resize(m.rows * cols);
  for (uint64_t r = 0; r < quarter; ++r) {
    for (uint64_t c = 0; c < cols; ++c) {
      const uint8_t byte = packed.data[r * cols + c];
      for (uint64_t i = 0; i < 4; ++i) {
        const int bits = (byte >> (2 * i)) & 3;
        if (bits == 3)
          return make_error("packed weight '{}' holds the invalid 2-bit value 3 at [{}, {}]", packed.name, r, c);
        m.codes[(i * quarter + r) * cols + c] = static_cast<int8_t>(bits - 1);
      }
    }
  }
  return m;
}

Status permute_rows_for_rope(Matrix& m, uint64_t n_head) {
  if (n_head == 0 || m.rows % n_head != 0 || (m.rows / n_head) % 2 != 0)
    return make_error("{} rows do not split into {} heads of an even size", m.rows, n_head);
  const uint64_t d = m.rows / n_head, half_d = d / 2;
  auto permute = [&](auto& data) {
    auto copy = data;
    for (uint64_t h = 0; h < n_head; ++h) {
      for (uint64_t j = 0; j < 2; ++j) {
        for (uint64_t i = 0; i < half_d; ++i) {
          const uint64_t from = h * d + j * half_d + i, to = h * d + 2 * i + j;
          std::copy_n(copy.begin() + from * m.cols, m.cols, data.begin() + to * m.cols);
        }
      }
    }
  };
  if (m.ternary) {
    permute(m.codes);
  } else {
    permute(m.values);
  }
  return Status::success();
}

Expected<std::vector<uint8_t>> encode_dense(const Matrix& m, gguf::GgmlType type) {
  const uint64_t n = m.rows * m.cols;
  auto value = [&](uint64_t i) { return m.ternary ? static_cast<float>(m.codes[i]) * m.scale : m.values[i]; };
  std::vector<uint8_t> out;
  switch (type) {
    case gguf::GgmlType::F32:
      out.resize(n * 4);
      for (uint64_t i = 0; i < n; ++i) {
        const float v = value(i);
        std::memcpy(out.data() + 4 * i, &v, 4);
      }
      return out;
    case gguf::GgmlType::F16:
    case gguf::GgmlType::BF16:
      out.resize(n * 2);
      for (uint64_t i = 0; i < n; ++i) {
        const uint16_t h = type == gguf::GgmlType::F16 ? half::from_float(value(i)) : float_to_bf16(value(i));
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      return out;
    case gguf::GgmlType::Q8_0: {
      // ggml's quantize_row_q8_0_ref: per block of 32, d = max|x| / 127 (stored as f16),
      // q = round-half-away(x / d).
      if (m.cols % 32 != 0) return make_error("Q8_0 needs rows of a multiple of 32 values (got {})", m.cols);
      out.resize(n / 32 * 34);
      for (uint64_t b = 0; b < n / 32; ++b) {
        float amax = 0;
        for (uint64_t k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(value(b * 32 + k)));
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        uint8_t* block = out.data() + b * 34;
        const uint16_t dh = half::from_float(d);
        std::memcpy(block, &dh, 2);
        for (uint64_t k = 0; k < 32; ++k)
          block[2 + k] = static_cast<uint8_t>(static_cast<int8_t>(std::round(value(b * 32 + k) * id)));
      }
      return out;
    }
    default:
      return make_error("cannot encode a matrix as {}", gguf::ggml_type_name(type));
  }
}

}  // namespace bitnet::convert
