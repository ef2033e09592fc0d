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
// Programmatic dependent launch (sm_90+; PdlMode): bn_pdl_wait returns once the kernel before this
// one has finished and its writes are visible (griddepcontrol.wait); bn_pdl_launch_dependents lets
// the kernel after this one be scheduled (griddepcontrol.launch_dependents), which then waits in
// turn before it reads anything this kernel writes. Without the launch attribute both do nothing;
// sm_80 compiles none; the host emulator runs launches one after another (its shim's functions
// only check that they are called inside a kernel).
__device__ __forceinline__ void bn_pdl_wait() {
#if defined(__CUDA_ARCH__)
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
#else
  cudaGridDependencySynchronize();
#endif
}
__device__ __forceinline__ void bn_pdl_launch_dependents() {
#if defined(__CUDA_ARCH__)
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
#else
  cudaTriggerProgrammaticLaunchCompletion();
#endif
}
// One int8 tensor-core product of the warp (sm_80+): d += A (16 x 32, unsigned bytes, row-major)
// * B (32 x 8, signed bytes, column-major), int32 wrapping, every lane holding its PTX fragments
// (lane = 4 gid + tid: a0 = A[gid][4tid..4tid+3], a1 = A[gid+8][4tid..], a2 = A[gid][16+4tid..],
// a3 = A[gid+8][16+4tid..]; b0 = B[4tid..4tid+3][gid], b1 = B[16+4tid..][gid]; d0 = D[gid][2tid],
// d1 = D[gid][2tid+1], d2 = D[gid+8][2tid], d3 = D[gid+8][2tid+1]). The host emulator computes
// the same from every lane's fragments (bn_emu_mma_m16n8k32_u8s8).
__device__ __forceinline__ void bn_mma_u8s8(int (&d)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                            unsigned b0, unsigned b1) {
#if defined(__CUDA_ARCH__)
  asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
  const unsigned a[4] = {a0, a1, a2, a3};
  const unsigned b[2] = {b0, b1};
  bn_emu_mma_m16n8k32_u8s8(d, a, b);
#endif
}
// The 16 codes of one repack_i2s word (codes of k = 16c + 4i + lane at bits 8 lane + 2i) times
// the chunk's 16 int8 activations (a.x: k = 16c .. 16c + 3, ...), added to acc: four dp4a.
__device__ __forceinline__ int bn_dp4a_word(unsigned int word, int4 a, int acc) {
  acc = __dp4a((int)(word & 0x03030303u), a.x, acc);
  acc = __dp4a((int)((word >> 2) & 0x03030303u), a.y, acc);
  acc = __dp4a((int)((word >> 4) & 0x03030303u), a.z, acc);
  return __dp4a((int)((word >> 6) & 0x03030303u), a.w, acc);
}
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
// tinyBLAS's 16-lane tree sum of the chains the lanes of each half-warp hold (ref's tree_sum):
// lane i += lane i + 8, then + 4, + 2, + 1; lane 0 of each half-warp gets the sum.
__device__ __forceinline__ float bn_tree_sum16(float v) {
#pragma unroll
  for (int offset = 8; offset > 0; offset >>= 1) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, offset, 16));
  return v;
}
__device__ __forceinline__ float bn_warp_max_f32(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
// ref::expf_approx (ggml_v_expf, AVX-512) one lane: every step the same rounded float operation.
__device__ __forceinline__ float bn_expf_approx(float x) {
  const float shifter = 0x1.8p23f;
  const float z = __fmaf_rn(x, 0x1.715476p+0f, shifter);
  const float n = __fsub_rn(z, shifter);
  const float b = __fmaf_rn(-n, 0x1.7f7d1cp-20f, __fmaf_rn(-n, 0x1.62e4p-1f, x));
  const float u = __fmul_rn(b, b);
  const float j = __fmaf_rn(__fmaf_rn(__fmaf_rn(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                      __fmaf_rn(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                            u, __fmaf_rn(0x1.ffffecp-1f, b, 1.0f));
  if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : __int_as_float(0x7f800000);
  if (n != n) return j;
  return ldexpf(j, (int)n);  // exact scaling (0 ulp), as vscalefps
}
// One NEOX RoPE pair (x0 = element p, x1 = element p + head_dim / 2 of a head), as
// rope::rotate_head: x0 c - x1 s with one rounding of the product x1 s, then x0 s + x1 c.
__device__ __forceinline__ void bn_rope_pair(float x0, float x1, float c, float s, float& out0, float& out1) {
  out0 = __fmaf_rn(x0, c, -__fmul_rn(x1, s));
  out1 = __fmaf_rn(x0, s, __fmul_rn(x1, c));
}
// ref::silu: x / (1 + expf_approx(0 - x)), in float.
__device__ __forceinline__ float bn_silu(float x) {
  return __fdiv_rn(x, __fadd_rn(1.0f, bn_expf_approx(__fsub_rn(0.0f, x))));
}
// ggml_vec_dot_f16's reduction of one warp's chains: lane L holds register L / 16 (chain_lo) and
// register L / 16 + 2 (chain_hi) of lane L % 16. Folds 0 += 2, 1 += 3, then 0 += 1, then the
// 16-lane tree (i + 8, i + 4, i + 2, i + 1); lane 0 ends with the float the reference widens.
__device__ __forceinline__ float bn_f16_dot_fold(float chain_lo, float chain_hi) {
  float v = __fadd_rn(chain_lo, chain_hi);
  v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, 16));
#pragma unroll
  for (int offset = 8; offset > 0; offset >>= 1) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, offset));
  return v;
}
#endif
)";
  return text;
}

std::string pdl_wait_text(PdlMode mode, const std::string& indent) {
  switch (mode) {
    case PdlMode::kOff:
      return "";
    case PdlMode::kAfterWait:
      return indent + "bn_pdl_wait();  // the previous kernel's outputs are ready past this point\n" + indent +
             "bn_pdl_launch_dependents();\n";
    case PdlMode::kEarly:
      return indent + "bn_pdl_wait();  // the previous kernel's outputs are ready past this point\n";
  }
  return "";
}

std::string pdl_early_text(PdlMode mode, const std::string& indent) {
  return mode == PdlMode::kEarly ? indent + "bn_pdl_launch_dependents();  // the next kernel may start now\n" : "";
}

std::string pdl_suffix(PdlMode mode) {
  return mode == PdlMode::kOff ? "" : mode == PdlMode::kAfterWait ? "_pdl" : "_pdle";
}

std::string batched_token_text(const std::string& index, PointerStrides per_token, PointerStrides per_sequence,
                               const std::string& indent) {
  std::string s = indent + "const int bn_t = " + index + ";\n" + indent + "pos_ptr += bn_t;\n";
  for (const auto& [pointer, stride] : per_token) {
    s += indent + pointer + " += (long long)bn_t * (" + stride + ");\n";
  }
  if (per_sequence.size() != 0) s += indent + "const long long bn_seq = seq[bn_t];\n";
  for (const auto& [pointer, stride] : per_sequence) s += indent + pointer + " += bn_seq * (" + stride + ");\n";
  return s;
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
