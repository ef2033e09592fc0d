#include "codegen_cuda/emit_common.h"

#include <cstdio>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

int register_limit(const KernelSource& kernel) {
  const int per_thread = 65536 / (kernel.threads * kernel.min_blocks);
  return per_thread < 255 ? per_thread : 255;
}

const std::string& device_prelude() {
  // Every reduction is a butterfly (xor) so that all lanes end with the same bits: a + b and
  // b + a round identically, hence no dependence on scheduling. The explicit _rn intrinsics
  // keep NVRTC from contracting a multiply into an add whatever --fmad says.
  static const std::string text = R"(#ifndef BITNET_CUDA_PRELUDE
#define BITNET_CUDA_PRELUDE
__device__ __forceinline__ int bn_warp_sum_i32(int v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ double bn_warp_sum_f64(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = __dadd_rn(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
__device__ __forceinline__ float bn_warp_max_f32(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
#endif
)";
  return text;
}

std::string float_literal(float value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%af", static_cast<double>(value));
  return buffer;
}

std::string kernel_name(const std::string& prefix, std::initializer_list<std::pair<const char*, int64_t>> dims) {
  std::string name = prefix;
  for (const auto& [key, value] : dims) name += "_" + std::string(key) + std::to_string(value);
  return name;
}

std::string int_constants(std::initializer_list<std::pair<const char*, std::string>> constants) {
  std::string out;
  for (const auto& [name, value] : constants) {
    if (!out.empty()) out += '\n';
    out += "  constexpr int " + std::string(name) + " = " + value + ";";
  }
  return out;
}

}  // namespace bitnet::codegen_cuda
