// The text of a block-wide RMSNorm + gain + int8 quantization of one row (emit_rmsnorm_quant's
// steps, spec 8.1 and 8.2 steps 1-3), shared by the kernels that normalise a row themselves: the
// GEMV's folded norm (its input row) and the tail norms (the output row of a GEMV or of the
// attention, by the last block of the launch to finish, for the next GEMV).
#pragma once

#include <string>

namespace bitnet::codegen_cuda {

// The pieces that differ between uses. The text needs `kWarps`, `lane`, `warp` and `kEps` in scope
// and is run by every thread of the block: each thread takes elements threadIdx.x + j * kWarps * 32
// (as emit_rmsnorm_quant's), the row is read three times (from L2), nothing is kept in registers.
struct BlockNormText {
  std::string n;          // the row length (a constant expression)
  std::string x_at;       // the input element i
  std::string gain_at;    // the gain element i
  std::string code_to;    // stores `(signed char)r` for element i
  std::string normed_to;  // stores the normed float `yv` for element i ("": none)
  std::string finish;     // run by thread 0 with `codes` and `scale`
  std::string shared;     // prefix of the block's reduction arrays
};
std::string block_norm_text(const BlockNormText& t);

// A tail norm's kernel parameters (with a leading comma), after the kernel's output pointer:
//   , const float* tail_gain, signed char* tail_q, float* tail_scale, int* tail_sum,
//     float* tail_normed, unsigned int* tail_counter
// codes, scale and code sum as emit_rmsnorm_quant writes them, the normed floats where
// tail_normed is not null, and a counter that is 0 before the launch and is left 0 after it.
std::string tail_norm_parameters();

// The end of a kernel with a tail norm, before its closing brace (every thread of every block
// must reach it: no earlier return): each block fences its stores and counts itself in; the last
// one resets the counter and normalises the `n` values at `row` (read through L2, past L1: other
// blocks wrote them).
std::string tail_norm_text(const std::string& n, const std::string& row, float eps);

}  // namespace bitnet::codegen_cuda
