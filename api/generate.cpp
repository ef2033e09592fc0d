// Generation of the public API (see bitnet/generate.h): runtime::generate on the context's
// session.
#include "bitnet/generate.h"

#include "api/context_impl.h"
#include "api/conversions.h"
#include "runtime/generate.h"

namespace bitnet {

Result<Generation> generate(Context& ctx, std::span<const Token> prompt, const GenerateParams& params,
                            const std::function<void(std::string_view text)>& on_text) {
  if (params.top_logits_steps < 0 || params.top_logits_k < 1) {
    return Error{"top_logits_steps must not be negative and top_logits_k must be positive"};
  }
  // The sampler's ranges, as Sampler::create checks them.
  if (auto checked = Sampler::create(params.sampling); !checked.ok()) return checked.error();
  Context::Impl& impl = ctx.impl();
  impl.logits = nullptr;  // the session's own outputs replace the last decode's
  runtime::GenerateOptions options;
  options.n_predict = params.n_predict;
  options.sampling = api::sampler_options(params.sampling);
  options.stop_at_eog = params.stop_at_eog;
  options.dump_logit_steps = params.top_logits_steps;
  options.logits_topk = params.top_logits_k;
  options.earlier_tokens = params.earlier_tokens;
  const runtime::Tokenizer& tokenizer = *impl.model->impl().vocab_impl.tokenizer;
  auto result =
      runtime::generate(*impl.session, tokenizer, std::vector<int32_t>(prompt.begin(), prompt.end()), options, on_text);
  if (!result.ok()) return Error{result.error().message};
  Generation g;
  g.prompt_ids = std::move(result->prompt_ids);
  g.generated_ids = std::move(result->generated_ids);
  g.text = std::move(result->text);
  const runtime::Timings& t = result->timings;
  g.timings = {t.prompt_ms, t.prompt_tokens, t.generated_tokens, t.generate_ms, t.decode_steps};
  g.top_logits = api::top_logits(result->dumped_logits);
  g.stop_reason = std::move(result->stop_reason);
  return g;
}

}  // namespace bitnet
