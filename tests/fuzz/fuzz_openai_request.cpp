// libFuzzer target: request bodies -> parse_completion_request (the JSON -> parameters layer of
// `bitnet serve`), for both endpoints. Any input must give parameters within the limits or an
// error with a 4xx status, never a crash, a hang or an exception.
#include "server/openai_request.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet::server;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const RequestLimits limits{.model_alias = "m", .n_ctx_slot = 512, .n_vocab = 1000, .default_max_tokens = -1};
  for (Endpoint endpoint : {Endpoint::kCompletions, Endpoint::kChatCompletions}) {
    auto result = parse_completion_request(body, endpoint, limits);
    if (auto* error = std::get_if<ApiError>(&result)) {
      check(error->status >= 400 && error->status < 500 && !error->message.empty());
      continue;
    }
    const CompletionParams& p = std::get<CompletionParams>(result);
    check(p.max_tokens == -1 || (p.max_tokens >= 1 && p.max_tokens <= limits.n_ctx_slot));
    check(p.sampling.temperature >= 0 && p.sampling.temperature <= 2);
    check(p.sampling.top_k >= 0 && p.sampling.top_k <= limits.n_vocab);
    check(p.top_logprobs >= -1 && p.top_logprobs <= kMaxTopLogprobs);
    check(p.stop.size() <= kMaxStopStrings);
    if (endpoint == Endpoint::kChatCompletions) {
      check(!p.messages.empty());
    } else if (auto* ids = std::get_if<std::vector<int32_t>>(&p.prompt)) {
      check(!ids->empty());
      for (int32_t id : *ids) check(id >= 0 && id < limits.n_vocab);
    }
  }
  return 0;
}
