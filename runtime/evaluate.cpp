// Teacher-forced evaluation (see evaluate.h).
#include "runtime/evaluate.h"

#include "runtime/nonfinite.h"

#include <chrono>
#include <cmath>

namespace bitnet::runtime {
namespace {

// -log softmax(row)[target], in double.
double token_nll(std::span<const float> row, int32_t target) {
  float max = row[0];
  for (float v : row) max = std::max(max, v);
  double sum = 0;
  for (float v : row) sum += std::exp(static_cast<double>(v) - max);
  return std::log(sum) + max - row[static_cast<size_t>(target)];
}

}  // namespace

double EvalResult::perplexity() const {
  return std::exp(mean_nll());
}

Expected<EvalResult> evaluate(const Model& model, std::span<const int32_t> tokens, const EvalOptions& options) {
  const auto n = static_cast<int64_t>(tokens.size());
  if (n < 2) return make_error("evaluation needs at least 2 tokens, got {}", n);
  const auto n_vocab = static_cast<int64_t>(model.config().n_vocab);
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      return make_error("token id {} at position {} is outside the vocabulary [0, {})", tokens[i], i, n_vocab);
    }
  }
  const auto max_ctx = static_cast<int64_t>(model.config().n_ctx_train);
  int64_t ctx = options.ctx > 0 ? options.ctx : std::min(n, max_ctx);
  if (ctx < 2) return make_error("the window must hold at least 2 tokens, got --ctx {}", ctx);
  const int64_t stride = options.stride > 0 ? options.stride : std::max<int64_t>(1, ctx / 2);
  if (stride > ctx) return make_error("--stride {} is larger than the window {}", stride, ctx);
  if (options.keep_logits && n > ctx) {
    return make_error("--logits-out needs the whole sequence in one window: {} tokens > --ctx {}", n, ctx);
  }
  BITNET_ASSIGN_OR_RETURN(auto session, model.new_session(true, ctx, options.threads));

  EvalResult result;
  result.n_tokens = n;
  result.n_vocab = n_vocab;
  if (options.keep_logits) result.logits.resize(static_cast<size_t>(n * n_vocab));
  const auto start = std::chrono::steady_clock::now();
  int64_t scored_until = 0;  // targets at positions <= scored_until are done
  for (int64_t begin = 0;; begin += stride) {
    const int64_t end = std::min(begin + ctx, n);
    session->reset();
    ++result.windows;
    result.processed_tokens += end - begin;
    // Logits after each token of the window, row-major.
    std::vector<float> window_logits;
    auto window = tokens.subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin));
    if (options.decode_mode) {
      for (size_t i = 0; i < window.size(); ++i) {
        BITNET_ASSIGN_OR_RETURN(auto out, session->run(window.subspan(i, 1)));
        const Matrix& m = out.at("logits");
        window_logits.insert(window_logits.end(), m.data.begin(), m.data.end());
      }
    } else {
      BITNET_ASSIGN_OR_RETURN(auto out, session->run(window));
      window_logits = std::move(out.at("logits").data);
    }
    if (first_non_finite(window_logits)) return nonfinite_logits_error(*session);  // names the first non-finite node
    for (int64_t j = std::max(begin + 1, scored_until + 1); j < end; ++j) {
      const std::span<const float> row(window_logits.data() + (j - 1 - begin) * n_vocab, static_cast<size_t>(n_vocab));
      result.nll_sum += token_nll(row, tokens[j]);
      ++result.n_predicted;
    }
    scored_until = end - 1;
    for (int64_t i = begin; i < end; ++i) {
      const std::span<const float> row(window_logits.data() + (i - begin) * n_vocab, static_cast<size_t>(n_vocab));
      if (options.keep_logits) std::copy(row.begin(), row.end(), result.logits.begin() + i * n_vocab);
      if (begin == 0 && i < options.dump_logit_steps && options.logits_topk > 0) {
        result.dumped_logits.push_back(top_k_logits(row, static_cast<size_t>(options.logits_topk)));
      }
    }
    if (end == n) break;
  }
  result.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace bitnet::runtime
