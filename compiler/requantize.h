// Opt-in requantization of F16 weights (the tied LM head) into ggml block formats, so the
// decode-time product streams fewer bytes: Q8_0 is 34 bytes per 32 weights (1.06 B/weight
// instead of 2), Q6_K 210 bytes per 256 (0.82 B/weight). The output is in the exact ggml
// block layouts, so the matmul kernels and ref::dequantize_row read it as a Q8_0 / Q6_K
// tensor of the same shape. Pure functions of the input bytes; no LLVM.
#pragma once

#include <cstdint>
#include <vector>

namespace bitnet::compiler {

// F16 [rows][cols] row-major (any alignment) to Q8_0 rows; cols % 32 == 0. Per block of 32:
// d = max|w| / 127 rounded to f16, q = round-half-away(w / d) (with the stored d) in [-127, 127].
std::vector<uint8_t> requantize_f16_to_q8_0(const uint8_t* f16, int64_t rows, int64_t cols);

// F16 [rows][cols] to Q6_K rows; cols % 256 == 0. Per 16-weight sub-block the scale puts the
// largest-magnitude weight on -32; the int8 sub-block scales share one f16 super-block scale.
std::vector<uint8_t> requantize_f16_to_q6_k(const uint8_t* f16, int64_t rows, int64_t cols);

}  // namespace bitnet::compiler
