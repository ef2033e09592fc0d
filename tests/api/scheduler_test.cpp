// Continuous batching (bitnet/scheduler.h): requests decoded together give what each gives
// alone and what generate() gives; stop strings, limits, cancellation, a full queue.
#include "bitnet/bitnet.h"

#include "runtime/stop_strings.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>

namespace bitnet {
namespace {

const std::string kStories = (testing::source_dir() / "models/stories260K.gguf").string();

std::shared_ptr<const Model> load_stories() {
  auto model = Model::load(kStories, {.use_cache = false});
  EXPECT_TRUE(model.ok()) << model.error().message;
  return model.ok() ? *model : nullptr;
}

// A request's whole result, gathered from its events.
struct Outcome {
  std::string text;
  std::vector<Token> tokens;
  std::string finish_reason;
  int64_t completion_tokens = 0;
  int events = 0;
};

// Submits `request` and returns a future of its outcome.
std::future<Outcome> submit(Scheduler& scheduler, CompletionRequest request, uint64_t* id = nullptr) {
  auto promise = std::make_shared<std::promise<Outcome>>();
  auto outcome = std::make_shared<Outcome>();
  request.on_event = [promise, outcome](const CompletionEvent& e) {
    outcome->text += e.text;
    outcome->tokens.insert(outcome->tokens.end(), e.tokens.begin(), e.tokens.end());
    ++outcome->events;
    if (e.done) {
      outcome->finish_reason = e.finish_reason;
      outcome->completion_tokens = e.completion_tokens;
      promise->set_value(*outcome);
    }
  };
  auto submitted = scheduler.submit(std::move(request));
  EXPECT_TRUE(submitted.ok()) << submitted.error().message;
  if (id != nullptr && submitted.ok()) *id = *submitted;
  return promise->get_future();
}

TEST(StopStrings, NeverReleaseAStopStringEvenSplitAcrossPushes) {
  runtime::StopStrings stops({"END", "\n\n"});
  EXPECT_EQ(stops.push("Hello E").released, "Hello ");  // "E" may start END
  EXPECT_EQ(stops.push("N").released, "");
  auto last = stops.push("Dless");
  EXPECT_TRUE(last.stopped);
  EXPECT_EQ(last.released, "");
  runtime::StopStrings other({"END"});
  EXPECT_EQ(other.push("xEN").released, "x");
  EXPECT_EQ(other.push("Ey").released, "ENEy");  // "ENE..." cannot be END
  EXPECT_EQ(other.flush(), "");
  runtime::StopStrings none({});
  EXPECT_EQ(none.push("abc").released, "abc");
}

// Greedy requests of different prompts and lengths, all at once on 4 slots with a queue: each
// gets what it gets alone, and what generate() (bitnet run) gives for prompts within a chunk.
TEST(Scheduler, ConcurrentRequestsGetWhatEachGetsAlone) {
  auto model = load_stories();
  ASSERT_TRUE(model);
  const std::vector<std::string> prompts = {"Once upon a time",
                                            "The cat",
                                            "Lily and Tom went to the park",
                                            "One day, a little bird",
                                            "Mom said",
                                            "The sun was",
                                            "Ben had a red ball",
                                            "There was a big tree"};
  auto request = [&](const std::string& prompt) {
    CompletionRequest r;
    r.prompt = model->vocab().tokenize(prompt, true, false);
    r.max_tokens = 24;
    r.sampling.temperature = 0;
    return r;
  };
  // generate() on a context of its own: bitnet run's ids.
  std::vector<std::vector<Token>> expected;
  for (const auto& p : prompts) {
    auto ctx = Context::create(model, {.n_ctx = 256});
    ASSERT_TRUE(ctx.ok());
    const auto r = request(p);
    auto g = generate(**ctx, r.prompt, {.n_predict = 24, .sampling = r.sampling});
    ASSERT_TRUE(g.ok()) << g.error().message;
    std::vector<Token> ids = g->generated_ids;
    if (g->stop_reason == "eog") ids.pop_back();  // the scheduler does not report the EOG token
    expected.push_back(ids);
  }
  auto scheduler = Scheduler::create(model, {.slots = 4, .n_ctx_slot = 128, .threads = 2});
  ASSERT_TRUE(scheduler.ok()) << scheduler.error().message;
  std::vector<std::future<Outcome>> futures;
  for (const auto& p : prompts) futures.push_back(submit(**scheduler, request(p)));
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Outcome o = futures[i].get();
    EXPECT_EQ(o.tokens, expected[i]) << prompts[i];
    EXPECT_EQ(o.finish_reason, o.tokens.size() == 24 ? "length" : "stop");
    EXPECT_EQ(o.completion_tokens, static_cast<int64_t>(o.tokens.size()));
    EXPECT_GT(o.events, 1);  // streamed, not all at the end
    std::string pieces;      // the streamed text continues the prompt: each token's piece as it is
    for (Token t : o.tokens) pieces += model->vocab().token_to_piece(t);
    EXPECT_EQ(o.text, pieces);
  }
  const SchedulerStats stats = (*scheduler)->stats();
  EXPECT_EQ(stats.requests_finished, prompts.size());
  EXPECT_EQ(stats.slots_busy, 0);
  EXPECT_EQ(stats.queued, 0);
  EXPECT_GT(stats.generated_tokens, 0);
}

// A seeded sampled request gives the same text alone and beside others; a long prompt is fed in
// chunks and gives the same text whatever runs beside it.
TEST(Scheduler, SeededAndLongPromptRequestsDoNotDependOnLoad) {
  auto model = load_stories();
  ASSERT_TRUE(model);
  CompletionRequest seeded;
  seeded.prompt = model->vocab().tokenize("Once upon a time", true, false);
  seeded.max_tokens = 32;
  seeded.sampling = {.temperature = 0.9f, .seed = 1234};
  CompletionRequest long_prompt;
  for (int i = 0; i < 150; ++i) long_prompt.prompt.push_back(static_cast<Token>(10 + (i * 37) % 400));
  long_prompt.max_tokens = 16;
  long_prompt.sampling.temperature = 0;
  const SchedulerParams params{.slots = 3, .n_ctx_slot = 256, .threads = 2, .prefill_chunk = 32};
  Outcome seeded_alone, long_alone;
  {
    auto alone = Scheduler::create(model, params);
    ASSERT_TRUE(alone.ok());
    seeded_alone = submit(**alone, seeded).get();
    long_alone = submit(**alone, long_prompt).get();
  }
  auto busy = Scheduler::create(model, params);
  ASSERT_TRUE(busy.ok());
  CompletionRequest other;
  other.prompt = model->vocab().tokenize("The dog", true, false);
  other.max_tokens = 40;
  auto f1 = submit(**busy, other);
  auto f2 = submit(**busy, seeded);
  auto f3 = submit(**busy, long_prompt);
  auto f4 = submit(**busy, other);  // waits for a slot
  EXPECT_EQ(f2.get().tokens, seeded_alone.tokens);
  EXPECT_EQ(f3.get().tokens, long_alone.tokens);
  f1.get();
  f4.get();
  EXPECT_EQ((*busy)->stats().prompt_tokens,
            static_cast<int64_t>(2 * other.prompt.size() + seeded.prompt.size() + long_prompt.prompt.size()));
}

TEST(Scheduler, StopStringsEndTheTextBeforeThem) {
  auto model = load_stories();
  ASSERT_TRUE(model);
  auto scheduler = Scheduler::create(model, {.slots = 2, .n_ctx_slot = 128});
  ASSERT_TRUE(scheduler.ok());
  CompletionRequest r;
  r.prompt = model->vocab().tokenize("Once upon a time", true, false);
  r.max_tokens = 40;
  r.sampling.temperature = 0;
  const Outcome full = submit(**scheduler, r).get();
  ASSERT_GT(full.text.size(), 20u);
  // A stop string from the middle of the text, starting inside a token's piece.
  const std::string stop = full.text.substr(full.text.size() / 2 + 1, 5);
  r.stop = {"never appears \x01", stop};
  const Outcome stopped = submit(**scheduler, r).get();
  EXPECT_EQ(stopped.finish_reason, "stop");
  EXPECT_EQ(stopped.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_LT(stopped.tokens.size(), full.tokens.size());
}

TEST(Scheduler, LimitsCancellationAndAFullQueue) {
  auto model = load_stories();
  ASSERT_TRUE(model);
  auto scheduler = Scheduler::create(model, {.slots = 1, .n_ctx_slot = 64, .max_queued = 1});
  ASSERT_TRUE(scheduler.ok());
  Scheduler& s = **scheduler;
  CompletionRequest r;
  r.prompt = model->vocab().tokenize("Once upon a time", true, false);
  r.sampling.temperature = 0;
  r.stop_at_eog = false;
  // Bad requests are refused at once.
  CompletionRequest empty = r;
  empty.prompt.clear();
  EXPECT_FALSE(s.submit(empty).ok());
  CompletionRequest too_long = r;
  too_long.prompt.assign(64, 5);
  EXPECT_FALSE(s.submit(too_long).ok());
  CompletionRequest bad_token = r;
  bad_token.prompt.push_back(static_cast<Token>(model->n_vocab()));
  EXPECT_FALSE(s.submit(bad_token).ok());
  CompletionRequest bad_sampling = r;
  bad_sampling.sampling.top_p = 3;
  EXPECT_FALSE(s.submit(bad_sampling).ok());

  // -1 runs until the slot's context is full.
  r.max_tokens = -1;
  const Outcome to_the_end = submit(s, r).get();
  EXPECT_EQ(to_the_end.finish_reason, "length");
  EXPECT_EQ(static_cast<int64_t>(r.prompt.size() + to_the_end.tokens.size()), 64 + 1);

  // One running, one queued, the next refused; cancelling both ends them. The running one's
  // first event holds the scheduler's thread until the test has done all that.
  std::mutex m;
  std::condition_variable changed;
  bool first_tokens = false, release = false;
  CompletionRequest slow = r;
  auto promise = std::make_shared<std::promise<std::string>>();
  slow.on_event = [&, promise](const CompletionEvent& e) {
    std::unique_lock lock(m);
    first_tokens = true;
    changed.notify_all();
    changed.wait(lock, [&] { return release; });
    if (e.done) promise->set_value(e.finish_reason);
  };
  auto running = s.submit(slow);
  ASSERT_TRUE(running.ok());
  {
    std::unique_lock lock(m);
    changed.wait(lock, [&] { return first_tokens; });
  }
  uint64_t queued_id = 0;
  auto queued = submit(s, r, &queued_id);
  auto refused = s.submit(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("queue is full"), std::string::npos) << refused.error().message;
  s.cancel(*running);
  s.cancel(queued_id);
  s.cancel(987654);  // unknown: ignored
  {
    std::lock_guard lock(m);
    release = true;
  }
  changed.notify_all();
  EXPECT_EQ(promise->get_future().get(), "cancelled");
  EXPECT_EQ(queued.get().finish_reason, "cancelled");
}

// Destroying a scheduler ends what it still runs with "cancelled".
TEST(Scheduler, DestructionCancelsWhatRuns) {
  auto model = load_stories();
  ASSERT_TRUE(model);
  std::future<Outcome> pending;
  {
    auto scheduler = Scheduler::create(model, {.slots = 1, .n_ctx_slot = 256});
    ASSERT_TRUE(scheduler.ok());
    CompletionRequest r;
    r.prompt = model->vocab().tokenize("Once upon a time", true, false);
    r.max_tokens = -1;
    r.stop_at_eog = false;
    submit(**scheduler, r);
    pending = submit(**scheduler, r);
  }
  EXPECT_EQ(pending.get().finish_reason, "cancelled");
}

}  // namespace
}  // namespace bitnet
