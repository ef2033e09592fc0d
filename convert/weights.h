// The numeric steps of conversion, one function each: reading safetensors data as floats,
// the absmean ternarization of BitNet's master weights, unpacking the 2-bit weights of the
// packed release, the llama Q/K row order, and encoding into GGUF tensor types.
// Facts and their sources: docs/convert-hf.md.
#pragma once

#include "convert/safetensors.h"
#include "frontend_gguf/ggml_types.h"

#include <cstdint>
#include <span>
#include <vector>

namespace bitnet::convert {

// A matrix of `rows` x `cols` (row-major, rows = output features), either dense floats or
// ternary codes in {-1, 0, +1} with one per-tensor scale (weight = code * scale).
struct Matrix {
  uint64_t rows = 0, cols = 0;
  std::vector<float> values;  // dense, when !ternary
  std::vector<int8_t> codes;  // ternary
  float scale = 0;
  bool ternary = false;
};

// An F32, F16 or BF16 tensor as floats (any other dtype is an error naming the tensor).
Expected<std::vector<float>> read_floats(const StTensor& t);

// The absmean rule of the reference converters: s = 1 / max(mean|W|, 1e-5) (float32),
// code = clamp(round_half_even(W * s), -1, 1); the stored scale is 1/s, the magnitude of the
// snapped weights (0 when every code is 0, as I2_S's max|w| rule gives).
Matrix ternarize_absmean(std::span<const float> w, uint64_t rows, uint64_t cols);

// transformers' packed BitNet weight: `packed` is uint8 [rows/4, cols]; value i (0..3) of a
// byte is bits 2i..2i+1, belongs to row i*(rows/4) + r, and decodes as (bits - 1); 3 is an
// error. `weight_scale` is the inverse scale: weight = code / weight_scale.
Expected<Matrix> unpack_hf_ternary(const StTensor& packed, float weight_scale);

// llama.cpp's LlamaModel.permute: the rows of each head go from Hugging Face's rotate-half
// order to the interleaved order of GGUF's normal RoPE (row h*d + j*d/2 + i -> h*d + 2i + j).
Status permute_rows_for_rope(Matrix& m, uint64_t n_head);

// The matrix (dense, or ternary as code * scale) encoded as F32, F16, BF16 or Q8_0 rows.
Expected<std::vector<uint8_t>> encode_dense(const Matrix& m, gguf::GgmlType type);

}  // namespace bitnet::convert
