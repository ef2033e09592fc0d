// Teacher-forced evaluation: token-weighted negative log-likelihood and perplexity of a
// token sequence, over sliding windows when it is longer than the context, in prompt mode
// (one batch per window) or decode mode (one token per step through the KV cache).
#pragma once

#include "runtime/model.h"
#include "runtime/sampler.h"

#include <vector>

namespace bitnet::runtime {

struct EvalOptions {
  int64_t ctx = 0;     // window length; 0: the whole sequence if it fits the model context
  int64_t stride = 0;  // window step; 0: ctx / 2
  bool decode_mode = false;
  bool keep_logits = false;  // keep [n_tokens, n_vocab] logits (the sequence must fit one window)
  int32_t dump_logit_steps = 0;
  int32_t logits_topk = 0;
  int threads = 1;
};

struct EvalResult {
  int64_t n_tokens = 0;
  int64_t n_predicted = 0;  // tokens scored
  double nll_sum = 0;       // sum of -log p(token)
  double mean_nll() const { return n_predicted ? nll_sum / static_cast<double>(n_predicted) : 0; }
  double perplexity() const;
  int64_t windows = 0;
  int64_t processed_tokens = 0;  // tokens run through the model (windows overlap)
  double ms = 0;
  std::vector<float> logits;  // row i = logits after token i (keep_logits)
  int64_t n_vocab = 0;
  std::vector<std::vector<Candidate>> dumped_logits;  // top-k after each of the first positions
};

Expected<EvalResult> evaluate(const Model& model, std::span<const int32_t> tokens, const EvalOptions& options);

}  // namespace bitnet::runtime
