// Evaluation of the public API (see bitnet/evaluate.h): runtime::evaluate.
#include "bitnet/evaluate.h"

#include "api/conversions.h"
#include "api/model_impl.h"
#include "runtime/evaluate.h"

namespace bitnet {

Result<Evaluation> evaluate(const Model& model, std::span<const Token> tokens, const EvalParams& params) {
  if (params.top_logits_steps < 0 || params.top_logits_k < 1) {
    return Error{"top_logits_steps must not be negative and top_logits_k must be positive"};
  }
  if (params.threads < 0 || params.threads > 1024) return Error{"threads must be in [0, 1024]"};
  if (params.ctx < 0 || params.stride < 0) return Error{"ctx and stride must not be negative"};
  runtime::EvalOptions options;
  options.ctx = params.ctx;
  options.stride = params.stride;
  options.decode_mode = params.decode_mode;
  options.keep_logits = params.keep_logits;
  options.dump_logit_steps = params.top_logits_steps;
  options.logits_topk = params.top_logits_k;
  options.threads = api::resolve_threads(params.threads);
  auto result = runtime::evaluate(*model.impl().model, tokens, options);
  if (!result.ok()) return Error{result.error().message};
  Evaluation e;
  e.n_tokens = result->n_tokens;
  e.n_predicted = result->n_predicted;
  e.nll_sum = result->nll_sum;
  e.windows = result->windows;
  e.processed_tokens = result->processed_tokens;
  e.ms = result->ms;
  e.n_vocab = result->n_vocab;
  e.logits = std::move(result->logits);
  e.top_logits = api::top_logits(result->dumped_logits);
  return e;
}

}  // namespace bitnet
