// The endpoints of `bitnet serve` (see app.h).
#include "server/app.h"

#include "bitnet/chat.h"
#include "server/completion_request.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/utf8.h"
#include "server/webui.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <random>
#include <unordered_set>

namespace bitnet::server {
namespace {

using json = nlohmann::json;

const Headers kCors = {{"Access-Control-Allow-Origin", "*"}};

HttpResponse json_response(int status, const json& body, Headers headers = kCors) {
  return {status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace), std::move(headers)};
}

HttpResponse error_response(const ApiError& error) {
  Headers headers = kCors;
  if (error.status == 503) headers.emplace_back("Retry-After", "1");
  if (error.status == 401) headers.emplace_back("WWW-Authenticate", "Bearer");
  return json_response(error.status, error_json(error), std::move(headers));
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_id(std::mt19937_64& rng, std::string_view prefix) {
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), static_cast<uint32_t>(rng()));
}

// A token's text for /tokenize's pieces: a string when it is valid UTF-8, else its bytes.
json piece_json(const std::string& piece) {
  if (is_valid_utf8(piece)) return piece;
  json bytes = json::array();
  for (unsigned char c : piece) bytes.push_back(c);
  return bytes;
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer string is read whatever matches, so the time tells only lengths.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0U : 1U;
  for (size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

struct App::Impl {
  AppConfig config;
  std::shared_ptr<const Model> model;
  std::unique_ptr<Scheduler> scheduler;
  std::mt19937_64 rng{std::random_device{}()};
  std::unordered_set<uint64_t> running;  // scheduler ids of requests not finished
  // Counters for /metrics (I/O thread).
  uint64_t requests_total = 0;
  uint64_t requests_rejected = 0;  // 4xx/5xx answers to completion requests before they ran
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  bool authorized(const HttpRequest& request) const;
  void completions(const HttpRequest& request, Endpoint endpoint, const std::shared_ptr<Reply>& reply);
  HttpResponse models() const;
  HttpResponse metrics() const;
  HttpResponse tokenize(const HttpRequest& request) const;
  HttpResponse detokenize(const HttpRequest& request) const;
};

App::App(AppConfig config) : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
}
App::~App() = default;

void App::set_ready(std::shared_ptr<const Model> model, std::unique_ptr<Scheduler> scheduler) {
  impl_->model = std::move(model);
  impl_->scheduler = std::move(scheduler);
}

int App::in_flight() const {
  return static_cast<int>(impl_->running.size());
}

void App::cancel_all() {
  if (!impl_->scheduler) return;
  for (uint64_t id : impl_->running) impl_->scheduler->cancel(id);
}

void App::stop() {
  impl_->scheduler.reset();
}

bool App::Impl::authorized(const HttpRequest& request) const {
  if (config.api_key.empty()) return true;
  std::string given = request.header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (given.size() >= kBearer.size() && std::equal(kBearer.begin(), kBearer.end(), given.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
      })) {
    given.erase(0, kBearer.size());
  } else {
    given = request.header("x-api-key");
  }
  return constant_time_equal(given, config.api_key);
}

void App::handle(HttpRequest request, std::shared_ptr<Reply> reply) {
  Impl& s = *impl_;
  const std::string& path = request.path;
  const std::string& method = request.method;
  if (method == "OPTIONS") {  // CORS preflight: browsers ask before a cross-origin POST
    reply->send({204,
                 "",
                 "",
                 {{"Access-Control-Allow-Origin", "*"},
                  {"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
                  {"Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key"},
                  {"Access-Control-Max-Age", "86400"}}});
    return;
  }
  auto allow = [&](const char* wanted) {
    if (method == wanted) return true;
    reply->send(error_response({405, fmt::format("{} {} is not supported; use {}", method, path, wanted),
                                "invalid_request_error", "method_not_allowed"}));
    return false;
  };
  // Public: the health probe and the chat page (which asks for the key itself).
  if (path == "/health" || path == "/v1/health") {
    if (!allow("GET")) return;
    if (!s.scheduler) {
      reply->send(error_response({503, "Loading model", "unavailable_error", ""}));
    } else {
      reply->send(json_response(200, {{"status", "ok"}}));
    }
    return;
  }
  if (path == "/" || path == "/index.html") {
    if (!allow("GET")) return;
    if (!s.config.webui) {
      reply->send(error_response({404, "the chat page is disabled (--no-webui)", "not_found_error", ""}));
      return;
    }
    reply->send({200, "text/html; charset=utf-8", std::string(webui_html()), {}});
    return;
  }
  if (!s.authorized(request)) {
    reply->send(error_response({401, "Invalid API Key", "authentication_error", "invalid_api_key"}));
    return;
  }
  const bool known = path == "/v1/completions" || path == "/completions" || path == "/v1/chat/completions" ||
                     path == "/chat/completions" || path == "/v1/models" || path == "/models" || path == "/metrics" ||
                     path == "/tokenize" || path == "/detokenize";
  if (!known) {
    reply->send(error_response({404, fmt::format("no endpoint {} {}", method, path), "not_found_error", ""}));
    return;
  }
  if (!s.scheduler) {
    reply->send(error_response({503, "Loading model", "unavailable_error", ""}));
    return;
  }
  if (path == "/v1/models" || path == "/models") {
    if (allow("GET")) reply->send(s.models());
  } else if (path == "/metrics") {
    if (!allow("GET")) return;
    if (!s.config.metrics) {
      reply->send(error_response({501, "metrics are off; start the server with --metrics", "not_supported_error", ""}));
    } else {
      reply->send(s.metrics());
    }
  } else if (path == "/tokenize") {
    if (allow("POST")) reply->send(s.tokenize(request));
  } else if (path == "/detokenize") {
    if (allow("POST")) reply->send(s.detokenize(request));
  } else if (allow("POST")) {
    const bool chat = path.find("chat") != std::string::npos;
    s.completions(request, chat ? Endpoint::kChatCompletions : Endpoint::kCompletions, reply);
  }
}

void App::Impl::completions(const HttpRequest& request, Endpoint endpoint, const std::shared_ptr<Reply>& reply) {
  ++requests_total;
  auto reject = [&](const ApiError& error) {
    ++requests_rejected;
    reply->send(error_response(error));
  };
  const RequestLimits limits{.model_alias = config.alias,
                             .n_ctx_slot = scheduler->n_ctx_slot(),
                             .n_vocab = model->n_vocab(),
                             .default_max_tokens = config.default_max_tokens,
                             .default_sampling = config.default_sampling};
  auto parsed = parse_completion_request(request.body, endpoint, limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) return reject(*error);
  CompletionParams& params = std::get<CompletionParams>(parsed);

  const Vocab& vocab = model->vocab();
  std::vector<Token> prompt;
  std::string echo_text;
  if (endpoint == Endpoint::kChatCompletions) {
    auto text = apply_chat_template(*model, config.chat_template, params.messages, true);
    if (!text.ok()) return reject({400, text.error().message, "invalid_request_error", ""});
    prompt = vocab.tokenize(*text, true, true);
  } else if (auto* text = std::get_if<std::string>(&params.prompt)) {
    prompt = vocab.tokenize(*text, true, true);
    if (params.echo) echo_text = *text;
  } else {
    const auto& ids = std::get<std::vector<int32_t>>(params.prompt);
    prompt.assign(ids.begin(), ids.end());
    if (params.echo) {
      auto text = vocab.detokenize(prompt);
      echo_text = text.ok() ? *text : "";
    }
  }
  if (prompt.empty()) return reject({400, "the prompt is empty", "invalid_request_error", ""});
  const int64_t n_ctx = scheduler->n_ctx_slot();
  if (static_cast<int64_t>(prompt.size()) >= n_ctx) {
    return reject({400,
                   fmt::format("the prompt is {} tokens long; this server's context is {} tokens per request (the "
                               "prompt must leave room for at least one generated token)",
                               prompt.size(), n_ctx),
                   "invalid_request_error", "context_length_exceeded"});
  }
  if (!scheduler->can_accept()) {
    return reject(
        {503, "the server is busy: every slot is taken and the queue is full; retry shortly", "unavailable_error", ""});
  }
  if (params.random_seed) params.sampling.seed = rng();

  ResponseHeader header{endpoint, random_id(rng, endpoint == Endpoint::kChatCompletions ? "chatcmpl-" : "cmpl-"),
                        unix_time(), config.alias, config.fingerprint};
  auto id_cell = std::make_shared<uint64_t>(0);
  auto state = std::make_shared<CompletionRequestState>(vocab, params, std::move(header), reply, std::move(echo_text),
                                                        [this, id_cell] { running.erase(*id_cell); });
  CompletionRequest job;
  job.prompt = std::move(prompt);
  job.max_tokens = params.max_tokens;
  job.sampling = params.sampling;
  job.stop = params.stop;
  job.top_logprobs = params.top_logprobs;
  job.stop_at_eog = !params.ignore_eos;
  // The scheduler's thread only hands the event to the connection's I/O thread.
  job.on_event = [reply, state](const CompletionEvent& event) {
    reply->post([state, event] { state->on_event(event); });
  };
  auto id = scheduler->submit(std::move(job));
  if (!id.ok()) return reject({400, id.error().message, "invalid_request_error", ""});
  *id_cell = *id;
  running.insert(*id);
  state->begin();
  // A client that goes away frees its slot at the scheduler's next step.
  reply->on_client_gone([sched = scheduler.get(), id = *id] { sched->cancel(id); });
}

HttpResponse App::Impl::models() const {
  json meta = {{"n_vocab", model->n_vocab()},
               {"n_ctx_train", model->n_ctx_train()},
               {"n_embd", model->n_embd()},
               {"n_params", model->n_params()},
               {"size", model->size()},
               {"n_ctx_slot", scheduler->n_ctx_slot()},
               {"slots", scheduler->stats().slots},
               {"description", model->description()}};
  json entry = {{"id", config.alias},
                {"object", "model"},
                {"created", unix_time()},
                {"owned_by", "bitnet"},
                {"meta", std::move(meta)}};
  return json_response(200, {{"object", "list"}, {"data", json::array({std::move(entry)})}});
}

// Prometheus text exposition (version 0.0.4).
HttpResponse App::Impl::metrics() const {
  const SchedulerStats st = scheduler->stats();
  const double busy = st.busy_seconds > 0 ? st.busy_seconds : 1;
  const double capacity = static_cast<double>(scheduler->n_ctx_slot()) * st.slots;
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double value) {
    out += fmt::format("# HELP bitnet:{} {}\n# TYPE bitnet:{} {}\nbitnet:{} {}\n", name, help, name, type, name, value);
  };
  metric("requests_total", "counter", "Completion requests received.", static_cast<double>(requests_total));
  metric("requests_rejected_total", "counter", "Completion requests answered with an error before they ran.",
         static_cast<double>(requests_rejected));
  metric("requests_finished_total", "counter", "Completion requests the scheduler finished.",
         static_cast<double>(st.requests_finished));
  metric("prompt_tokens_total", "counter", "Prompt tokens processed.", static_cast<double>(st.prompt_tokens));
  metric("tokens_predicted_total", "counter", "Tokens generated.", static_cast<double>(st.generated_tokens));
  metric("prompt_tokens_seconds", "gauge", "Prompt tokens per second of decode time.", st.prompt_tokens / busy);
  metric("predicted_tokens_seconds", "gauge", "Generated tokens per second of decode time.",
         st.generated_tokens / busy);
  metric("busy_seconds_total", "counter", "Seconds spent in decode steps.", st.busy_seconds);
  metric("requests_processing", "gauge", "Slots busy.", st.slots_busy);
  metric("slots", "gauge", "Slots (requests generating at once).", st.slots);
  metric("requests_deferred", "gauge", "Requests waiting in the queue.", st.queued);
  metric("kv_cache_tokens", "gauge", "KV cache cells in use.", static_cast<double>(st.kv_cells_used));
  metric("kv_cache_usage_ratio", "gauge", "KV cache cells in use / cells.",
         capacity > 0 ? static_cast<double>(st.kv_cells_used) / capacity : 0);
  metric("uptime_seconds", "counter", "Seconds since the server started.",
         std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return {200, "text/plain; version=0.0.4", std::move(out), kCors};
}

namespace {

// The body as a JSON object, or the error to answer.
std::variant<json, ApiError> object_body(const HttpRequest& request) {
  json body = json::parse(request.body, nullptr, false);
  if (body.is_discarded()) return ApiError{400, "the request body is not valid JSON", "invalid_request_error", ""};
  if (!body.is_object()) return ApiError{400, "the request body must be a JSON object", "invalid_request_error", ""};
  return body;
}

std::optional<ApiError> optional_bool(const json& body, const char* name, bool& out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean())
    return ApiError{400, fmt::format("'{}' must be true or false", name), "invalid_request_error", ""};
  out = it->get<bool>();
  return std::nullopt;
}

}  // namespace

// llama-server's /tokenize: {"content", "add_special" (false), "parse_special" (true),
// "with_pieces" (false)} -> {"tokens": [ids]} or [{"id", "piece"}].
HttpResponse App::Impl::tokenize(const HttpRequest& request) const {
  auto parsed = object_body(request);
  if (auto* error = std::get_if<ApiError>(&parsed)) return error_response(*error);
  const json& body = std::get<json>(parsed);
  auto content = body.find("content");
  if (content == body.end() || !content->is_string()) {
    return error_response({400, "'content' must be a string", "invalid_request_error", ""});
  }
  bool add_special = false, parse_special = true, with_pieces = false;
  for (auto [name, out] : {std::pair{"add_special", &add_special}, std::pair{"parse_special", &parse_special},
                           std::pair{"with_pieces", &with_pieces}}) {
    if (auto error = optional_bool(body, name, *out)) return error_response(*error);
  }
  const Vocab& vocab = model->vocab();
  const std::vector<Token> ids = vocab.tokenize(content->get<std::string>(), add_special, parse_special);
  json tokens = json::array();
  for (Token id : ids) {
    if (with_pieces) {
      tokens.push_back({{"id", id}, {"piece", piece_json(vocab.token_to_piece(id, true))}});
    } else {
      tokens.push_back(id);
    }
  }
  return json_response(200, {{"tokens", std::move(tokens)}});
}

// llama-server's /detokenize: {"tokens": [ids]} -> {"content": text}.
HttpResponse App::Impl::detokenize(const HttpRequest& request) const {
  auto parsed = object_body(request);
  if (auto* error = std::get_if<ApiError>(&parsed)) return error_response(*error);
  const json& body = std::get<json>(parsed);
  auto tokens = body.find("tokens");
  if (tokens == body.end() || !tokens->is_array()) {
    return error_response({400, "'tokens' must be a list of token ids", "invalid_request_error", ""});
  }
  std::vector<Token> ids;
  const int64_t n_vocab = model->n_vocab();
  for (const json& t : *tokens) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab ||
        (t.is_number_unsigned() && t.get<uint64_t>() >= static_cast<uint64_t>(n_vocab))) {
      return error_response({400, fmt::format("'tokens' holds {}, not a token id in [0, {})", t.dump(), n_vocab),
                             "invalid_request_error", ""});
    }
    ids.push_back(static_cast<Token>(t.get<int64_t>()));
  }
  auto text = model->vocab().detokenize(ids, true);
  if (!text.ok()) return error_response({400, text.error().message, "invalid_request_error", ""});
  return json_response(200, {{"content", *text}});
}

}  // namespace bitnet::server
