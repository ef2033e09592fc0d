// Copies selected float rows into a dense block: the rows of a batched step whose logits are
// wanted go to the final norm and the LM head, the others do not (a prompt needs only its last).
#pragma once

#include <cstdint>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

struct GatherRowsShape {
  int64_t n = 0;                // row length (floats)
  PdlMode pdl = PdlMode::kOff;  // programmatic dependent launch points (kernel_source.h)
};

// Kernel signature: (const float* x, const int* rows, float* out, int n_out)
// out[i] = x[rows[i]] for i < n_out (row copies, bit for bit). Grid gather_rows_grid(n_out).
KernelSource emit_gather_rows(const GatherRowsShape& shape);
Dim3 gather_rows_grid(int64_t n_out);

}  // namespace bitnet::codegen_cuda
