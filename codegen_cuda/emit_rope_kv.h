// RoPE (NEOX, spec 8.3) of the fused q|k|v projection's q and k, q rounded to F16 for the
// attention (spec 8.4), and the KV-cache append of the decode position (F16, V transposed as
// ref::kv_store lays it out). One launch per layer.
#pragma once

#include <cstdint>
#include <vector>

#include "codegen_cuda/kernel_source.h"

namespace bitnet::codegen_cuda {

struct RopeKvShape {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;         // even
  int64_t n_ctx = 0;            // cache cells; pos must be < n_ctx
  PdlMode pdl = PdlMode::kOff;  // programmatic dependent launch points (kernel_source.h)
  // Several tokens per launch (see batched_token_text in emit_common.h): token t = blockIdx.y
  // reads qkv row t, writes q16 row t, and appends at pos_ptr[t] to the caches of sequence
  // seq[t], one region of n_ctx cells per sequence (the K region of sequence s starts at
  // k_cache + s * n_ctx * n_head_kv * head_dim, V's likewise). The signature gains
  // `const int* seq` at the end. The arithmetic per token is the one-token kernel's.
  bool batched = false;
};

// Kernel signature:
//   (const float* qkv, const float* rope_cos, const float* rope_sin, const int* pos,
//    unsigned short* q16, unsigned short* k_cache, unsigned short* v_cache)
// qkv: q [n_head * head_dim] | k [n_head_kv * head_dim] | v [same] (one token); rope_cos/sin:
// rope_tables(); pos: the token's position (device memory, so a graph replays at any position);
// q16: [n_head * head_dim] F16 bits; k_cache: [n_ctx][n_head_kv * head_dim], v_cache:
// [n_head_kv * head_dim][n_ctx] (ref::KvLayerView). Pairs (i, i + head_dim / 2) are rotated as
// rope::rotate_head does: out0 = fma(x0, c, -(x1 * s)), out1 = fma(x0, s, x1 * c). Bit-identical.
KernelSource emit_rope_kv(const RopeKvShape& shape);
Dim3 rope_kv_grid(const RopeKvShape& shape);  // one token (batched: grid.y = the tokens)

// The angle tables the kernel reads, [n_ctx][head_dim / 2] each: cosf / sinf of the reference's
// running-product angles (ggml_rope_cache_init, rope::rotate_head), computed on the host with the
// C library so that they are the reference's values exactly (device cosf/sinf are not).
struct RopeTables {
  std::vector<float> cos, sin;
};
RopeTables rope_tables(int64_t n_ctx, int64_t head_dim, float freq_base, float freq_scale);

}  // namespace bitnet::codegen_cuda
