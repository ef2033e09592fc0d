// OpenAI-shaped response bodies of `bitnet serve`: whole completions, stream chunks, usage,
// logprobs and errors. Plain JSON builders: no HTTP, no scheduler.
#pragma once

#include "bitnet/model.h"
#include "bitnet/scheduler.h"
#include "server/openai_request.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bitnet::server {

// {"error": {"message", "type", "code"}}
nlohmann::json error_json(const ApiError& error);

// What every chunk and response of one request shares.
struct ResponseHeader {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;  // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;
  std::string model;
  std::string fingerprint;  // system_fingerprint
};

// The logprobs of the tokens in `logprobs` in the endpoint's shape (see the .cpp), appended to
// `into` (an object built up over a stream's events, or one response). `text_offset` is where
// the first token's text starts in the completion.
void append_logprobs(Endpoint endpoint, const Vocab& vocab, const std::vector<SampledLogprobs>& logprobs,
                     int64_t& text_offset, nlohmann::json& into);
nlohmann::json empty_logprobs(Endpoint endpoint);

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// A whole (non-streamed) response.
nlohmann::json completion_json(const ResponseHeader& header, const std::string& text, const std::string& finish_reason,
                               const nlohmann::json* logprobs, int64_t prompt_tokens, int64_t completion_tokens);

// A stream chunk: text (a delta for chat), finish_reason "" while running. Chat's first chunk
// carries the role (`first`).
nlohmann::json chunk_json(const ResponseHeader& header, const std::string& text, const std::string& finish_reason,
                          const nlohmann::json* logprobs, bool first);
// The last chunk when stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk_json(const ResponseHeader& header, int64_t prompt_tokens, int64_t completion_tokens);

// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& data);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

}  // namespace bitnet::server
