// Host emulation of the CUDA device environment, in the spirit of Triton's interpreter: force-
// included (-include cuda_host_emu.h) when the generated CUDA C++ is compiled for the CPU, so the
// very text NVRTC compiles can be run and checked against the reference kernels without a GPU.
// A test tool only: it never ships in the runtime.
//
// Model: a launch runs each block's threads as fibers of one OS thread (host_emu_runtime.cpp);
// a fiber runs until it must wait for others (__syncthreads, a warp shuffle or vote), so the
// interleavings are those a GPU allows, and a barrier or collective not every participant
// reaches is reported as a deadlock instead of hanging. __shared__ variables are function-level
// statics per OS thread, i.e. per running block. Warp collectives require every lane named in
// the mask to call the same collective with the same mask (sm_70+ semantics; one collective in
// flight per warp). Threads that have exited count as arrived at __syncthreads. Blocks run on
// several worker threads at once, so the last-block pattern (stores, __threadfence, an atomic
// counter) is exercised with real concurrency: atomicAdd on unsigned int is a sequentially
// consistent atomic read-modify-write, __threadfence a full fence, __ldcg a plain load. Not emulated: dynamic
// shared memory, other atomics, clusters, texture/surface access. Programmatic dependent launch
// is accepted and trivially satisfied (launches are sequential).
// Floating point: compile with -ffp-contract=off; the _rn intrinsics are plain IEEE operations.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "host_emu_api.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local

namespace bn_emu {

struct ThreadState {
  bn_emu_dim3 thread_idx, block_idx, block_dim, grid_dim;
  int linear = 0;  // x + y * blockDim.x + z * blockDim.x * blockDim.y
};

const ThreadState* current();
void syncthreads();
// Every lane of `mask` contributes `value`; returns the 32 lanes' values (valid until this
// lane's next collective).
const uint64_t* warp_collective(unsigned mask, uint64_t value);

template <class T>
T exchange(unsigned mask, T var, int src_lane, bool use_src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type wider than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  const uint64_t* lanes = warp_collective(mask, bits);
  if (!use_src) return var;
  T out;
  std::memcpy(&out, &lanes[src_lane], sizeof(T));
  return out;
}

inline int lane_id() {
  return current()->linear & 31;
}

}  // namespace bn_emu

#define threadIdx (::bn_emu::current()->thread_idx)
#define blockIdx (::bn_emu::current()->block_idx)
#define blockDim (::bn_emu::current()->block_dim)
#define gridDim (::bn_emu::current()->grid_dim)
#define warpSize 32

inline void __syncthreads() {
  ::bn_emu::syncthreads();
}

// ---- warp shuffles (the width rules of the CUDA programming guide) --------------------------
template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  const int lane = ::bn_emu::lane_id();
  return ::bn_emu::exchange(mask, var, (lane & ~(width - 1)) | (src_lane & (width - 1)), true);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  const int lane = ::bn_emu::lane_id();
  const bool in_range = (lane & (width - 1)) >= static_cast<int>(delta);
  return ::bn_emu::exchange(mask, var, lane - static_cast<int>(delta), in_range);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  const int lane = ::bn_emu::lane_id();
  const bool in_range = (lane & (width - 1)) + static_cast<int>(delta) < width;
  return ::bn_emu::exchange(mask, var, lane + static_cast<int>(delta), in_range);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  const int lane = ::bn_emu::lane_id();
  const int src = lane ^ lane_mask;
  // Lanes may read earlier groups of `width`, never later ones (those get their own value).
  const bool in_range = src < (lane / width + 1) * width;
  return ::bn_emu::exchange(mask, var, src, in_range);
}

// ---- programmatic dependent launch (sm_90: griddepcontrol.wait / .launch_dependents) ----------
// Launches run one after another here, so a grid's predecessor has always finished and its writes
// are visible: both are no-ops. They still ask for the running thread, so that a call outside a
// kernel fails like every other intrinsic instead of passing silently.
inline void cudaGridDependencySynchronize() {
  (void)::bn_emu::current();
}
inline void cudaTriggerProgrammaticLaunchCompletion() {
  (void)::bn_emu::current();
}

// ---- atomics, fences, cache-global loads -----------------------------------------------------
// (GCC/Clang builtins: the generated modules are compiled as C++17, without std::atomic_ref.)
inline unsigned atomicAdd(unsigned* address, unsigned value) {
  return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}
inline void __threadfence() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
template <class T>
T __ldcg(const T* address) {
  return *address;
}

// ---- votes -----------------------------------------------------------------------------------
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  const uint64_t* lanes = ::bn_emu::warp_collective(mask, predicate != 0);
  unsigned bits = 0;
  for (int i = 0; i < 32; ++i) {
    if ((mask >> i & 1u) && lanes[i]) bits |= 1u << i;
  }
  return bits;
}
inline int __any_sync(unsigned mask, int predicate) {
  return __ballot_sync(mask, predicate) != 0;
}
inline int __all_sync(unsigned mask, int predicate) {
  return __ballot_sync(mask, predicate) == mask;
}

// ---- tensor cores ------------------------------------------------------------------------------
// mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 with d as both C and D: a collective of the
// whole warp. Each lane brings its fragments in the PTX ISA's layout for 8-bit m16n8k32 (gid =
// lane / 4, tid = lane % 4): a0 = A[gid][4tid + i], a1 = A[gid + 8][4tid + i], a2 = A[gid][16 + 4tid + i],
// a3 = A[gid + 8][16 + 4tid + i] (byte i of each, unsigned); b0 = B[4tid + i][gid],
// b1 = B[16 + 4tid + i][gid] (signed); and gets d0..d3 = D[gid][2tid], D[gid][2tid + 1],
// D[gid + 8][2tid], D[gid + 8][2tid + 1], sums wrapping modulo 2^32.
inline void bn_emu_mma_m16n8k32_u8s8(int (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
  uint64_t a01[32], a23[32], b01[32];
  std::memcpy(a01, ::bn_emu::warp_collective(0xffffffffu, a[0] | static_cast<uint64_t>(a[1]) << 32), sizeof a01);
  std::memcpy(a23, ::bn_emu::warp_collective(0xffffffffu, a[2] | static_cast<uint64_t>(a[3]) << 32), sizeof a23);
  std::memcpy(b01, ::bn_emu::warp_collective(0xffffffffu, b[0] | static_cast<uint64_t>(b[1]) << 32), sizeof b01);
  // Element (row, k) of A and (k, col) of B from the lane and register that hold it.
  auto a_at = [&](int row, int k) {
    const uint64_t pair = (k < 16 ? a01 : a23)[(row % 8) * 4 + (k % 16) / 4];
    const uint32_t reg = static_cast<uint32_t>(row < 8 ? pair : pair >> 32);
    return static_cast<int>((reg >> (8 * (k % 4))) & 0xffu);
  };
  auto b_at = [&](int k, int col) {
    const uint64_t pair = b01[col * 4 + (k % 16) / 4];
    const uint32_t reg = static_cast<uint32_t>(k < 16 ? pair : pair >> 32);
    return static_cast<int>(static_cast<int8_t>(reg >> (8 * (k % 4))));
  };
  const int lane = ::bn_emu::lane_id();
  for (int i = 0; i < 4; ++i) {
    const int row = lane / 4 + (i >= 2 ? 8 : 0);
    const int col = 2 * (lane % 4) + (i & 1);
    uint32_t acc = static_cast<uint32_t>(d[i]);
    for (int k = 0; k < 32; ++k) acc += static_cast<uint32_t>(a_at(row, k) * b_at(k, col));
    d[i] = static_cast<int>(acc);
  }
}

// ---- integer intrinsics ------------------------------------------------------------------------
// Four byte products added to c, wrapping modulo 2^32 as the hardware does.
inline int __dp4a(int a, int b, int c) {
  uint32_t acc = static_cast<uint32_t>(c);
  for (int i = 0; i < 4; ++i) {
    const int pa = static_cast<int8_t>(static_cast<uint32_t>(a) >> (8 * i));
    const int pb = static_cast<int8_t>(static_cast<uint32_t>(b) >> (8 * i));
    acc += static_cast<uint32_t>(pa * pb);
  }
  return static_cast<int>(acc);
}
inline unsigned __dp4a(unsigned a, unsigned b, unsigned c) {
  for (int i = 0; i < 4; ++i) c += ((a >> (8 * i)) & 0xffu) * ((b >> (8 * i)) & 0xffu);
  return c;
}

// ---- float intrinsics: correctly rounded IEEE operations ------------------------------------
inline float __fadd_rn(float a, float b) {
  return a + b;
}
inline float __fsub_rn(float a, float b) {
  return a - b;
}
inline float __fmul_rn(float a, float b) {
  return a * b;
}
inline float __fdiv_rn(float a, float b) {
  return a / b;
}
inline float __fsqrt_rn(float a) {
  return std::sqrt(a);
}
inline float __fmaf_rn(float a, float b, float c) {
  return std::fma(a, b, c);
}
inline double __dadd_rn(double a, double b) {
  return a + b;
}
inline double __dsub_rn(double a, double b) {
  return a - b;
}
inline double __dmul_rn(double a, double b) {
  return a * b;
}
inline double __ddiv_rn(double a, double b) {
  return a / b;
}
inline float __double2float_rn(double a) {
  return static_cast<float>(a);
}
inline float __int2float_rn(int a) {
  return static_cast<float>(a);
}
// Round half to even; NaN gives 0 and out-of-range values saturate, as cvt.rni.s32.f32 does.
inline int __float2int_rn(float a) {
  if (std::isnan(a)) return 0;
  const float r = std::nearbyint(a);
  if (r >= 2147483648.0f) return INT32_MAX;
  if (r < -2147483648.0f) return INT32_MIN;
  return static_cast<int>(r);
}
inline int __float_as_int(float a) {
  int i;
  std::memcpy(&i, &a, 4);
  return i;
}
inline float __int_as_float(int a) {
  float f;
  std::memcpy(&f, &a, 4);
  return f;
}
inline unsigned __float_as_uint(float a) {
  return static_cast<unsigned>(__float_as_int(a));
}
inline float __uint_as_float(unsigned a) {
  return __int_as_float(static_cast<int>(a));
}

template <class T>
T __ldg(const T* p) {
  return *p;
}

// ---- vector types ------------------------------------------------------------------------------
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) int4 {
  int x, y, z, w;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(8) int2 {
  int x, y;
};
struct alignas(8) float2 {
  float x, y;
};

// ---- half precision (IEEE binary16, round to nearest even) ---------------------------------
struct __half {
  unsigned short __x;
};

inline float __half2float(__half h) {
  const uint32_t sign = static_cast<uint32_t>(h.__x & 0x8000u) << 16;
  const uint32_t exponent = (h.__x >> 10) & 0x1fu;
  const uint32_t mantissa = h.__x & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  const uint32_t bits =
      exponent == 31 ? (sign | 0x7f800000u | (mantissa << 13)) : (sign | ((exponent + 112) << 23) | (mantissa << 13));
  return __uint_as_float(bits);
}

inline __half __float2half_rn(float f) {
  const uint32_t x = __float_as_uint(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return __half{static_cast<unsigned short>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu))};
  if (ax < 0x38800000u) {  // below 2^-14: a subnormal half, round(|f| * 2^24) half to even
    const float scaled = std::nearbyint(std::ldexp(__uint_as_float(ax), 24));
    return __half{static_cast<unsigned short>(sign | static_cast<uint16_t>(scaled))};
  }
  // Rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits half to even; a carry
  // into the exponent is the correct next value, and anything at or past 0x7c00 is infinity.
  const uint32_t rebased = ax - (112u << 23);
  uint32_t h = (rebased + 0xfffu + ((rebased >> 13) & 1u)) >> 13;
  if (ax >= 0x7f800000u || h >= 0x7c00u) h = 0x7c00u;
  return __half{static_cast<unsigned short>(sign | h)};
}
inline __half __float2half(float f) {
  return __float2half_rn(f);
}
inline unsigned short __half_as_ushort(__half h) {
  return h.__x;
}
inline __half __ushort_as_half(unsigned short bits) {
  return __half{bits};
}
