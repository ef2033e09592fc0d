// y = W x for every weight type, choosing the arithmetic the reference uses for that type and mode.
#include <cstring>
#include <vector>

#include "reference/kernels.h"

namespace bitnet::ref {
namespace {

using gguf::GgmlType;

void matmul_i2s(const float* x, int64_t n_tokens, const WeightView& w, int64_t r0, int64_t r1, float* y) {
  const int64_t cols = w.cols;
  std::vector<int8_t> q(static_cast<size_t>(n_tokens * cols));
  std::vector<I8Row> act(static_cast<size_t>(n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) act[t] = quantize_row_i8(x + t * cols, cols, q.data() + t * cols);
  matmul_i8q_rows(q.data(), act.data(), n_tokens, w, r0, r1, y);
}

// F16 weights (the tied LM head). Prompt: tinyBLAS with the F32 activations as they are.
// Decode, or a K tinyBLAS refuses (K % 16 != 0): ggml converts the activations to F16 and
// uses ggml_vec_dot_f16.
void matmul_f16(const float* x, int64_t n_tokens, const WeightView& w, Mode mode, int64_t r0, int64_t r1, float* y) {
  const int64_t cols = w.cols;
  const bool tinyblas = mode == Mode::kPrompt && cols % 16 == 0;
  std::vector<uint16_t> x16;
  if (!tinyblas) {
    x16.resize(static_cast<size_t>(n_tokens * cols));
    for (int64_t i = 0; i < n_tokens * cols; ++i) x16[i] = fp32_to_fp16(x[i]);
  }
  std::vector<uint16_t> row(static_cast<size_t>(cols));
  for (int64_t r = r0; r < r1; ++r) {
    // Copied out: the tensor data need not be 2-byte aligned.
    std::memcpy(row.data(), w.data + r * cols * 2, static_cast<size_t>(cols) * 2);
    for (int64_t t = 0; t < n_tokens; ++t) {
      y[t * w.rows + r] = tinyblas ? tinyblas_dot_f16_f32(row.data(), x + t * cols, cols)
                                   : vec_dot_f16(row.data(), x16.data() + t * cols, cols);
    }
  }
}

// Everything else: dequantize one row at a time and use the tinyBLAS F32 chain in both
// modes. (The reference has type-specific kernels here; no reference data exists for them.)
void matmul_dequantized(const float* x, int64_t n_tokens, const WeightView& w, int64_t r0, int64_t r1, float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = r0; r < r1; ++r) {
    dequantize_row(w, r, row.data());
    for (int64_t t = 0; t < n_tokens; ++t) y[t * w.rows + r] = tinyblas_dot_f32(row.data(), x + t * w.cols, w.cols);
  }
}

// The ternary values (-1, 0, +1) and the f16 scale bits of each 256-weight block of one TQ1_0
// or TQ2_0 row (the layouts of ggml's quantize_row_tq1_0_ref / tq2_0_ref, docs/ternary-formats.md).
void tq_unpack_row(const WeightView& w, int64_t row, int8_t* values, uint16_t* scales) {
  const bool tq2 = w.type == GgmlType::TQ2_0;
  const int64_t block_bytes = tq2 ? 66 : 54;
  const int64_t blocks = w.cols / 256;
  const uint8_t* base = w.data + row * blocks * block_bytes;
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  auto digit = [](uint8_t byte, int n) { return ((static_cast<uint8_t>(byte * kPow3[n])) * 3) >> 8; };
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = base + b * block_bytes;
    int8_t* v = values + b * 256;
    if (tq2) {
      for (int h = 0; h < 2; ++h)
        for (int l = 0; l < 4; ++l)
          for (int m = 0; m < 32; ++m)
            v[128 * h + 32 * l + m] = static_cast<int8_t>(((blk[32 * h + m] >> (2 * l)) & 3) - 1);
    } else {
      for (int n = 0; n < 5; ++n) {
        for (int m = 0; m < 32; ++m) v[32 * n + m] = static_cast<int8_t>(digit(blk[m], n) - 1);
        for (int m = 0; m < 16; ++m) v[160 + 16 * n + m] = static_cast<int8_t>(digit(blk[32 + m], n) - 1);
      }
      for (int n = 0; n < 4; ++n)
        for (int m = 0; m < 4; ++m) v[240 + 4 * n + m] = static_cast<int8_t>(digit(blk[48 + m], n) - 1);
    }
    std::memcpy(&scales[b], blk + block_bytes - 2, 2);
  }
}

}  // namespace

// TQ1_0 / TQ2_0 weights on the same int8 activations as I2_S (docs/ternary-formats.md): per
// 256-weight block b the exact D_b = sum(w * q). A row whose blocks all carry the same f16
// scale d (every row of a file converted from I2_S) gives I2_S's formula with scale d:
// float(float(float(sum_b D_b) / s) * d), so such a file reproduces the I2_S model with its
// scale rounded to f16. Any other row: acc = float(acc + float(float(D_b) * d_b)) in block
// order, then float(acc / s).
void matmul_i8q_rows_tq(const int8_t* q, const I8Row* act, int64_t n_tokens, const WeightView& w, int64_t row_begin,
                        int64_t row_end, float* y) {
  const int64_t cols = w.cols;
  const int64_t blocks = cols / 256;
  std::vector<int8_t> values(static_cast<size_t>(cols));
  std::vector<uint16_t> scales(static_cast<size_t>(blocks));
  std::vector<int32_t> dots(static_cast<size_t>(blocks));
  for (int64_t r = row_begin; r < row_end; ++r) {
    tq_unpack_row(w, r, values.data(), scales.data());
    bool uniform = true;
    for (int64_t b = 1; b < blocks; ++b) uniform = uniform && scales[b] == scales[0];
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int8_t* qt = q + t * cols;
      int32_t total = 0;
      for (int64_t b = 0; b < blocks; ++b) {
        int32_t d = 0;
        for (int64_t k = 256 * b; k < 256 * (b + 1); ++k) d += static_cast<int32_t>(values[k]) * qt[k];
        dots[b] = d;
        total += d;
      }
      float out = 0.0f;
      if (uniform) {
        out = static_cast<float>(total) / act[t].scale * (blocks > 0 ? fp16_to_fp32(scales[0]) : 0.0f);
      } else {
        float acc = 0.0f;
        for (int64_t b = 0; b < blocks; ++b) acc = acc + static_cast<float>(dots[b]) * fp16_to_fp32(scales[b]);
        out = acc / act[t].scale;
      }
      y[t * w.rows + r] = out;
    }
  }
}

// Spec 8.2: per token, int8 activations with scale s and code sum S; per output row the
// exact integer D = sum(code * q). Since codes are weight + 1, D - S = sum(weight * q). The
// float steps are, in order and each rounded: (D - S) -> float, / s, * tensor scale.
void matmul_i8q_rows(const int8_t* q, const I8Row* act, int64_t n_tokens, const WeightView& w, int64_t row_begin,
                     int64_t row_end, float* y) {
  if (w.type == GgmlType::TQ1_0 || w.type == GgmlType::TQ2_0) {
    matmul_i8q_rows_tq(q, act, n_tokens, w, row_begin, row_end, y);
    return;
  }
  const int64_t cols = w.cols;
  const float scale = i2s_scale(w);
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  for (int64_t r = row_begin; r < row_end; ++r) {
    i2s_unpack_row(w, r, codes.data());
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int8_t* qt = q + t * cols;
      int32_t d = 0;
      for (int64_t k = 0; k < cols; ++k) d += static_cast<int32_t>(codes[k]) * qt[k];
      const float centered = static_cast<float>(d - act[t].sum);
      y[t * w.rows + r] = centered / act[t].scale * scale;
    }
  }
}

void matmul_rows(const float* x, int64_t n_tokens, const WeightView& w, int64_t row_begin, int64_t row_end, Mode mode,
                 float* y) {
  switch (w.type) {
    case GgmlType::I2_S:
      matmul_i2s(x, n_tokens, w, row_begin, row_end, y);
      return;
    case GgmlType::F16:
      matmul_f16(x, n_tokens, w, mode, row_begin, row_end, y);
      return;
    default:
      matmul_dequantized(x, n_tokens, w, row_begin, row_end, y);
      return;
  }
}

void matmul(const float* x, int64_t n_tokens, const WeightView& w, Mode mode, float* y) {
  matmul_rows(x, n_tokens, w, 0, w.rows, mode, y);
}

}  // namespace bitnet::ref
