// Text generation on one sequence of a Context: feed a prompt, then sample token after token
// through the KV cache, streaming the text as it is produced (what `bitnet run` and `bitnet
// chat` do). For many sequences at once, drive Context::decode and one Sampler per sequence.
#pragma once

#include "bitnet/context.h"
#include "bitnet/export.h"
#include "bitnet/sampler.h"

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet {

struct GenerateParams {
  // Tokens to generate; fewer at an end-of-generation token; -1: until then or until the
  // context is full.
  int32_t n_predict = 128;
  SamplerParams sampling;  // temperature <= 0: greedy
  bool stop_at_eog = true;
  int32_t top_logits_steps = 0;  // record the top logits of the first K steps
  int32_t top_logits_k = 10;
  // Tokens sequence 0 already holds (a chat's earlier turns): the repetition penalty looks at
  // them too, as llama.cpp's does at the whole context.
  std::vector<Token> earlier_tokens;
};

struct GenerateTimings {
  double prompt_ms = 0;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // the first is sampled from the prompt's logits
  double generate_ms = 0;        // time in one-token decode steps
  int64_t decode_steps = 0;
  double prompt_tokens_per_s() const { return prompt_ms > 0 ? prompt_tokens * 1000.0 / prompt_ms : 0; }
  double generate_tokens_per_s() const { return generate_ms > 0 ? decode_steps * 1000.0 / generate_ms : 0; }
};

struct TopLogit {
  Token id;
  float logit;
};

struct Generation {
  std::vector<Token> prompt_ids;
  std::vector<Token> generated_ids;
  std::string text;  // the generated text only
  GenerateTimings timings;
  std::vector<std::vector<TopLogit>> top_logits;  // per recorded step, best first
  std::string stop_reason;                        // "length", "eog" or "context"
};

// Generates on sequence 0 of `ctx`, which must hold exactly params.earlier_tokens (nothing for
// a fresh context). `prompt` must not be empty (pass BOS alone to start unconditioned).
// `on_text` receives printable UTF-8 as soon as it is complete (a character split across
// tokens is held back until whole). Afterwards the context holds the prompt and every
// generated token but the last.
BITNET_API Result<Generation> generate(Context& ctx, std::span<const Token> prompt, const GenerateParams& params,
                                       const std::function<void(std::string_view text)>& on_text = {});

}  // namespace bitnet
