// Request bodies -> CompletionParams (see openai_request.h). Ranges follow OpenAI's API where
// it has one (temperature, penalties, logprobs) and llama-server's otherwise (top_k, min_p).
#include "server/openai_request.h"

#include "server/utf8.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

namespace bitnet::server {
namespace {

using json = nlohmann::json;

// Thrown inside the parser only; parse_completion_request turns it into its result.
struct BadField {
  ApiError error;
};

[[noreturn]] void fail(std::string message, std::string code = "") {
  throw BadField{{400, std::move(message), "invalid_request_error", std::move(code)}};
}

const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number_in(const json& body, const char* name, double lo, double hi, double fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) fail(fmt::format("'{}' must be a number", name));
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) fail(fmt::format("'{}' must be in [{}, {}]", name, lo, hi));
  return x;
}

// An integer (2.0 counts; 2.5 does not) in [lo, hi].
int64_t integer_in(const json& body, const char* name, int64_t lo, int64_t hi, int64_t fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
      fail(fmt::format("'{}' must be in [{}, {}]", name, lo, hi));
    }
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) fail(fmt::format("'{}' must be in [{}, {}]", name, lo, hi));
    return x;
  }
  if (v->is_number_float()) {
    const double x = v->get<double>();
    if (std::isfinite(x) && x == std::floor(x) && x >= static_cast<double>(lo) && x <= static_cast<double>(hi)) {
      return static_cast<int64_t>(x);
    }
  }
  fail(fmt::format("'{}' must be an integer in [{}, {}]", name, lo, hi));
}

bool boolean(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(fmt::format("'{}' must be true or false", name));
  return v->get<bool>();
}

std::string text_of(const json& v, const std::string& what) {
  if (!v.is_string()) fail(fmt::format("{} must be a string", what));
  // nlohmann keeps invalid UTF-8 that arrived as raw bytes; the tokenizer and the reply need text.
  std::string s = v.get<std::string>();
  if (!is_valid_utf8(s)) fail(fmt::format("{} is not valid UTF-8", what));
  return s;
}

std::vector<std::string> stop_strings(const json& body) {
  const json* v = field(body, "stop");
  std::vector<std::string> out;
  if (!v) return out;
  if (v->is_string()) {
    out.push_back(text_of(*v, "'stop'"));
  } else if (v->is_array()) {
    if (v->size() > kMaxStopStrings) fail(fmt::format("'stop' has more than {} strings", kMaxStopStrings));
    for (const json& s : *v) out.push_back(text_of(s, "each 'stop' entry"));
  } else {
    fail("'stop' must be a string or a list of strings");
  }
  std::erase_if(out, [](const std::string& s) { return s.empty(); });
  return out;
}

SamplerParams sampling(const json& body, const SamplerParams& defaults, int64_t n_vocab) {
  SamplerParams p = defaults;
  p.temperature = static_cast<float>(number_in(body, "temperature", 0, 2, defaults.temperature));
  p.top_p = static_cast<float>(number_in(body, "top_p", 0, 1, defaults.top_p));
  p.top_k = static_cast<int32_t>(integer_in(body, "top_k", 0, n_vocab, defaults.top_k));
  p.min_p = static_cast<float>(number_in(body, "min_p", 0, 1, defaults.min_p));
  p.repeat_penalty = static_cast<float>(number_in(body, "repeat_penalty", 0.01, 10, defaults.repeat_penalty));
  p.repeat_last_n = static_cast<int32_t>(integer_in(body, "repeat_last_n", 0, 1 << 20, defaults.repeat_last_n));
  p.presence_penalty = static_cast<float>(number_in(body, "presence_penalty", -2, 2, defaults.presence_penalty));
  p.frequency_penalty = static_cast<float>(number_in(body, "frequency_penalty", -2, 2, defaults.frequency_penalty));
  return p;
}

std::variant<std::string, std::vector<int32_t>> prompt_of(const json& body, int64_t n_vocab) {
  const json* v = field(body, "prompt");
  if (!v) fail("'prompt' is required");
  if (v->is_string()) return text_of(*v, "'prompt'");
  if (!v->is_array()) fail("'prompt' must be a string, a list of one string, or a list of token ids");
  if (v->size() == 1 && (*v)[0].is_string()) return text_of((*v)[0], "'prompt'");
  if (!v->empty() && (*v)[0].is_string()) {
    fail("'prompt' lists several prompts; send one request per prompt (n > 1 is not supported)");
  }
  std::vector<int32_t> ids;
  for (const json& t : *v) {
    if (!t.is_number_integer()) fail("'prompt' must be a string, a list of one string, or a list of token ids");
    const int64_t id =
        t.is_number_unsigned() && t.get<uint64_t>() > static_cast<uint64_t>(n_vocab) ? n_vocab : t.get<int64_t>();
    if (id < 0 || id >= n_vocab)
      fail(fmt::format("token id {} in 'prompt' is outside the vocabulary [0, {})", t.dump(), n_vocab));
    ids.push_back(static_cast<int32_t>(id));
  }
  if (ids.empty()) fail("'prompt' is empty");
  return ids;
}

// A message's content: a string, or a list of {"type": "text", "text": ...} parts (joined).
std::string content_of(const json& message) {
  const json* c = field(message, "content");
  if (!c) return "";
  if (c->is_string()) return text_of(*c, "a message's 'content'");
  if (!c->is_array()) fail("a message's 'content' must be a string or a list of text parts");
  std::string text;
  for (const json& part : *c) {
    if (!part.is_object()) fail("a message's content parts must be objects");
    const json* type = field(part, "type");
    if (!type || !type->is_string() || type->get<std::string>() != "text") {
      fail("only text content parts are supported (this model reads text only)");
    }
    const json* t = field(part, "text");
    if (!t) fail("a text content part has no 'text'");
    text += text_of(*t, "a content part's 'text'");
  }
  return text;
}

std::vector<ChatMessage> messages_of(const json& body) {
  const json* v = field(body, "messages");
  if (!v) fail("'messages' is required");
  if (!v->is_array() || v->empty()) fail("'messages' must be a non-empty list");
  std::vector<ChatMessage> out;
  for (const json& m : *v) {
    if (!m.is_object()) fail("each message must be an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) fail("each message needs a 'role' string");
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system role
    if (r != "system" && r != "user" && r != "assistant") {
      fail(fmt::format("unsupported message role '{}' (system, developer, user or assistant)", role->dump()));
    }
    out.push_back({std::move(r), content_of(m)});
  }
  return out;
}

CompletionParams parse(const json& body, Endpoint endpoint, const RequestLimits& limits) {
  if (!body.is_object()) fail("the request body must be a JSON object");
  CompletionParams p;
  p.endpoint = endpoint;
  if (const json* model = field(body, "model")) {
    if (!model->is_string()) fail("'model' must be a string");
    if (model->get<std::string>() != limits.model_alias) {
      throw BadField{{404,
                      fmt::format("The model '{}' does not exist; this server serves '{}'", model->get<std::string>(),
                                  limits.model_alias),
                      "invalid_request_error", "model_not_found"}};
    }
  }
  if (endpoint == Endpoint::kCompletions) {
    p.prompt = prompt_of(body, limits.n_vocab);
  } else {
    p.messages = messages_of(body);
  }
  const int64_t n = integer_in(body, "n", 1, std::numeric_limits<int32_t>::max(), 1);
  if (n != 1) fail("'n' must be 1: one completion per request is supported");
  if (integer_in(body, "best_of", 1, std::numeric_limits<int32_t>::max(), 1) != 1) fail("'best_of' must be 1");

  // max_completion_tokens is the chat API's newer name; -1 (llama-server's "no limit") is allowed.
  const int64_t max_ctx = std::max<int64_t>(limits.n_ctx_slot, 1);
  const char* max_name = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  p.max_tokens = static_cast<int32_t>(integer_in(body, max_name, -1, max_ctx, limits.default_max_tokens));
  if (p.max_tokens == 0) fail(fmt::format("'{}' must be at least 1 (or -1: no limit)", max_name));

  p.sampling = sampling(body, limits.default_sampling, limits.n_vocab);
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) fail("'seed' must be an integer");
    if (!seed->is_number_unsigned() && seed->get<int64_t>() < 0) {
      if (seed->get<int64_t>() != -1) fail("'seed' must be -1 (random) or a non-negative integer");
    } else {
      p.sampling.seed = seed->get<uint64_t>();
      p.random_seed = false;
    }
  }
  p.stop = stop_strings(body);
  p.stream = boolean(body, "stream", false);
  p.ignore_eos = boolean(body, "ignore_eos", false);
  if (const json* options = field(body, "stream_options")) {
    if (!options->is_object()) fail("'stream_options' must be an object");
    if (!p.stream) fail("'stream_options' is only allowed with \"stream\": true");
    p.include_usage = boolean(*options, "include_usage", false);
  }

  if (endpoint == Endpoint::kCompletions) {
    // An integer (the alternatives per token); OpenAI's legacy API has no boolean form.
    p.top_logprobs = static_cast<int32_t>(integer_in(body, "logprobs", 0, kMaxCompletionLogprobs, -1));
    p.echo = boolean(body, "echo", false);
    if (p.echo && p.top_logprobs >= 0) fail("'echo' with 'logprobs' is not supported");
  } else {
    const bool logprobs = boolean(body, "logprobs", false);
    const int64_t top = integer_in(body, "top_logprobs", 0, kMaxTopLogprobs, 0);
    if (field(body, "top_logprobs") && !logprobs) fail("'top_logprobs' requires \"logprobs\": true");
    p.top_logprobs = logprobs ? static_cast<int32_t>(top) : -1;
  }
  if (const json* user = field(body, "user"); user && !user->is_string()) fail("'user' must be a string");
  if (const json* format = field(body, "response_format")) {
    const json* type = format->is_object() ? field(*format, "type") : nullptr;
    if (!type || *type != "text") fail("'response_format' other than {\"type\": \"text\"} is not supported");
  }
  for (const char* unsupported : {"tools", "functions", "logit_bias", "suffix"}) {
    const json* v = field(body, unsupported);
    if (v && !(v->is_array() && v->empty()) && !(v->is_object() && v->empty())) {
      fail(fmt::format("'{}' is not supported by this server", unsupported));
    }
  }
  return p;
}

}  // namespace

std::variant<CompletionParams, ApiError> parse_completion_request(std::string_view body, Endpoint endpoint,
                                                                  const RequestLimits& limits) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return ApiError{400, "the request body is not valid JSON", "invalid_request_error", ""};
  try {
    return parse(doc, endpoint, limits);
  } catch (const BadField& bad) {
    return bad.error;
  } catch (const json::exception& e) {  // a value the checks above let through by mistake
    return ApiError{400, fmt::format("bad request: {}", e.what()), "invalid_request_error", ""};
  }
}

}  // namespace bitnet::server
