// One completion request in flight: turns the scheduler's events into an OpenAI response
// (a whole one, or stream chunks as tokens arrive) on its connection.
#pragma once

#include "bitnet/model.h"
#include "bitnet/scheduler.h"
#include "server/http_server.h"
#include "server/openai_request.h"
#include "server/openai_response.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

namespace bitnet::server {

class CompletionRequestState {
 public:
  CompletionRequestState(const Vocab& vocab, const CompletionParams& params, ResponseHeader header,
                         std::shared_ptr<Reply> reply, std::string echo_text, std::function<void()> on_done);
  // Called on the I/O thread for each event of the request, in order.
  void on_event(const CompletionEvent& event);
  // Starts the response before the first event (a stream's header goes out at once).
  void begin();

 private:
  void finish(const CompletionEvent& event);

  const Vocab& vocab_;
  Endpoint endpoint_;
  bool stream_;
  bool include_usage_;
  bool logprobs_;
  ResponseHeader header_;
  std::shared_ptr<Reply> reply_;
  std::function<void()> on_done_;
  std::string text_;  // whole responses: everything so far (starting with the echoed prompt)
  nlohmann::json logprobs_json_;
  int64_t text_offset_ = 0;
  bool first_chunk_ = true;
  bool done_ = false;
};

}  // namespace bitnet::server
