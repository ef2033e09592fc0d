// Response JSON in the shapes OpenAI's API documents (and its official clients parse).
#include "server/openai_response.h"

#include "server/utf8.h"

namespace bitnet::server {
namespace {

using json = nlohmann::json;

json utf8_bytes(const std::string& s) {
  json bytes = json::array();
  for (unsigned char c : s) bytes.push_back(c);
  return bytes;
}

}  // namespace

json error_json(const ApiError& error) {
  return {{"error",
           {{"message", error.message},
            {"type", error.type},
            {"code", error.code.empty() ? json(nullptr) : json(error.code)},
            {"param", nullptr}}}};
}

json empty_logprobs(Endpoint endpoint) {
  if (endpoint == Endpoint::kChatCompletions) return {{"content", json::array()}};
  return {{"tokens", json::array()},
          {"token_logprobs", json::array()},
          {"top_logprobs", json::array()},
          {"text_offset", json::array()}};
}

// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}
// Completions (legacy): {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{piece: logprob}],
// "text_offset": [...]}
// Token pieces can be part of a character, which nlohmann refuses to serialise: shown with U+FFFD,
// while `bytes` keeps the exact bytes.
void append_logprobs(Endpoint endpoint, const Vocab& vocab, const std::vector<SampledLogprobs>& logprobs,
                     int64_t& text_offset, json& into) {
  for (const SampledLogprobs& lp : logprobs) {
    const std::string piece = vocab.token_to_piece(lp.sampled.token);
    if (endpoint == Endpoint::kChatCompletions) {
      json top = json::array();
      for (const TokenLogprob& t : lp.top) {
        const std::string p = vocab.token_to_piece(t.token);
        top.push_back({{"token", printable_utf8(p)}, {"logprob", t.logprob}, {"bytes", utf8_bytes(p)}});
      }
      into["content"].push_back({{"token", printable_utf8(piece)},
                                 {"logprob", lp.sampled.logprob},
                                 {"bytes", utf8_bytes(piece)},
                                 {"top_logprobs", std::move(top)}});
    } else {
      json top = json::object();
      for (const TokenLogprob& t : lp.top) top[printable_utf8(vocab.token_to_piece(t.token))] = t.logprob;
      into["tokens"].push_back(printable_utf8(piece));
      into["token_logprobs"].push_back(lp.sampled.logprob);
      into["top_logprobs"].push_back(std::move(top));
      into["text_offset"].push_back(text_offset);
    }
    text_offset += static_cast<int64_t>(piece.size());
  }
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {

json base(const ResponseHeader& h, const char* object) {
  return {{"id", h.id},
          {"object", object},
          {"created", h.created},
          {"model", h.model},
          {"system_fingerprint", h.fingerprint}};
}

}  // namespace

json completion_json(const ResponseHeader& h, const std::string& text, const std::string& finish_reason,
                     const json* logprobs, int64_t prompt_tokens, int64_t completion_tokens) {
  const bool chat = h.endpoint == Endpoint::kChatCompletions;
  json choice = {{"index", 0}, {"finish_reason", finish_reason}, {"logprobs", logprobs ? *logprobs : json(nullptr)}};
  if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  json out = base(h, chat ? "chat.completion" : "text_completion");
  out["choices"] = json::array({std::move(choice)});
  out["usage"] = usage_json(prompt_tokens, completion_tokens);
  return out;
}

json chunk_json(const ResponseHeader& h, const std::string& text, const std::string& finish_reason,
                const json* logprobs, bool first) {
  const bool chat = h.endpoint == Endpoint::kChatCompletions;
  json choice = {{"index", 0},
                 {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)},
                 {"logprobs", logprobs ? *logprobs : json(nullptr)}};
  if (chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || (first && finish_reason.empty())) delta["content"] = text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text;
  }
  json out = base(h, chat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = json::array({std::move(choice)});
  return out;
}

json usage_chunk_json(const ResponseHeader& h, int64_t prompt_tokens, int64_t completion_tokens) {
  json out = base(h, h.endpoint == Endpoint::kChatCompletions ? "chat.completion.chunk" : "text_completion");
  out["choices"] = json::array();
  out["usage"] = usage_json(prompt_tokens, completion_tokens);
  return out;
}

std::string sse_event(const json& data) {
  return "data: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace bitnet::server
