// Continuous batching of completion requests over one Context (see bitnet/scheduler.h).
#include "bitnet/scheduler.h"

#include "bitnet/context.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"
#include "runtime/stop_strings.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

namespace bitnet {
namespace {

// One request in one sequence of the context: its prompt is decoded chunk by chunk, then each
// step decodes the token sampled last.
struct Slot {
  bool busy = false;
  uint64_t id = 0;
  CompletionRequest request;
  std::optional<Sampler> sampler;
  std::optional<runtime::StopStrings> stops;
  runtime::Utf8Stream utf8;
  int64_t prompt_done = 0;  // prompt tokens in the cache
  int64_t generated = 0;    // tokens sampled
  Token next = -1;          // sampled last, decoded at the next step
  int32_t row = -1;         // this step's logits row, or -1
  bool in_batch = false;    // this step decodes some of its tokens
  CompletionEvent event;    // what the step adds, sent at its end

  bool prefilling() const { return prompt_done < static_cast<int64_t>(request.prompt.size()); }
  int64_t cells() const { return prompt_done + std::max<int64_t>(generated - 1, 0); }
};

struct Outgoing {
  std::function<void(const CompletionEvent&)> callback;
  CompletionEvent event;
};

}  // namespace

struct Scheduler::Impl {
  std::shared_ptr<const Model> model;
  std::unique_ptr<Context> ctx;
  SchedulerParams params;
  int64_t n_ctx_slot = 0;

  mutable std::mutex mutex;  // guards what follows up to `slots`
  std::condition_variable wake;
  std::deque<std::pair<uint64_t, CompletionRequest>> queue;
  std::unordered_set<uint64_t> live;        // queued or running
  std::unordered_set<uint64_t> cancelling;  // asked to cancel, still live
  bool stopping = false;
  uint64_t next_id = 1;
  SchedulerStats stats;

  std::vector<Slot> slots;  // the scheduler thread's alone
  std::vector<Outgoing> outgoing;
  std::thread thread;

  void run();
  void drop_cancelled_queued();  // with `mutex` held
  void admit();                  // with `mutex` held
  void step();
  void sample(Slot& slot, std::span<const float> logits);
  void finish(Slot& slot, const std::string& reason, const std::string& error = "");
  void send(Slot& slot);
};

namespace {

int64_t default_slot_context(const Model& model) {
  return std::clamp<int64_t>(model.n_ctx_train(), 1, 4096);
}

constexpr int32_t kMaxTopLogprobs = 20;

// log-softmax of `logits` at `token` and at the `n_top` largest, the normaliser summed in double.
SampledLogprobs logprobs_of(std::span<const float> logits, Token token, int32_t n_top) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
  const double log_norm = max + std::log(sum);
  auto logprob = [&](Token t) { return static_cast<float>(logits[static_cast<size_t>(t)] - log_norm); };
  SampledLogprobs out;
  out.sampled = {token, logprob(token)};
  const auto n = static_cast<size_t>(std::min<int64_t>(n_top, static_cast<int64_t>(logits.size())));
  if (n == 0) return out;
  // Ties go to the lower id, so the list does not depend on the sort's implementation.
  for (const runtime::Candidate& c : runtime::top_k_logits(logits, n)) out.top.push_back({c.id, logprob(c.id)});
  return out;
}

}  // namespace

Result<std::unique_ptr<Scheduler>> Scheduler::create(std::shared_ptr<const Model> model,
                                                     const SchedulerParams& params) {
  if (!model) return Error{"no model"};
  if (params.slots < 1 || params.slots > 256) return Error{"slots must be in [1, 256]"};
  if (params.n_ctx_slot < 0) return Error{"n_ctx_slot must not be negative"};
  if (params.max_queued < 0) return Error{"max_queued must not be negative"};
  if (params.prefill_chunk < 1) return Error{"prefill_chunk must be positive"};
  auto impl = std::make_unique<Impl>();
  impl->params = params;
  impl->n_ctx_slot = params.n_ctx_slot > 0 ? params.n_ctx_slot : default_slot_context(*model);
  auto ctx = Context::create(
      model, {.n_ctx = impl->n_ctx_slot * params.slots, .n_seq_max = params.slots, .threads = params.threads});
  if (!ctx.ok()) return ctx.error();
  impl->ctx = std::move(*ctx);
  // A chunk always fits one step, even beside a decode token of every other slot.
  impl->params.prefill_chunk = std::min<int64_t>(params.prefill_chunk, impl->ctx->n_batch() - (params.slots - 1));
  if (impl->params.prefill_chunk < 1) return Error{"the context's batch is smaller than the number of slots"};
  impl->model = std::move(model);
  impl->slots.resize(static_cast<size_t>(params.slots));
  impl->stats.slots = params.slots;
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(impl)));
}

Scheduler::Scheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
}

Result<uint64_t> Scheduler::submit(CompletionRequest request) {
  const int64_t n_prompt = static_cast<int64_t>(request.prompt.size());
  if (n_prompt == 0) return Error{"the prompt is empty"};
  if (n_prompt >= impl_->n_ctx_slot) {
    return Error{
        fmt::format("the prompt has {} tokens; a slot's context holds {} (the prompt must leave room for "
                    "one more)",
                    n_prompt, impl_->n_ctx_slot)};
  }
  const int64_t n_vocab = impl_->model->n_vocab();
  for (Token t : request.prompt) {
    if (t < 0 || t >= n_vocab) return Error{fmt::format("token id {} is outside the vocabulary [0, {})", t, n_vocab)};
  }
  if (request.max_tokens < -1) return Error{"max_tokens must be -1 (no limit) or more"};
  if (request.top_logprobs > kMaxTopLogprobs) {
    return Error{fmt::format("top_logprobs must be at most {}", kMaxTopLogprobs)};
  }
  if (auto checked = Sampler::create(request.sampling); !checked.ok()) return checked.error();
  std::lock_guard lock(impl_->mutex);
  if (impl_->stopping) return Error{"the scheduler is stopping"};
  const int32_t free_slots = impl_->stats.slots - impl_->stats.slots_busy;
  if (static_cast<int64_t>(impl_->queue.size()) >= impl_->params.max_queued + free_slots) {
    return Error{fmt::format("the queue is full ({} requests waiting)", impl_->queue.size())};
  }
  const uint64_t id = impl_->next_id++;
  impl_->queue.emplace_back(id, std::move(request));
  impl_->live.insert(id);
  impl_->stats.queued = static_cast<int32_t>(impl_->queue.size());
  impl_->wake.notify_all();
  return id;
}

bool Scheduler::can_accept() const {
  std::lock_guard lock(impl_->mutex);
  const int32_t free_slots = impl_->stats.slots - impl_->stats.slots_busy;
  return !impl_->stopping && static_cast<int64_t>(impl_->queue.size()) < impl_->params.max_queued + free_slots;
}

void Scheduler::cancel(uint64_t id) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->live.count(id) == 0) return;
  impl_->cancelling.insert(id);
  impl_->wake.notify_all();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

int64_t Scheduler::n_ctx_slot() const {
  return impl_->n_ctx_slot;
}

const Model& Scheduler::model() const {
  return *impl_->model;
}

// ---- the scheduler's thread ------------------------------------------------------------

void Scheduler::Impl::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex);
      auto busy = [&] { return std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return s.busy; }); };
      wake.wait(lock, [&] { return stopping || !queue.empty() || busy(); });
      if (stopping) {
        for (auto& [id, request] : queue) cancelling.insert(id);
        for (const Slot& s : slots) {
          if (s.busy) cancelling.insert(s.id);
        }
      }
      drop_cancelled_queued();
      admit();
    }
    // Cancelled running requests end before the step.
    std::vector<Slot*> cancelled;
    {
      std::lock_guard lock(mutex);
      for (Slot& slot : slots) {
        if (slot.busy && cancelling.count(slot.id) != 0) cancelled.push_back(&slot);
      }
    }
    for (Slot* slot : cancelled) finish(*slot, "cancelled");
    const bool stop_now = [&] {
      std::lock_guard lock(mutex);
      return stopping;
    }();
    if (!stop_now) step();
    for (Outgoing& o : outgoing) {
      if (o.callback) o.callback(o.event);
    }
    outgoing.clear();
    if (stop_now) return;
  }
}

// Queued requests asked to cancel end without taking a slot.
void Scheduler::Impl::drop_cancelled_queued() {
  for (auto it = queue.begin(); it != queue.end();) {
    if (cancelling.count(it->first) == 0) {
      ++it;
      continue;
    }
    CompletionEvent event;
    event.done = true;
    event.finish_reason = "cancelled";
    event.prompt_tokens = static_cast<int64_t>(it->second.prompt.size());
    outgoing.push_back({std::move(it->second.on_event), std::move(event)});
    live.erase(it->first);
    cancelling.erase(it->first);
    stats.requests_finished += 1;
    it = queue.erase(it);
  }
}

// Moves queued requests into free slots, in arrival order.
void Scheduler::Impl::admit() {
  for (Slot& slot : slots) {
    if (queue.empty()) break;
    if (slot.busy) continue;
    auto [id, request] = std::move(queue.front());
    queue.pop_front();
    slot = Slot{};
    slot.busy = true;
    slot.id = id;
    slot.request = std::move(request);
    slot.sampler.emplace(std::move(Sampler::create(slot.request.sampling).value()));  // checked by submit
    for (Token t : slot.request.prompt) slot.sampler->accept(t);                      // the penalties see the prompt
    slot.stops.emplace(slot.request.stop);
    slot.event.prompt_tokens = static_cast<int64_t>(slot.request.prompt.size());
    ctx->seq_rm(static_cast<int32_t>(&slot - slots.data()), -1, -1);
  }
  stats.queued = static_cast<int32_t>(queue.size());
  stats.slots_busy =
      static_cast<int32_t>(std::count_if(slots.begin(), slots.end(), [](const Slot& s) { return s.busy; }));
}

// One decode: a token of every generating slot, then prompt chunks while the batch has room.
void Scheduler::Impl::step() {
  Batch batch;
  int32_t rows = 0;
  const int64_t room = ctx->n_batch();
  int64_t prompt_tokens = 0;
  for (Slot& slot : slots) {
    slot.row = -1;
    slot.in_batch = false;
    if (!slot.busy || slot.prefilling()) continue;
    const auto seq = static_cast<int32_t>(&slot - slots.data());
    batch.add(slot.next, slot.cells(), {seq}, true);
    slot.row = rows++;
    slot.in_batch = true;
  }
  for (Slot& slot : slots) {
    if (!slot.busy || !slot.prefilling()) continue;
    const auto seq = static_cast<int32_t>(&slot - slots.data());
    const auto& prompt = slot.request.prompt;
    const int64_t n = std::min<int64_t>(params.prefill_chunk, static_cast<int64_t>(prompt.size()) - slot.prompt_done);
    if (static_cast<int64_t>(batch.size()) + n > room) continue;  // whole chunks only: the next step
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = slot.prompt_done + i;
      const bool last = pos + 1 == static_cast<int64_t>(prompt.size());
      batch.add(prompt[static_cast<size_t>(pos)], pos, {seq}, last);
      if (last) slot.row = rows++;
    }
    slot.prompt_done += n;
    slot.in_batch = true;
    prompt_tokens += n;
  }
  if (batch.size() == 0) return;
  const auto start = std::chrono::steady_clock::now();
  const Status decoded = ctx->decode(batch);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int64_t sampled = 0;
  for (Slot& slot : slots) {
    if (!slot.busy || !slot.in_batch) continue;
    if (!decoded.ok()) {
      finish(slot, "error", decoded.error().message);
    } else if (slot.row >= 0) {
      sample(slot, ctx->logits(slot.row));
      ++sampled;
    }
  }
  std::lock_guard lock(mutex);
  stats.busy_seconds += seconds;
  stats.prompt_tokens += prompt_tokens;
  stats.generated_tokens += sampled;
  stats.kv_cells_used = 0;
  for (size_t s = 0; s < slots.size(); ++s) stats.kv_cells_used += ctx->seq_pos_max(static_cast<int32_t>(s)) + 1;
}

void Scheduler::Impl::sample(Slot& slot, std::span<const float> logits) {
  const Token token = slot.sampler->sample(logits);
  slot.sampler->accept(token);
  const Vocab& vocab = model->vocab();
  if (slot.request.stop_at_eog && vocab.is_eog(token)) return finish(slot, "stop");
  ++slot.generated;
  slot.event.tokens.push_back(token);
  if (slot.request.top_logprobs >= 0)
    slot.event.logprobs.push_back(logprobs_of(logits, token, slot.request.top_logprobs));
  runtime::StopStrings::Pushed text = slot.stops->push(slot.utf8.push(vocab.token_to_piece(token)));
  slot.event.text += text.released;
  if (text.stopped) return finish(slot, "stop");
  const bool at_limit = slot.request.max_tokens >= 0 && slot.generated >= slot.request.max_tokens;
  // The token just sampled is decoded at the next step: there must be a cell for it.
  const bool context_full = slot.prompt_done + slot.generated > n_ctx_slot;
  if (at_limit || context_full) return finish(slot, "length");
  slot.next = token;
  send(slot);
}

void Scheduler::Impl::finish(Slot& slot, const std::string& reason, const std::string& error) {
  if (reason == "stop" || reason == "length") {
    // What was held back as a possible stop string or an unfinished character is final now.
    runtime::StopStrings::Pushed rest = slot.stops->push(slot.utf8.flush());
    slot.event.text += rest.released;
    if (!rest.stopped) slot.event.text += slot.stops->flush();
  }
  slot.event.done = true;
  slot.event.finish_reason = reason;
  slot.event.error = error;
  send(slot);
  const auto seq = static_cast<int32_t>(&slot - slots.data());
  ctx->seq_rm(seq, -1, -1);
  slot.busy = false;
  std::lock_guard lock(mutex);
  live.erase(slot.id);
  cancelling.erase(slot.id);
  stats.requests_finished += 1;
  stats.slots_busy -= 1;
}

// Queues the slot's event for delivery after the step (callbacks run with no lock held).
void Scheduler::Impl::send(Slot& slot) {
  CompletionEvent& e = slot.event;
  e.completion_tokens = slot.generated;
  if (e.done || !e.text.empty() || !e.tokens.empty()) outgoing.push_back({slot.request.on_event, e});
  const int64_t prompt_tokens = e.prompt_tokens;
  e = {};
  e.prompt_tokens = prompt_tokens;
}

}  // namespace bitnet
