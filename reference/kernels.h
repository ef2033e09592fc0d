// Reference kernels: plain, readable C++ that reproduces the numerics of the C++
// reference (bitnet.cpp / llama.cpp, AVX-512 build) exactly, as written down in
// ../shared/spec/bitnet-formats.md section 8. The reference interpreter executes IR
// ops with these; every optimised kernel is tested against them. Nothing here is
// fast on purpose; everything here is exact on purpose.
#pragma once

#include "frontend_gguf/ggml_types.h"

#include <cstdint>

namespace bitnet::ref {

// ---- scalar conversions ------------------------------------------------------------
uint16_t fp32_to_fp16(float x);  // IEEE half, round to nearest even (F16C semantics)
float fp16_to_fp32(uint16_t h);
float bf16_to_fp32(uint16_t h);

// ggml_v_expf: the polynomial exp approximation ggml's softmax and SiLU use (spec 8.4, 8.5),
// lane-for-lane identical to the AVX-512 vector version.
float expf_approx(float x);
// silu(x) = x / (1 + expf_approx(-x)) in float (spec 8.5).
float silu(float x);
// SiLU over a row as ggml_vec_silu_f32: blocks of 16 use silu() above, the n % 16 leftovers
// use the C library's expf (x / (1 + expf(-x))), exactly like the reference.
void silu_row(const float* x, int64_t n, float* y);

// ---- weights -----------------------------------------------------------------------
// A row-major weight matrix as stored in the GGUF: `rows` rows of `cols` elements.
struct WeightView {
  gguf::GgmlType type = gguf::GgmlType::F32;
  const uint8_t* data = nullptr;  // whole tensor data (for I2_S including the 32-byte trailer)
  int64_t rows = 0;               // M (output features) = ne[1]
  int64_t cols = 0;               // K (input features) = ne[0]
};

// Dequantizes row `row` of `w` into `out[cols]`. Supports F32, F16, BF16, Q8_0, Q4_0,
// Q6_K, TQ1_0, TQ2_0 and I2_S (codes * per-tensor scale).
void dequantize_row(const WeightView& w, int64_t row, float* out);

// I2_S (spec 6): the per-tensor float scale stored after the packed codes.
float i2s_scale(const WeightView& w);
// The 2-bit codes {0,1,2} of one I2_S row (`cols` values, cols % 128 == 0).
void i2s_unpack_row(const WeightView& w, int64_t row, uint8_t* codes);

// ---- activation quantization (spec 8.2 steps 1-3) ----------------------------------
struct I8Row {
  float scale = 0;  // s = float(127 / max(1e-5, max|x|)) with the max taken in double
  int32_t sum = 0;  // S = sum of q
};
I8Row quantize_row_i8(const float* x, int64_t n, int8_t* q);

// ---- products ----------------------------------------------------------------------
// How the reference computed a call: a batch of >= 2 tokens ("prompt": llamafile
// tinyBLAS for F16/F32 operands) or exactly one token ("decode": ggml_vec_dot_f16 with
// the F32 operand rounded to F16). See spec 8.4 and 8.6.
enum class Mode { kPrompt, kDecode };

// y[t * w.rows + r] = sum_k W[r, k] * x[t * w.cols + k] for t < n_tokens, with the
// reference's numerics for each weight type: I2_S by the exact integer path of spec
// 8.2 (independent of mode); F16 by tinyBLAS (prompt) or vec_dot_f16 on F16-rounded x
// (decode, and prompt when cols % 16 != 0, which tinyBLAS refuses); other types by
// dequantize + the tinyBLAS F32 chain in both modes (not bit-matched to llama.cpp).
void matmul(const float* x, int64_t n_tokens, const WeightView& w, Mode mode, float* y);
// Output rows [row_begin, row_end) of `matmul` (y is still the whole [n_tokens, w.rows]
// output): rows are independent, which is how the interpreter splits work over threads.
void matmul_rows(const float* x, int64_t n_tokens, const WeightView& w, int64_t row_begin, int64_t row_end, Mode mode,
                 float* y);
// The I2_S product on activations already quantized by quantize_row_i8 (q: [n_tokens][w.cols],
// act: one I8Row per token), output rows [row_begin, row_end).
// TQ1_0 and TQ2_0 weights go to matmul_i8q_rows_tq.
void matmul_i8q_rows(const int8_t* q, const I8Row* act, int64_t n_tokens, const WeightView& w, int64_t row_begin,
                     int64_t row_end, float* y);
// The TQ1_0 / TQ2_0 product on int8 activations (docs/ternary-formats.md): a row whose blocks
// share one f16 scale d is I2_S's formula with scale d; other rows sum float(D_b) * d_b.
void matmul_i8q_rows_tq(const int8_t* q, const I8Row* act, int64_t n_tokens, const WeightView& w, int64_t row_begin,
                        int64_t row_end, float* y);

// ggml_vec_dot_f16 of the AVX-512 build (spec 8.4): 4 accumulators x 16 lanes over
// chunks of 64, fixed reduction order, scalar tail accumulated in double.
float vec_dot_f16(const uint16_t* a, const uint16_t* b, int64_t n);
// llamafile tinyBLAS dot of F16 `a` with F32 `b` (AVX-512): one 16-lane FMA chain over
// n (n % 16 == 0), then the 16-lane tree sum.
float tinyblas_dot_f16_f32(const uint16_t* a, const float* b, int64_t n);
// The same chain and tree sum for F32 x F32.
float tinyblas_dot_f32(const float* a, const float* b, int64_t n);

// ---- normalisation, RoPE -------------------------------------------------------------
// RMSNorm without the gain (spec 8.1): y = x * (1 / sqrtf(mean(x^2) + eps)), the sum of
// squares accumulated in double. The gain multiply is a separate elementwise op.
void rms_norm(const float* x, int64_t n, float eps, float* y);

// RoPE in place on `n_heads` heads of `head_dim` floats at position `pos` (spec 8.3):
// theta running product in float, cosf/sinf, the fma pattern of the reference binary.
// NEOX pairs (i, i + head_dim/2); normal (GPT-J) pairs (2i, 2i+1).
void rope_neox(float* x, int64_t head_dim, int64_t n_heads, int64_t pos, float freq_base, float freq_scale);
void rope_normal(float* x, int64_t head_dim, int64_t n_heads, int64_t pos, float freq_base, float freq_scale);

// ---- attention ---------------------------------------------------------------------
// Softmax of one row as ggml_compute_forward_soft_max_f32 (spec 8.4):
// w = float(s * scale) + mask; max; e = expf_approx(w - max); sum in double from 16-lane
// tree sums; p = float(e * float(1 / sum)). mask may be null (no mask).
void softmax(const float* s, const float* mask, int64_t n, float scale, float* p);

// The KV cache of one layer as the reference lays it out: K rows [cell][n_head_kv * head_dim]
// and V transposed [n_head_kv * head_dim][n_ctx] (so a weighted sum is a contiguous dot), F16.
struct KvLayerView {
  uint16_t* k = nullptr;  // n_ctx * n_embd_kv
  uint16_t* v = nullptr;  // n_embd_kv * n_ctx (transposed)
  int64_t n_ctx = 0;
};

struct AttentionShape {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;  // GQA: query head h uses kv head h / (n_head / n_head_kv)
  int64_t head_dim = 0;
};

// Stores k and v (F32, [n_tokens][n_head_kv * head_dim]) for positions pos0.. into the
// cache, rounding to F16.
void kv_store(const float* k, const float* v, int64_t n_tokens, int64_t pos0, const AttentionShape& shape,
              const KvLayerView& kv);

// Causal attention for n_tokens queries at positions pos0..pos0+n_tokens-1 (q: F32,
// [n_tokens][n_head * head_dim], RoPE already applied) over cache cells 0..pos0+n_tokens-1.
// Reproduces the reference exactly: q rounded to F16, scores by vec_dot_f16, the KV window
// padded to a multiple of 32 cells with -inf mask, softmax with scale 1/sqrt(head_dim),
// weighted sum by tinyBLAS with F32 p (kPrompt) or vec_dot_f16 with F16-rounded p (kDecode).
// out: [n_tokens][n_head * head_dim]. scores_out / probs_out (optional, for tests):
// [n_head][n_tokens][n_kv_padded] raw q.k and softmax output, n_kv_padded =
// padded_kv_length(pos0 + n_tokens, kv.n_ctx). Cells of the window past the last stored position
// are read too (their scores are computed, then masked; their V entries meet p = 0), so they
// must hold finite values: zeros in a fresh cache, as in the reference.
void attention(const float* q, int64_t n_tokens, int64_t pos0, const AttentionShape& shape, const KvLayerView& kv,
               Mode mode, float* out, float* scores_out = nullptr, float* probs_out = nullptr);
// The padded KV window length the reference uses for a batch ending at position `end` (exclusive):
// max(32, end rounded up to 32).
int64_t padded_kv_length(int64_t end);
// The same, capped at the cache size as llama.cpp does (min(n_ctx, padded_kv_length(end))).
// attention() uses this window: scores_out / probs_out rows have this length.
int64_t padded_kv_length(int64_t end, int64_t n_ctx);

}  // namespace bitnet::ref
