// Scheduler events -> an OpenAI response (see completion_request.h).
#include "server/completion_request.h"

namespace bitnet::server {

using json = nlohmann::json;

CompletionRequestState::CompletionRequestState(const Vocab& vocab, const CompletionParams& params,
                                               ResponseHeader header, std::shared_ptr<Reply> reply,
                                               std::string echo_text, std::function<void()> on_done)
    : vocab_(vocab),
      endpoint_(params.endpoint),
      stream_(params.stream),
      include_usage_(params.include_usage),
      logprobs_(params.top_logprobs >= 0),
      header_(std::move(header)),
      reply_(std::move(reply)),
      on_done_(std::move(on_done)),
      text_(std::move(echo_text)),
      logprobs_json_(empty_logprobs(params.endpoint)) {
  text_offset_ = static_cast<int64_t>(text_.size());
}

void CompletionRequestState::begin() {
  if (!stream_) return;
  reply_->start_stream(200, "text/event-stream", {{"Access-Control-Allow-Origin", "*"}});
  // The echoed prompt (completions) or the assistant role (chat) goes out before any token.
  if (!text_.empty() || endpoint_ == Endpoint::kChatCompletions) {
    reply_->write(sse_event(chunk_json(header_, text_, "", nullptr, true)));
    first_chunk_ = false;
    text_.clear();
  }
}

void CompletionRequestState::on_event(const CompletionEvent& event) {
  if (done_) return;
  if (stream_) {
    json step_logprobs;
    if (logprobs_) {
      step_logprobs = empty_logprobs(endpoint_);
      append_logprobs(endpoint_, vocab_, event.logprobs, text_offset_, step_logprobs);
    }
    // One chunk per step that sampled a token, as OpenAI streams: a token that adds no text yet
    // (part of a character or of a possible stop string, a control token) gives an empty piece,
    // and its text comes with the token that completes it.
    if (!event.text.empty() || !event.tokens.empty()) {
      reply_->write(sse_event(chunk_json(header_, event.text, "", logprobs_ ? &step_logprobs : nullptr, first_chunk_)));
      first_chunk_ = false;
    }
  } else {
    text_ += event.text;
    if (logprobs_) append_logprobs(endpoint_, vocab_, event.logprobs, text_offset_, logprobs_json_);
  }
  if (event.done) finish(event);
}

void CompletionRequestState::finish(const CompletionEvent& event) {
  done_ = true;
  const std::string& reason = event.finish_reason;
  if (reason == "cancelled") {
    // The client went away (or the server is stopping): there is nobody to answer.
    if (stream_) reply_->end();
  } else if (reason == "error") {
    const ApiError error{500, "generation failed: " + event.error, "server_error", ""};
    if (stream_) {
      reply_->write(sse_event(error_json(error)));
      reply_->end();
    } else {
      reply_->send({500, "application/json", error_json(error).dump(), {{"Access-Control-Allow-Origin", "*"}}});
    }
  } else if (stream_) {
    reply_->write(sse_event(chunk_json(header_, "", reason, nullptr, first_chunk_)));
    if (include_usage_) {
      reply_->write(sse_event(usage_chunk_json(header_, event.prompt_tokens, event.completion_tokens)));
    }
    reply_->write(kSseDone);
    reply_->end();
  } else {
    const json body = completion_json(header_, text_, reason, logprobs_ ? &logprobs_json_ : nullptr,
                                      event.prompt_tokens, event.completion_tokens);
    reply_->send({200,
                  "application/json",
                  body.dump(-1, ' ', false, json::error_handler_t::replace),
                  {{"Access-Control-Allow-Origin", "*"}}});
  }
  if (on_done_) on_done_();
}

}  // namespace bitnet::server
