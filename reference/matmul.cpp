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

}  // namespace

// Spec 8.2: per token, int8 activations with scale s and code sum S; per output row the
// exact integer D = sum(code * q). Since codes are weight + 1, D - S = sum(weight * q). The
// float steps are, in order and each rounded: (D - S) -> float, / s, * tensor scale.
void matmul_i8q_rows(const int8_t* q, const I8Row* act, int64_t n_tokens, const WeightView& w, int64_t row_begin,
                     int64_t row_end, float* y) {
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
