#include "codegen_cuda/emit_block_norm.h"

#include <initializer_list>
#include <utility>

#include "codegen_cuda/emit_common.h"

namespace bitnet::codegen_cuda {

namespace {

// `text` with every `key` replaced by its value.
std::string substitute(std::string text, std::initializer_list<std::pair<std::string, std::string>> values) {
  for (const auto& [key, value] : values) {
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size())) {
      text.replace(at, key.size(), value);
    }
  }
  return text;
}

}  // namespace

std::string block_norm_text(const BlockNormText& t) {
  // @S@_sum / _max / _codes: the per-warp partials of the three block reductions.
  static const std::string text = R"({
    __shared__ double @S@_sum[kWarps];
    __shared__ float @S@_max[kWarps];
    __shared__ int @S@_codes[kWarps];
    double squares = 0.0;
    for (int i = threadIdx.x; i < @N@; i += kWarps * 32) {
      const float v = @X@;
      squares = __dadd_rn(squares, (double)__fmul_rn(v, v));
    }
    squares = bn_warp_sum_f64(squares);
    if (lane == 0) @S@_sum[warp] = squares;
    __syncthreads();
    double total = @S@_sum[0];
    for (int w = 1; w < kWarps; ++w) total = __dadd_rn(total, @S@_sum[w]);
    const float mean = __double2float_rn(__ddiv_rn(total, (double)(@N@)));
    const float inv_rms = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, kEps)));
    float amax = 0.0f;
    for (int i = threadIdx.x; i < @N@; i += kWarps * 32) {
      const float yv = __fmul_rn(__fmul_rn(@X@, inv_rms), @GAIN@);
      amax = fmaxf(amax, fabsf(yv));
      @NORMED_TO@
    }
    amax = bn_warp_max_f32(amax);
    if (lane == 0) @S@_max[warp] = amax;
    __syncthreads();
    float block_max = @S@_max[0];
    for (int w = 1; w < kWarps; ++w) block_max = fmaxf(block_max, @S@_max[w]);
    const float scale = __double2float_rn(__ddiv_rn(127.0, fmax(0.00001, (double)block_max)));
    int code_sum = 0;
    for (int i = threadIdx.x; i < @N@; i += kWarps * 32) {
      int r = __float2int_rn(__fmul_rn(__fmul_rn(__fmul_rn(@X@, inv_rms), @GAIN@), scale));
      r = r > 127 ? 127 : (r < -128 ? -128 : r);
      @CODE_TO@
      code_sum += r;
    }
    code_sum = bn_warp_sum_i32(code_sum);
    if (lane == 0) @S@_codes[warp] = code_sum;
    __syncthreads();
    if (threadIdx.x == 0) {
      int codes = 0;
      for (int w = 0; w < kWarps; ++w) codes += @S@_codes[w];
      @FINISH@
    }
    __syncthreads();
  }
)";
  return substitute(text, {{"@S@", t.shared},
                           {"@N@", t.n},
                           {"@X@", t.x_at},
                           {"@GAIN@", t.gain_at},
                           {"@NORMED_TO@", t.normed_to},
                           {"@CODE_TO@", t.code_to},
                           {"@FINISH@", t.finish}});
}

std::string tail_norm_parameters() {
  return R"(,
    const float* __restrict__ tail_gain, signed char* __restrict__ tail_q, float* __restrict__ tail_scale,
    int* __restrict__ tail_sum, float* __restrict__ tail_normed, unsigned int* __restrict__ tail_counter)";
}

std::string tail_norm_text(const std::string& n, const std::string& row, float eps) {
  return R"(  // The last block to finish normalises the row (tail norm).
  __shared__ bool s_tail_last;
  __threadfence();  // this block's outputs are visible to every block before it counts itself in
  __syncthreads();
  if (threadIdx.x == 0) s_tail_last = atomicAdd(tail_counter, 1u) == gridDim.x * gridDim.y * gridDim.z - 1u;
  __syncthreads();
  if (!s_tail_last) return;
  __threadfence();
  if (threadIdx.x == 0) *tail_counter = 0u;  // every block of this launch has counted itself in
  {
    constexpr float kEps = )" +
         float_literal(eps) + ";\n    " +
         block_norm_text({n, "__ldcg(" + row + " + i)", "tail_gain[i]", "tail_q[i] = (signed char)r;",
                          "if (tail_normed != nullptr) tail_normed[i] = yv;",
                          "*tail_sum = codes;\n      *tail_scale = scale;", "s_tail"}) +
         "  }\n";
}

}  // namespace bitnet::codegen_cuda
