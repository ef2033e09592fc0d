// Numeric building blocks shared by the norm, rope, softmax and attention emitters: each one
// reproduces a rounding sequence of runtime/reference (spec section 8) in LLVM IR, so the
// kernels built from them match the reference kernels bit for bit where the spec allows it.
// Internal to codegen_cpu (it includes kernel_builder.h, and with it LLVM).
#pragma once

#include "codegen_cpu/kernel_builder.h"

namespace bitnet::codegen {

// ---- vectors -------------------------------------------------------------------------------
// Elements [start, start + n) of vector v (n == 1 gives a scalar).
llvm::Value* slice(KernelBuilder& kb, llvm::Value* v, unsigned start, unsigned n);
// a followed by b (same element type, any lengths).
llvm::Value* concat(KernelBuilder& kb, llvm::Value* a, llvm::Value* b);
// A load of `n` elements of `elem` (a vector when n > 1) at base + index elements.
llvm::Value* load_vec(KernelBuilder& kb, llvm::Type* elem, unsigned n, llvm::Value* base, llvm::Value* index,
                      unsigned align = 1);

// ---- exact float steps of the reference ------------------------------------------------------
// ref::expf_approx (ggml_v_expf, AVX-512 variant) lane for lane: same fma chain, same
// polynomial, ties and the |n| > 192 cut-off, and the single rounding of vscalefps.
llvm::Value* ggml_expf(KernelBuilder& kb, llvm::Value* x);
// _mm512_reduce_add_ps order of a <16 x float> (lanes i + 8, then + 4, + 2, + 1).
llvm::Value* tree_sum16(KernelBuilder& kb, llvm::Value* v);
// float(half(x)): the F16 rounding (round to nearest even) of a float scalar or vector.
llvm::Value* round_to_f16(KernelBuilder& kb, llvm::Value* x);
// ref::vec_dot_f16(k, q, n) for a static n on F16 values already converted to <n x float>
// (one K row is converted once for several queries): 4 x 16-lane FMA chains over chunks of
// 64, folded (0+2, 1+3, 0+1), tree-summed, then the n % 64 leftovers multiplied in float and
// added in double, the result rounded to float.
llvm::Value* dot_exact(KernelBuilder& kb, llvm::Value* k, llvm::Value* q, int64_t n);

// ---- RoPE ----------------------------------------------------------------------------------
// sin and cos of a float scalar or vector, in double: argument reduction by pi/2 with a
// two-part constant and Taylor polynomials, ~1e-16 relative, so rounding them to float gives
// the correctly rounded values (except within ~1e-16 of a tie).
void sin_cos(KernelBuilder& kb, llvm::Value* angle, llvm::Value** sin_out, llvm::Value** cos_out);

}  // namespace bitnet::codegen
