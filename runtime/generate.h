// Text generation: feed the prompt in one batch, then sample one token per step through
// the KV cache, streaming text as it is produced.
#pragma once

#include "runtime/sampler.h"
#include "runtime/session.h"
#include "runtime/tokenizer.h"

#include <functional>
#include <string>
#include <vector>

namespace bitnet::runtime {

struct GenerateOptions {
  // Tokens to generate (stops earlier at end of generation); -1: until end of generation or
  // until the context is full (llama.cpp's -n -1).
  int32_t n_predict = 128;
  SamplerOptions sampling;
  bool stop_at_eog = true;
  int32_t dump_logit_steps = 0;  // record the top-k logits of the first K steps
  int32_t logits_topk = 0;
  // Tokens the session already holds before `prompt_ids` (a chat's earlier turns): the
  // repetition penalty looks at them too, as llama.cpp's does at the whole context.
  std::vector<int32_t> earlier_tokens;
};

// One count of generated tokens: `generated_tokens` is the number of ids generated (the
// length of GenerateResult::generated_ids). The first of them is sampled from the prompt
// pass's logits, so only the others cost a decode step: `decode_steps` (one fewer, or
// equal when generation stopped right after a step) is what the decode rate divides by.
struct Timings {
  double prompt_ms = 0;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // == generated_ids.size()
  double generate_ms = 0;        // time in single-token forward passes (decode steps)
  int64_t decode_steps = 0;      // single-token forward passes
  double prompt_tokens_per_s() const { return prompt_ms > 0 ? prompt_tokens * 1000.0 / prompt_ms : 0; }
  double generate_tokens_per_s() const { return generate_ms > 0 ? decode_steps * 1000.0 / generate_ms : 0; }
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated_ids;
  std::string text;  // generated text only
  Timings timings;
  std::vector<std::vector<Candidate>> dumped_logits;  // per step: top-k (id, logit)
  std::string stop_reason;                            // "length", "eog" or "context"
};

// `session` is built with last-token logits and holds options.earlier_tokens (pos 0 when none); `prompt_ids` must not
// be empty (a caller generating unconditionally passes just BOS). `on_text` receives printable UTF-8 as soon as it is
// complete (multi-byte characters split across tokens are held back until whole).
Expected<GenerateResult> generate(Session& session, const Tokenizer& tokenizer, std::vector<int32_t> prompt_ids,
                                  const GenerateOptions& options,
                                  const std::function<void(std::string_view)>& on_text = {});

// Holds back the tail of a byte stream that is an incomplete UTF-8 sequence.
class Utf8Stream {
 public:
  std::string push(std::string_view bytes);  // returns what is complete so far
  std::string flush();                       // whatever remains (possibly invalid)

 private:
  std::string pending_;
};

}  // namespace bitnet::runtime
