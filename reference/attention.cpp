// Softmax, KV-cache stores and causal attention as the reference graph computes them (spec 8.4).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "reference/kernels.h"
#include "reference/lanes.h"

namespace bitnet::ref {

using detail::kLanes;
using detail::Lanes;

// ggml_compute_forward_soft_max_f32 on one row (slope 1, no ALiBi).
void softmax(const float* s, const float* mask, int64_t n, float scale, float* p) {
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    w[i] = s[i] * scale;
    if (mask != nullptr) w[i] = w[i] + mask[i];
  }
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max = w[i] > max ? w[i] : max;

  // ggml_vec_soft_max_f32: blocks of 16 through ggml_v_expf, each block's sum reduced as a
  // register (tree order) and added to a double; leftovers use libm expf, added one by one.
  double sum = 0.0;
  const int64_t vector_end = n - n % kLanes;
  for (int64_t i = 0; i < vector_end; i += kLanes) {
    Lanes e;
    for (int l = 0; l < kLanes; ++l) {
      e[l] = expf_approx(w[i + l] - max);
      p[i + l] = e[l];
    }
    sum += static_cast<double>(detail::tree_sum(e));
  }
  for (int64_t i = vector_end; i < n; ++i) {
    p[i] = std::exp(w[i] - max);
    sum += static_cast<double>(p[i]);
  }
  // 1/sum in double, then handed to ggml_vec_scale_f32 as a float.
  const auto inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) p[i] = p[i] * inv;
}

int64_t padded_kv_length(int64_t end) {
  // llama_kv_cache_get_padding() = 32 without flash attention; at least one padding unit.
  constexpr int64_t kPad = 32;
  return std::max(kPad, (end + kPad - 1) / kPad * kPad);
}

int64_t padded_kv_length(int64_t end, int64_t n_ctx) {
  return std::min(n_ctx, padded_kv_length(end));
}

void kv_store(const float* k, const float* v, int64_t n_tokens, int64_t pos0, const AttentionShape& shape,
              const KvLayerView& kv) {
  const int64_t n_embd_kv = shape.n_head_kv * shape.head_dim;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t cell = pos0 + t;
    for (int64_t c = 0; c < n_embd_kv; ++c) {
      kv.k[cell * n_embd_kv + c] = fp32_to_fp16(k[t * n_embd_kv + c]);
      kv.v[c * kv.n_ctx + cell] = fp32_to_fp16(v[t * n_embd_kv + c]);
    }
  }
}

// kq = K q over the whole padded window (masked cells are computed too: they hold zeros in a
// fresh cache), softmax with the causal -inf mask, then kqv = V p.
void attention(const float* q, int64_t n_tokens, int64_t pos0, const AttentionShape& shape, const KvLayerView& kv,
               Mode mode, float* out, float* scores_out, float* probs_out) {
  const int64_t hd = shape.head_dim;
  const int64_t n_embd = shape.n_head * hd;
  const int64_t n_embd_kv = shape.n_head_kv * hd;
  const int64_t group = shape.n_head / shape.n_head_kv;
  const int64_t n_kv = padded_kv_length(pos0 + n_tokens, kv.n_ctx);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  constexpr float kInf = std::numeric_limits<float>::infinity();

  std::vector<uint16_t> q16(static_cast<size_t>(hd));
  std::vector<float> scores(static_cast<size_t>(n_kv));
  std::vector<float> mask(static_cast<size_t>(n_kv));
  std::vector<float> probs(static_cast<size_t>(n_kv));
  std::vector<uint16_t> probs16(static_cast<size_t>(n_kv));

  for (int64_t h = 0; h < shape.n_head; ++h) {
    const int64_t g = h / group;  // GQA: consecutive query heads share one kv head
    for (int64_t t = 0; t < n_tokens; ++t) {
      const int64_t pos = pos0 + t;
      // Q is a non-contiguous view in the reference graph, so ggml converts it to the
      // vec_dot type (F16) before the product.
      for (int64_t d = 0; d < hd; ++d) q16[d] = fp32_to_fp16(q[t * n_embd + h * hd + d]);
      for (int64_t j = 0; j < n_kv; ++j) {
        scores[j] = vec_dot_f16(kv.k + j * n_embd_kv + g * hd, q16.data(), hd);
        mask[j] = j <= pos ? 0.0f : -kInf;
      }
      softmax(scores.data(), mask.data(), n_kv, scale, probs.data());

      const int64_t row = (h * n_tokens + t) * n_kv;
      if (scores_out != nullptr) std::copy(scores.begin(), scores.end(), scores_out + row);
      if (probs_out != nullptr) std::copy(probs.begin(), probs.end(), probs_out + row);

      // V is stored transposed, so each output element is a contiguous dot over the window.
      // Prompt: tinyBLAS on F32 p. Decode (llamafile refuses a single column), or a window
      // tinyBLAS refuses (n_kv % 16 != 0, only when n_ctx is not a multiple of 16): p is
      // converted to F16 and ggml_vec_dot_f16 does the sums.
      const bool tinyblas = mode == Mode::kPrompt && n_kv % kLanes == 0;
      if (!tinyblas) {
        for (int64_t j = 0; j < n_kv; ++j) probs16[j] = fp32_to_fp16(probs[j]);
      }
      for (int64_t d = 0; d < hd; ++d) {
        const uint16_t* v_row = kv.v + (g * hd + d) * kv.n_ctx;
        out[t * n_embd + h * hd + d] =
            tinyblas ? tinyblas_dot_f16_f32(v_row, probs.data(), n_kv) : vec_dot_f16(v_row, probs16.data(), n_kv);
      }
    }
  }
}

}  // namespace bitnet::ref
