#include "codegen_cuda/emit_rmsnorm_quant.h"

#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"

namespace bitnet::codegen_cuda {
namespace {

// Each thread keeps its elements in registers (at most 32), so x is read from memory once.
int choose_threads(int64_t n) {
  int threads = static_cast<int>(n >= 256 ? 256 : (n + 31) / 32 * 32);
  while ((n + threads - 1) / threads > 32) threads *= 2;
  return threads;
}

}  // namespace

Dim3 rmsnorm_quant_grid(int64_t n_tokens) {
  return Dim3{static_cast<uint32_t>(n_tokens), 1, 1};
}

KernelSource emit_rmsnorm_quant(const RmsNormQuantShape& shape) {
  if (shape.n < 32 || shape.n > 32768) throw std::invalid_argument("emit_rmsnorm_quant: n out of range");
  KernelSource k;
  k.threads = choose_threads(shape.n);
  k.min_blocks = 2;
  k.name = kernel_name("bn_rmsnorm_quant", {{"n", shape.n}, {"g", shape.has_gain}, {"y", shape.write_normed}}) +
           pdl_suffix(shape.pdl);
  const std::string n = std::to_string(shape.n);
  std::string s = device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(k.threads) + ", " +
       std::to_string(k.min_blocks) + ") " + k.name + R"((
    const float* __restrict__ x, const float* __restrict__ gain, signed char* __restrict__ q,
    float* __restrict__ act_scale, int* __restrict__ act_sum, float* __restrict__ normed, int n_tokens) {
)" + int_constants({{"kN", n}, {"kThreads", std::to_string(k.threads)}}) +
       R"(
  constexpr int kPerThread = (kN + kThreads - 1) / kThreads;
  constexpr int kWarps = kThreads / 32;
  constexpr float kEps = )" +
       float_literal(shape.eps) + R"(;
  constexpr bool kHasGain = )" +
       (shape.has_gain ? "true" : "false") + R"(;
  constexpr bool kWriteNormed = )" +
       (shape.write_normed ? "true" : "false") + R"(;
  __shared__ double s_sum[kWarps];
  __shared__ float s_max[kWarps];
  __shared__ int s_codes[kWarps];
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  // The gain is a weight, not a predecessor's output: loaded before the wait (and before the
  // first reduction), so that its memory latency is not on the path after the sum of squares.
  float g[kPerThread];  // unused (and optimised away) without a gain
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int i = tid + j * kThreads;
    if (kHasGain) g[j] = (kN % kThreads == 0 || i < kN) ? gain[i] : 0.0f;
  }
)" + pdl_early_text(shape.pdl, "  ") +
       pdl_wait_text(shape.pdl, "  ") + R"(  const int token = blockIdx.x;
  if (token >= n_tokens) return;  // uniform over the block
  const float* xt = x + (long long)token * kN;

  // Spec 8.1: squares rounded to float, accumulated in double (here per thread, then a fixed tree).
  float v[kPerThread];
  double squares = 0.0;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int i = tid + j * kThreads;
    v[j] = (kN % kThreads == 0 || i < kN) ? xt[i] : 0.0f;
    squares = __dadd_rn(squares, (double)__fmul_rn(v[j], v[j]));
  }
  squares = bn_warp_sum_f64(squares);
  if (lane == 0) s_sum[warp] = squares;
  __syncthreads();
  double total = s_sum[0];
  for (int w = 1; w < kWarps; ++w) total = __dadd_rn(total, s_sum[w]);
  const float mean = __double2float_rn(__ddiv_rn(total, (double)kN));
  const float inv_rms = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, kEps)));

  // y = float(float(x * inv_rms) * gain); |y| max. A max is exact in any order, and a float
  // max widened to double is the double max of the widened values (spec 8.2 step 1).
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int i = tid + j * kThreads;
    if (kN % kThreads == 0 || i < kN) {
      float y = __fmul_rn(v[j], inv_rms);
      if (kHasGain) y = __fmul_rn(y, g[j]);
      v[j] = y;
      amax = fmaxf(amax, fabsf(y));
      if (kWriteNormed) normed[(long long)token * kN + i] = y;
    }
  }
  amax = bn_warp_max_f32(amax);
  if (lane == 0) s_max[warp] = amax;
  __syncthreads();
  float block_max = s_max[0];
  for (int w = 1; w < kWarps; ++w) block_max = fmaxf(block_max, s_max[w]);
  const double amax_d = fmax(0.00001, (double)block_max);
  const float scale = __double2float_rn(__ddiv_rn(127.0, amax_d));

  // Round half to even (__float2int_rn, as ggml's magic-number trick for |v| < 2^22), clamp.
  int code_sum = 0;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int i = tid + j * kThreads;
    if (kN % kThreads == 0 || i < kN) {
      int r = __float2int_rn(__fmul_rn(v[j], scale));
      r = r > 127 ? 127 : (r < -128 ? -128 : r);
      q[(long long)token * kN + i] = (signed char)r;
      code_sum += r;
    }
  }
  code_sum = bn_warp_sum_i32(code_sum);
  if (lane == 0) s_codes[warp] = code_sum;
  __syncthreads();
  if (tid == 0) {
    int total_codes = 0;
    for (int w = 0; w < kWarps; ++w) total_codes += s_codes[w];
    act_sum[token] = total_codes;
    act_scale[token] = scale;
  }
}
)";
  k.source = std::move(s);
  return k;
}

}  // namespace bitnet::codegen_cuda
