// `bitnet serve`: the OpenAI-compatible HTTP server (server/) with llama-server's common flags.
// The socket is bound first and /health answers 503 while the model loads. SIGINT/SIGTERM stop
// accepting, let running requests finish within --shutdown-grace seconds, cancel the rest and
// exit 0; a second signal exits at once.
#include "bitnet/scheduler.h"
#include "server/app.h"
#include "server/http_server.h"
#include "tools/commands.h"
#include "tools/option_values.h"
#include "tools/run_options.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <limits>
#include <memory>
#include <thread>

namespace bitnet::tools {
namespace {

struct ServeOptions {
  CommonRunOptions common;
  SamplingFlags sampling;
  std::string host = "127.0.0.1";
  int port = 8080;
  int32_t parallel = 4;
  std::string api_key;
  std::string api_key_file;
  double timeout_s = 600;
  int32_t n_predict = -1;
  std::string chat_template;
  std::string alias;
  bool metrics = false;
  bool no_webui = false;
  int64_t max_body = 1 << 20;
  int32_t max_connections = 256;
  int32_t max_queue = 64;
  int64_t prefill_chunk = 64;
  double shutdown_grace_s = 10;
};

std::string file_stem(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = name.rfind('.');
  return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

// Asks the I/O thread a question and waits for the answer.
template <class F>
auto on_io_thread(server::HttpServer& http, F f) {
  std::promise<decltype(f())> answer;
  auto result = answer.get_future();
  http.post([&] { answer.set_value(f()); });
  return result.get();
}

// Waits for SIGINT/SIGTERM (blocked in every thread, so only this one sees them), then drains.
void handle_signals(const sigset_t& signals, server::HttpServer& http, server::App& app, double grace_s,
                    std::atomic<bool>& loaded) {
  int sig = 0;
  sigwait(&signals, &sig);
  if (sig == SIGUSR1) return;  // the server stopped for another reason
  fmt::print(stderr, "bitnet serve: {} received: no new connections; finishing requests (up to {} s)\n",
             sig == SIGINT ? "SIGINT" : "SIGTERM", grace_s);
  http.stop_accepting();
  if (loaded.load()) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
    const timespec tick{0, 50'000'000};
    bool cancelled = false;
    // A request the scheduler has finished may still have its last chunks to write: wait for
    // those too, and for requests that had begun arriving.
    while (on_io_thread(http, [&] { return app.in_flight() + http.responses_in_progress(); }) > 0) {
      if (!cancelled && std::chrono::steady_clock::now() >= deadline) {
        fmt::print(stderr, "bitnet serve: grace period over: cancelling the requests still running\n");
        http.post([&] { app.cancel_all(); });
        cancelled = true;
      }
      if (sigtimedwait(&signals, nullptr, &tick) == SIGINT ||
          (cancelled && std::chrono::steady_clock::now() >= deadline + std::chrono::seconds(5))) {
        break;  // a second Ctrl-C, or requests that do not end even when cancelled
      }
    }
  }
  http.stop();
}

}  // namespace

void add_serve(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (completions, chat, streaming)");
  add_common_run_options(*cmd, o->common);
  add_sampling_options(*cmd, o->sampling);
  constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
  cmd->add_option("--host", o->host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "port to listen on (0: any free port)")
      ->check(integer_in(0, 65535))
      ->capture_default_str();
  cmd->add_option("--parallel", o->parallel, "slots: requests generating at once; also -np (-c is shared among them)")
      ->check(integer_in(1, 256))
      ->capture_default_str();
  auto* key = cmd->add_option("--api-key", o->api_key, "require 'Authorization: Bearer KEY' (default: $BITNET_API_KEY)")
                  ->envname("BITNET_API_KEY");
  cmd->add_option("--api-key-file", o->api_key_file, "read the API key from the first line of this file")
      ->excludes(key);
  cmd->add_option("--timeout", o->timeout_s,
                  "seconds a request may take to arrive, and a client may take to read each write")
      ->check(real_in(0.1, 86400))
      ->capture_default_str();
  cmd->add_option("-n,--n-predict", o->n_predict,
                  "default max_tokens of a request (-1: until the end or a full context)")
      ->check(integer_in(-1, kMaxInt32))
      ->capture_default_str();
  cmd->add_option("--chat-template", o->chat_template,
                  "chat template for /v1/chat/completions (default: the model's own, else chatml)");
  cmd->add_option("-a,--alias", o->alias, "the model id clients name (default: the model file's name)");
  cmd->add_flag("--metrics", o->metrics, "serve Prometheus metrics at /metrics");
  cmd->add_flag("--no-webui", o->no_webui, "do not serve the chat page at /");
  cmd->add_option("--max-body", o->max_body, "largest request body in bytes (larger: 413)")
      ->check(integer_in(1024, int64_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--max-connections", o->max_connections, "open connections at most (more: 503 and closed)")
      ->check(integer_in(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--max-queue", o->max_queue, "requests waiting for a slot at most (more: 503 with Retry-After)")
      ->check(integer_in(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", o->prefill_chunk, "prompt tokens of one request per decode step")
      ->check(integer_in(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--shutdown-grace", o->shutdown_grace_s, "seconds running requests get to finish on SIGTERM")
      ->check(real_in(0, 3600))
      ->capture_default_str();
  cmd->callback([o, &exit_code] {
    exit_code = kExitFailure;
    auto fail = [](std::string_view message) { print_error("serve", message); };
    if (auto s = finish_common_options(o->common); !s.ok()) return fail(s.error().message);
    if (o->common.ctx > 0 && o->common.ctx < o->parallel) {
      throw_usage_error("-c", fmt::format("{} cells cannot be shared among {} slots", o->common.ctx, o->parallel));
    }
    if (!o->api_key_file.empty()) {
      auto text = read_text_file(o->api_key_file);
      if (!text.ok()) return fail(text.error().message);
      o->api_key = text->substr(0, text->find_first_of("\r\n"));
      if (o->api_key.empty()) return fail(fmt::format("{}: the first line is empty", o->api_key_file));
    }
    server::AppConfig config;
    config.alias =
        !o->alias.empty() ? o->alias : file_stem(!o->common.model.empty() ? o->common.model : o->common.plan);
    config.api_key = o->api_key;
    config.metrics = o->metrics;
    config.webui = !o->no_webui;
    config.default_max_tokens = o->n_predict;
    config.default_sampling = resolve_sampling(o->sampling, o->common.deterministic);
    config.chat_template = o->chat_template;
    config.fingerprint = "bitnet-" + version_string();
    server::App app(config);

    // Signals go to one thread (blocked here before any thread starts, so all inherit the mask).
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGUSR1);  // sent to ourselves to end the signal thread
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client that went away is an error value, not a signal

    server::HttpOptions http_options{.host = o->host,
                                     .port = o->port,
                                     .max_body_bytes = static_cast<size_t>(o->max_body),
                                     .max_connections = o->max_connections,
                                     .timeout_s = o->timeout_s};
    auto http = server::HttpServer::create(http_options,
                                           [&app](server::HttpRequest request, std::shared_ptr<server::Reply> reply) {
                                             app.handle(std::move(request), std::move(reply));
                                           });
    if (!http.ok()) return fail(http.error().message);
    fmt::print(stderr, "bitnet serve: listening on http://{} (loading the model)\n", (*http)->address());

    std::atomic<bool> loaded{false};
    std::atomic<bool> load_failed{false};
    std::thread loader([&] {
      auto model = load_model(o->common, nullptr);
      std::unique_ptr<Scheduler> scheduler;
      std::string error;
      if (model.ok()) {
        const int64_t per_slot = o->common.ctx > 0 ? o->common.ctx / o->parallel : 0;
        auto created = Scheduler::create(*model, {.slots = o->parallel,
                                                  .n_ctx_slot = per_slot,
                                                  .threads = resolved_threads(o->common),
                                                  .max_queued = o->max_queue,
                                                  .prefill_chunk = o->prefill_chunk});
        if (created.ok()) {
          scheduler = std::move(*created);
        } else {
          error = created.error().message;
        }
      } else {
        error = model.error().message;
      }
      if (!scheduler) {
        print_error("serve", error);
        load_failed = true;
        (*http)->stop();
        return;
      }
      const int64_t n_ctx_slot = scheduler->n_ctx_slot();
      std::shared_ptr<const Model> m = *model;
      auto held = std::make_shared<std::unique_ptr<Scheduler>>(std::move(scheduler));  // std::function copies
      (*http)->post([&app, m, held] { app.set_ready(m, std::move(*held)); });
      loaded = true;
      fmt::print(stderr, "bitnet serve: ready: model '{}', {} slots of {} tokens, {} threads\n", config.alias,
                 o->parallel, n_ctx_slot, resolved_threads(o->common));
    });
    std::thread signal_thread([&] { handle_signals(signals, **http, app, o->shutdown_grace_s, loaded); });

    (*http)->run();
    pthread_kill(signal_thread.native_handle(), SIGUSR1);
    signal_thread.join();
    if (!loaded.load() && !load_failed.load()) {
      // Stopped while the model was still loading: nothing runs yet, so leave without waiting.
      std::fflush(stderr);
      std::_Exit(kExitOk);
    }
    loader.join();
    app.stop();  // before the HTTP server goes: the scheduler's last events are posted to it
    exit_code = load_failed.load() ? kExitFailure : kExitOk;
    fmt::print(stderr, "bitnet serve: stopped\n");
  });
}

}  // namespace bitnet::tools
