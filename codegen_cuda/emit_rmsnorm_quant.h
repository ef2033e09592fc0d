// RMSNorm (+ gain) fused with the per-row int8 activation quantization of the I2_S path
// (spec 8.1 and 8.2 steps 1-3): one block per token row.
#pragma once

#include <cstdint>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

struct RmsNormQuantShape {
  int64_t n = 0;                // row length (hidden size); 32 <= n <= 32768
  float eps = 1e-5f;            // baked in as an exact literal
  bool has_gain = true;         // y = rms_norm(x) * gain, as the graph's norm + mul
  bool write_normed = false;    // also store the float row y (e.g. for an F16 LM head)
  PdlMode pdl = PdlMode::kOff;  // programmatic dependent launch points (kernel_source.h)
};

// Kernel signature:
//   (const float* x, const float* gain, signed char* q, float* act_scale, int* act_sum,
//    float* normed, int n_tokens)
// x, q, normed: [n_tokens][n]; act_scale, act_sum: [n_tokens]. Launch rmsnorm_quant_grid()
// blocks of kernel.threads threads. Numerics: the normalised row, the int8 codes, the scale and
// the code sum equal ref::rms_norm + gain multiply + ref::quantize_row_i8 bit for bit, except
// that the sum of squares is added in a fixed tree order rather than index order (both in
// double): the float mean differs only when the double sum lies within ~n * 2^-53 relative of a
// float rounding boundary (about 1 row in 10^5), and then by 1 ulp.
KernelSource emit_rmsnorm_quant(const RmsNormQuantShape& shape);
Dim3 rmsnorm_quant_grid(int64_t n_tokens);

}  // namespace bitnet::codegen_cuda
