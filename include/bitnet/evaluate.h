// Teacher-forced evaluation (`bitnet eval`, llama-perplexity): the token-weighted negative
// log-likelihood and perplexity of a token sequence, over sliding windows when it is longer
// than the window, in prompt mode (one batch per window) or decode mode (one token per step
// through the KV cache, the arithmetic of generation).
#pragma once

#include "bitnet/export.h"
#include "bitnet/generate.h"
#include "bitnet/model.h"

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace bitnet {

struct EvalParams {
  int64_t ctx = 0;     // window length; 0: the whole sequence if it fits the model's context
  int64_t stride = 0;  // window step; 0: ctx / 2
  bool decode_mode = false;
  bool keep_logits = false;      // keep every position's logits (the sequence must fit one window)
  int32_t top_logits_steps = 0;  // record the top logits after each of the first K tokens
  int32_t top_logits_k = 10;
  int threads = 0;  // 0: the CPUs this process may use, at most 8
};

struct Evaluation {
  int64_t n_tokens = 0;
  int64_t n_predicted = 0;  // tokens scored
  double nll_sum = 0;       // sum of -log p(token)
  double mean_nll() const { return n_predicted ? nll_sum / static_cast<double>(n_predicted) : 0; }
  double perplexity() const { return std::exp(mean_nll()); }
  int64_t windows = 0;
  int64_t processed_tokens = 0;  // tokens run through the model (windows overlap)
  double ms = 0;
  int64_t n_vocab = 0;
  std::vector<float> logits;  // [n_tokens, n_vocab]: row i = the logits after token i (keep_logits)
  std::vector<std::vector<TopLogit>> top_logits;
};

// Runs in contexts of its own. Fails on fewer than 2 tokens, ids outside the vocabulary, a
// stride larger than the window, and keep_logits for a sequence longer than one window.
BITNET_API Result<Evaluation> evaluate(const Model& model, std::span<const Token> tokens, const EvalParams& params);

}  // namespace bitnet
