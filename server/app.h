// The endpoints of `bitnet serve` (llama-server's and OpenAI's shapes) over one Scheduler:
// /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics, /tokenize, /detokenize
// and the chat page at /. Everything here runs on the HTTP server's I/O thread; the
// scheduler's events are handed over to it through Reply::post.
#pragma once

#include "bitnet/model.h"
#include "bitnet/sampler.h"
#include "bitnet/scheduler.h"
#include "server/http_server.h"

#include <cstdint>
#include <memory>
#include <string>

namespace bitnet::server {

struct AppConfig {
  std::string alias;     // the model id of /v1/models and the `model` requests may name
  std::string api_key;   // "" : no key needed
  bool metrics = false;  // serve /metrics
  bool webui = true;     // serve the chat page at /
  int32_t default_max_tokens = -1;
  SamplerParams default_sampling;
  std::string chat_template;  // "" : the model's own
  std::string fingerprint;    // system_fingerprint of every response
};

class App {
 public:
  explicit App(AppConfig config);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // The model is loaded: requests are served from now on (I/O thread).
  void set_ready(std::shared_ptr<const Model> model, std::unique_ptr<Scheduler> scheduler);
  void handle(HttpRequest request, std::shared_ptr<Reply> reply);
  // Completion requests that have not finished (I/O thread).
  int in_flight() const;
  // Ends every running and queued completion with "cancelled" at the scheduler's next step.
  void cancel_all();
  // Stops the scheduler (its last events are handed to the I/O thread, which must still exist,
  // stopped or not): call before the HttpServer goes away.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Compares two secrets in time that depends only on their lengths.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace bitnet::server
