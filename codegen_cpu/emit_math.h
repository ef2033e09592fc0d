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
// j * 2^k rounded once (ldexp, vscalefps) for a positive normal float j (scalar or vector) and
// an i32 k in [-192, 192], by integer arithmetic on the bits: a float multiply whose result
// underflows into the subnormals costs a ~150-cycle microcode assist on Intel cores, and
// softmax rows with a wide score range hit that on most lanes.
llvm::Value* ldexp_exact(KernelBuilder& kb, llvm::Value* j, llvm::Value* k);
// fma(a, b, c) on float vectors, bit for bit, computed in double so that subnormal operands or
// results cost no microcode assists (~10x the work of one FMA, ~1/15 of one assist): the
// product of two floats is exact in double, the sum is rounded to double "to odd" (TwoSum
// and a fix-up of the last bit) and then once to float, which gives the correctly rounded
// float sum because double carries more than 24 + 2 bits.
llvm::Value* fma_in_double(KernelBuilder& kb, llvm::Value* a, llvm::Value* b, llvm::Value* c);
// ref::expf_approx (ggml_v_expf, AVX-512 variant) lane for lane: same fma chain, same
// polynomial, ties and the |n| > 192 cut-off, and the single rounding of vscalefps.
llvm::Value* ggml_expf(KernelBuilder& kb, llvm::Value* x);
// _mm512_reduce_add_ps order of a <16 x float> (lanes i + 8, then + 4, + 2, + 1).
llvm::Value* tree_sum16(KernelBuilder& kb, llvm::Value* v);
// tree_sum16 of 16 vectors at once: lane c of the result is tree_sum16(v_c), the same additions
// in the same order, but done on whole vectors that hold a level of several rows each (2
// shuffles and 1 add per pair instead of 4 shuffles and 4 adds per row). push() the 16 vectors
// in order (pairs combine as soon as they are complete, so few stay live), then finish().
// Works on <16 x float> and <16 x i32> alike.
class TreeSum16x16 {
 public:
  explicit TreeSum16x16(KernelBuilder& kb) : kb_(kb) {}
  void push(llvm::Value* v) { push_level(v, 0); }
  // A vector already reduced `level` times: 2^level consecutive rows (the next ones in order),
  // each in 16 >> level adjacent lanes (level 1: two rows' lanes 0-7 | 8-15).
  void push_level(llvm::Value* v, int level);
  llvm::Value* finish();

 private:
  struct Partial {
    llvm::Value* v;
    int level;                // 0: a raw row; k: partial sums of 2^k rows
    std::vector<int> row_of;  // per lane: the row whose partial sum it holds
  };
  Partial combine(const Partial& a, const Partial& b);
  KernelBuilder& kb_;
  std::vector<Partial> stack_;
  int pushed_ = 0;
};
// vec_dot_f16's 4 x 16-lane chains over the chunks of 64 of k and q, folded (0+2, 1+3, 0+1):
// the vector that dot_exact tree-sums (n >= 64).
llvm::Value* dot_lanes(KernelBuilder& kb, llvm::Value* k, llvm::Value* q, int64_t n);
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
