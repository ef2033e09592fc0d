// Continuous batching: many completion requests share one Context, one sequence (slot) each;
// every step decodes one token of every generating request together (the weights are read
// once for all) while the prompts of newly admitted requests join in fixed-size chunks. What
// `bitnet serve` runs on.
//
// Results do not depend on load: a request's tokens are batched the same way whatever else
// runs (its prompt in chunks at fixed positions, then one token per step), and the engine gives
// every sequence of a batch what it gets alone, so a greedy or seeded request produces the same
// text alone or among many.
#pragma once

#include "bitnet/export.h"

#include "bitnet/model.h"
#include "bitnet/sampler.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bitnet {

// A token's log-probability under the model (the log-softmax of its raw logits, before any
// sampling filter), as OpenAI's `logprobs` report it.
struct TokenLogprob {
  Token token = -1;
  float logprob = 0;
};
struct SampledLogprobs {
  TokenLogprob sampled;
  std::vector<TokenLogprob> top;  // the most likely tokens, most likely first
};

// What a request streams: text that is final (whole UTF-8 characters, never part of a stop
// string), then one event with `done`.
struct CompletionEvent {
  std::string text;
  std::vector<Token> tokens;              // sampled since the last event (an end-of-generation token is not)
  std::vector<SampledLogprobs> logprobs;  // one per token of `tokens` when the request asks
  bool done = false;
  std::string finish_reason;  // when done: "stop" (end of generation or a stop string), "length",
                              // "cancelled" or "error"
  std::string error;          // finish_reason "error": why
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

struct CompletionRequest {
  std::vector<Token> prompt;  // not empty; at most the slot's context less one
  int32_t max_tokens = 16;    // -1: until end of generation or the slot's context is full
  SamplerParams sampling;     // temperature <= 0: greedy; the penalties also see the prompt
  std::vector<std::string> stop;
  bool stop_at_eog = true;
  int32_t top_logprobs = -1;  // >= 0: each token's log-probability and this many alternatives (at most 20)
  // Called on the scheduler's thread; it holds up every stream while it runs, so it must
  // only hand the event over (to a connection, a queue).
  std::function<void(const CompletionEvent&)> on_event;
};

struct SchedulerParams {
  int32_t slots = 4;           // requests generating at once
  int64_t n_ctx_slot = 0;      // cells of each slot; 0: the training context capped at 4096
  int threads = 0;             // 0: the CPUs this process may use, at most 8
  int32_t max_queued = 64;     // waiting requests beyond the slots; more are refused
  int64_t prefill_chunk = 64;  // prompt tokens of one request per step
};

struct SchedulerStats {
  int32_t slots = 0;
  int32_t slots_busy = 0;
  int32_t queued = 0;
  int64_t kv_cells_used = 0;
  uint64_t requests_finished = 0;
  int64_t prompt_tokens = 0;     // decoded, in total
  int64_t generated_tokens = 0;  // sampled, in total
  double busy_seconds = 0;       // time spent in decode steps
};

class BITNET_API Scheduler {
 public:
  static Result<std::unique_ptr<Scheduler>> create(std::shared_ptr<const Model> model,
                                                   const SchedulerParams& params = {});
  // Cancels what is queued or running (each gets its "cancelled" event) and stops the thread.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request; its id, or an error for a request that cannot run (an empty prompt or
  // one that does not fit a slot, bad sampling values) or when the queue is full.
  Result<uint64_t> submit(CompletionRequest request);
  // Whether submit() would find room in the queue now (for a caller that submits from one
  // thread, the answer holds until its next submit).
  bool can_accept() const;
  // Ends a queued or running request with "cancelled" at the next step; unknown ids are ignored.
  void cancel(uint64_t id);
  SchedulerStats stats() const;
  int64_t n_ctx_slot() const;
  const Model& model() const;

 private:
  struct Impl;
  explicit Scheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet
