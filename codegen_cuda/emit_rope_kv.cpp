#include "codegen_cuda/emit_rope_kv.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"
#include "ir/support/rope.h"

namespace bitnet::codegen_cuda {

namespace {
constexpr int kThreads = 256;

int64_t work_items(const RopeKvShape& s) {
  return (s.n_head + s.n_head_kv) * (s.head_dim / 2) + s.n_head_kv * s.head_dim;
}
}  // namespace

Dim3 rope_kv_grid(const RopeKvShape& shape) {
  return Dim3{static_cast<uint32_t>((work_items(shape) + kThreads - 1) / kThreads), 1, 1};
}

RopeTables rope_tables(int64_t n_ctx, int64_t head_dim, float freq_base, float freq_scale) {
  RopeTables t;
  const int64_t half = head_dim / 2;
  t.cos.resize(static_cast<size_t>(n_ctx * half));
  t.sin.resize(t.cos.size());
  const float theta_scale = rope::theta_scale(freq_base, head_dim);
  for (int64_t pos = 0; pos < n_ctx; ++pos) {
    float theta = static_cast<float>(pos);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = freq_scale * theta;
      t.cos[static_cast<size_t>(pos * half + i)] = std::cos(angle);
      t.sin[static_cast<size_t>(pos * half + i)] = std::sin(angle);
      theta = theta * theta_scale;
    }
  }
  return t;
}

KernelSource emit_rope_kv(const RopeKvShape& shape) {
  if (shape.n_head < 1 || shape.n_head_kv < 1 || shape.n_head % shape.n_head_kv != 0 || shape.head_dim < 2 ||
      shape.head_dim % 2 != 0 || shape.n_ctx < 1) {
    throw std::invalid_argument("emit_rope_kv: bad shape");
  }
  KernelSource k;
  k.threads = kThreads;
  k.min_blocks = 1;
  k.name = kernel_name("bn_rope_kv",
                       {{"h", shape.n_head}, {"hkv", shape.n_head_kv}, {"d", shape.head_dim}, {"c", shape.n_ctx}}) +
           (shape.batched ? "_b" : "") + pdl_suffix(shape.pdl);
  auto num = [](int64_t v) { return std::to_string(v); };
  std::string s = "#include <cuda_fp16.h>\n" + device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(256, 1) " + k.name + R"((
    const float* __restrict__ qkv, const float* __restrict__ rope_cos, const float* __restrict__ rope_sin,
    const int* __restrict__ pos_ptr, unsigned short* __restrict__ q16, unsigned short* __restrict__ k_cache,
    unsigned short* __restrict__ v_cache)" +
       std::string(shape.batched ? ", const int* __restrict__ seq" : "") + R"() {
)" +
       int_constants({{"kHeads", num(shape.n_head)},
                      {"kHeadsKv", num(shape.n_head_kv)},
                      {"kHd", num(shape.head_dim)},
                      {"kCtx", num(shape.n_ctx)}}) +
       R"(
  constexpr int kHalf = kHd / 2;
  constexpr int kEmbd = kHeads * kHd;
  constexpr int kEmbdKv = kHeadsKv * kHd;
  constexpr int kPairs = (kHeads + kHeadsKv) * kHalf;
)" + pdl_early_text(shape.pdl, "  ") +
       (shape.batched ? batched_token_text(
                            "blockIdx.y", {{"qkv", "kEmbd + 2 * kEmbdKv"}, {"q16", "kEmbd"}},
                            {{"k_cache", "(long long)kCtx * kEmbdKv"}, {"v_cache", "(long long)kCtx * kEmbdKv"}}, "  ")
                      : "") +
       R"(  const int i = blockIdx.x * 256 + threadIdx.x;
  // The position (an input of the step) and the rotation's cos and sin (tables) are no previous
  // kernel's output: read before the wait, so that their two dependent loads overlap it.
  const int pos = *pos_ptr;
  const bool in_range = pos >= 0 && pos < kCtx;
  float cos_p = 0.0f, sin_p = 0.0f;
  if (in_range && i < kPairs) {
    cos_p = rope_cos[pos * kHalf + i % kHalf];
    sin_p = rope_sin[pos * kHalf + i % kHalf];
  }
)" + pdl_wait_text(shape.pdl, "  ") +
       R"(  if (!in_range) return;  // nothing is written for an out-of-range position
  if (i < kPairs) {
    const int head = i / kHalf;  // q heads first, then k heads (which follow q in qkv)
    const int p = i % kHalf;
    const float* src = qkv + head * kHd;
    const float x0 = src[p];
    const float x1 = src[p + kHalf];
    float out0, out1;
    bn_rope_pair(x0, x1, cos_p, sin_p, out0, out1);
    unsigned short* dst = head < kHeads ? q16 + head * kHd : k_cache + (long long)pos * kEmbdKv + (head - kHeads) * kHd;
    dst[p] = __half_as_ushort(__float2half_rn(out0));
    dst[p + kHalf] = __half_as_ushort(__float2half_rn(out1));
  } else if (i < kPairs + kEmbdKv) {
    const int c = i - kPairs;
    v_cache[(long long)c * kCtx + pos] = __half_as_ushort(__float2half_rn(qkv[kEmbd + kEmbdKv + c]));
  }
}
)";
  k.source = std::move(s);
  return k;
}

}  // namespace bitnet::codegen_cuda
