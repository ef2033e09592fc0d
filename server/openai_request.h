// The JSON -> parameters layer of `bitnet serve`: reads an OpenAI-style request body
// (/v1/completions, /v1/chat/completions) into what the scheduler needs, checking every field's
// type and range. It knows nothing of HTTP or of the model beyond a few limits, so a fuzzer can
// drive it directly (tests/fuzz/fuzz_openai_request.cpp).
#pragma once

#include "bitnet/chat.h"
#include "bitnet/sampler.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bitnet::server {

// An error as OpenAI reports it: {"error": {"message", "type", "code"}} with this HTTP status.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string code;  // e.g. "context_length_exceeded"; "" is sent as null
};

enum class Endpoint { kCompletions, kChatCompletions };

// What a request may ask for, from the server's flags and the model.
struct RequestLimits {
  std::string model_alias;          // the only accepted `model` (absent is fine too)
  int64_t n_ctx_slot = 0;           // a request's context
  int64_t n_vocab = 0;              // token ids in a prompt must be below this
  int32_t default_max_tokens = -1;  // when the request names none (-n/--n-predict)
  SamplerParams default_sampling;   // llama-server's defaults unless the flags changed them
};

inline constexpr int32_t kMaxStopStrings = 16;
inline constexpr int32_t kMaxCompletionLogprobs = 5;  // /v1/completions `logprobs` (OpenAI's limit)
inline constexpr int32_t kMaxTopLogprobs = 20;        // /v1/chat/completions `top_logprobs`

struct CompletionParams {
  Endpoint endpoint = Endpoint::kCompletions;
  // /v1/completions: the prompt as text or as token ids.
  std::variant<std::string, std::vector<int32_t>> prompt;
  // /v1/chat/completions: the conversation (text content only).
  std::vector<ChatMessage> messages;
  int32_t max_tokens = -1;  // -1: until the end of generation or the context is full
  SamplerParams sampling;
  bool random_seed = true;  // no `seed` given: the caller picks one
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int32_t top_logprobs = -1;   // -1: no logprobs; else the alternatives per token
  bool echo = false;           // /v1/completions: the prompt's text before the completion
  bool ignore_eos = false;     // llama-server's: generate past end-of-generation tokens
};

// Parses and checks a request body. Unknown fields are ignored (clients send many); known ones
// with a wrong type or value are errors naming the field.
std::variant<CompletionParams, ApiError> parse_completion_request(std::string_view body, Endpoint endpoint,
                                                                  const RequestLimits& limits);

}  // namespace bitnet::server
