// The three float dot products of the reference (ggml_vec_dot_f16 and llamafile tinyBLAS), lane by lane.
#include <cassert>
#include <cmath>

#include "reference/kernels.h"
#include "reference/lanes.h"

namespace bitnet::ref {

using detail::f16_value;
using detail::kLanes;
using detail::Lanes;
using detail::tree_sum;

// The dot products are built twice: for CPUs with FMA (where std::fma is one instruction)
// and a baseline (where it is a libm call); glibc's ifunc picks one at load time. Both
// compute the same correctly rounded fma, so results do not depend on the CPU.
// ThreadSanitizer cannot run ifunc resolvers (they run before its runtime starts, and the
// instrumented resolver crashes the loader): sanitized builds keep the baseline only.
#if defined(__SANITIZE_THREAD__)
#define BITNET_FMA_CLONES
#else
#define BITNET_FMA_CLONES __attribute__((target_clones("fma", "default")))
#endif

// ggml_vec_dot_f16, AVX-512 build: GGML_F16_STEP = 64 elements per iteration spread over
// GGML_F16_ARR = 4 registers of 16 lanes, each lane its own FMA chain. The registers are
// then folded (0 += 2, 1 += 3, then 0 += 1), the last one tree-summed, and that float is
// widened to double. Elements past the last multiple of 64 are multiplied in float and
// accumulated in double one by one; only the final result is rounded back to float.
BITNET_FMA_CLONES float vec_dot_f16(const uint16_t* a, const uint16_t* b, int64_t n) {
  constexpr int kRegs = 4;
  constexpr int64_t kStep = kRegs * kLanes;
  Lanes acc[kRegs] = {};
  const int64_t vector_end = n - n % kStep;
  for (int64_t i = 0; i < vector_end; i += kStep) {
    for (int r = 0; r < kRegs; ++r) {
      for (int l = 0; l < kLanes; ++l) {
        const int64_t k = i + r * kLanes + l;
        acc[r][l] = std::fma(f16_value(a[k]), f16_value(b[k]), acc[r][l]);
      }
    }
  }
  for (int l = 0; l < kLanes; ++l) {
    acc[0][l] = acc[0][l] + acc[2][l];
    acc[1][l] = acc[1][l] + acc[3][l];
  }
  for (int l = 0; l < kLanes; ++l) acc[0][l] = acc[0][l] + acc[1][l];
  double sum = tree_sum(acc[0]);
  for (int64_t k = vector_end; k < n; ++k) {
    const float product = f16_value(a[k]) * f16_value(b[k]);
    sum += static_cast<double>(product);
  }
  return static_cast<float>(sum);
}

// llamafile tinyBLAS (KN = 16 on AVX-512): whatever the tile shape, each output owns one
// register accumulated with FMA over k in steps of 16, then hsum() = _mm512_reduce_add_ps.
// The reference only takes this path when n % 16 == 0.
BITNET_FMA_CLONES float tinyblas_dot_f16_f32(const uint16_t* a, const float* b, int64_t n) {
  assert(n % kLanes == 0);
  Lanes acc = {};
  for (int64_t i = 0; i < n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] = std::fma(f16_value(a[i + l]), b[i + l], acc[l]);
  }
  return tree_sum(acc);
}

// The F32 x F32 variant. For n % 16 != 0 (which tinyBLAS itself refuses) the missing lanes
// of the last step are treated as zeros, which leaves their chains unchanged.
BITNET_FMA_CLONES float tinyblas_dot_f32(const float* a, const float* b, int64_t n) {
  Lanes acc = {};
  for (int64_t i = 0; i < n; i += kLanes) {
    for (int l = 0; l < kLanes && i + l < n; ++l) acc[l] = std::fma(a[i + l], b[i + l], acc[l]);
  }
  return tree_sum(acc);
}

}  // namespace bitnet::ref
