// The public C++ library (include/bitnet/) as a user links it: load, tokenize, decode many
// sequences, sample, edit the KV cache, chat templates; errors as values, nothing printed
// without a log callback; one Model shared by Contexts on several threads.
#include "bitnet/bitnet.h"
#include "compiler/load_model.h"
#include "runtime/generate.h"
#include "test_support.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace bitnet {
namespace {

const std::string kStories = (testing::source_dir() / "models/stories260K.gguf").string();

std::shared_ptr<const Model> load(const std::string& path, ModelParams params = {}) {
  params.use_cache = false;
  auto model = Model::load(path, params);
  EXPECT_TRUE(model.ok()) << model.error().message;
  return model.ok() ? *model : nullptr;
}

// Greedy continuation of `prompt` on sequence `seq` of `ctx` (the sequence must be empty).
std::vector<Token> greedy(Context& ctx, const std::vector<Token>& prompt, int n, int32_t seq = 0) {
  Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i)
    batch.add(prompt[i], static_cast<int64_t>(i), {seq}, i + 1 == prompt.size());
  EXPECT_TRUE(ctx.decode(batch).ok());
  auto sampler = Sampler::create({.temperature = 0});
  EXPECT_TRUE(sampler.ok());
  std::vector<Token> out;
  for (int i = 0; i < n; ++i) {
    const Token t = sampler->sample(ctx.logits(-1));
    sampler->accept(t);
    out.push_back(t);
    batch.clear();
    batch.add(t, static_cast<int64_t>(prompt.size()) + i, {seq}, true);
    auto s = ctx.decode(batch);
    EXPECT_TRUE(s.ok()) << s.error().message;
  }
  return out;
}

TEST(Api, ModelMetadataAndVocabulary) {
  auto model = load(kStories);
  ASSERT_TRUE(model);
  EXPECT_EQ(model->architecture(), "llama");
  EXPECT_EQ(model->n_vocab(), model->vocab().n_tokens());
  EXPECT_GT(model->n_layer(), 0);
  EXPECT_GT(model->n_params(), 0);
  EXPECT_GT(model->size(), 0);
  EXPECT_EQ(model->meta("general.architecture"), "llama");
  EXPECT_FALSE(model->meta("no.such.key").has_value());
  EXPECT_FALSE(model->meta_keys().empty());
  EXPECT_EQ(model->backend(), "jit");
  const Vocab& v = model->vocab();
  const auto ids = v.tokenize("Once upon a time", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), v.bos());
  auto text = v.detokenize(std::span(ids).subspan(1));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "Once upon a time");
  EXPECT_FALSE(v.detokenize(std::vector<Token>{-3}).ok());
  EXPECT_EQ(v.text(-1), "");
  EXPECT_TRUE(v.is_eog(v.eos()));
  // What llama.h's vocabulary calls report.
  EXPECT_FALSE(v.is_bpe());  // SentencePiece ("llama")
  EXPECT_TRUE(v.is_control(v.bos()));
  EXPECT_FALSE(v.is_control(ids.back()));
  EXPECT_EQ(v.attributes(v.bos()) & 8u, 8u);  // LLAMA_TOKEN_ATTR_CONTROL
  EXPECT_EQ(v.attributes(-1), 0u);
  EXPECT_EQ(v.score(-1), 0.0f);
  EXPECT_NE(v.score(ids.back()), 0.0f);
  ASSERT_GE(v.newline(), 0);
  EXPECT_EQ(v.token_to_piece(v.newline()), "\n");
  EXPECT_FALSE(v.adds_eos());
}

TEST(Api, ErrorsAreValues) {
  auto missing = Model::load("/nonexistent/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_FALSE(missing.error().message.empty());
  EXPECT_FALSE(Model::load("").ok());
  EXPECT_FALSE(Context::create(nullptr).ok());
  auto model = load(kStories);
  ASSERT_TRUE(model);
  EXPECT_FALSE(Context::create(model, {.n_ctx = 8, .n_seq_max = 9}).ok());
  EXPECT_FALSE(Context::create(model, {.threads = -1}).ok());
  auto ctx = Context::create(model, {.n_ctx = 64, .n_seq_max = 2});
  ASSERT_TRUE(ctx.ok());
  Batch b;
  EXPECT_FALSE((*ctx)->decode(b).ok());
  b.add(1, 5, {0}, true);
  auto s = (*ctx)->decode(b);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("continues at position 0"), std::string::npos);
  EXPECT_EQ(s.error().kind, ErrorKind::kInvalid);
  Batch fill;  // 32 cells per sequence: the 33rd token has no room
  for (int i = 0; i < 33; ++i) fill.add(1, i, {1}, false);
  auto full = (*ctx)->decode(fill);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().kind, ErrorKind::kContextFull) << full.error().message;
  EXPECT_TRUE((*ctx)->logits(0).empty());
  EXPECT_TRUE((*ctx)->logits(-1).empty());
  EXPECT_FALSE(Sampler::create({.top_p = 2}).ok());
  EXPECT_FALSE(Sampler::create({.temperature = std::numeric_limits<float>::quiet_NaN()}).ok());
  EXPECT_FALSE(Sampler::create({.repeat_penalty = 0}).ok());
  // Load options the library cannot honour are errors, not ignored.
  auto expect_refused = [](const ModelParams& params, std::string_view words) {
    auto m = Model::load(kStories, params);
    ASSERT_FALSE(m.ok()) << words;
    EXPECT_NE(m.error().message.find(words), std::string::npos) << m.error().message;
  };
  expect_refused({.use_cache = false, .lm_head = "q4_k"}, "q4_k");
  expect_refused({.backend = "gpu", .use_cache = false}, "gpu");
  expect_refused({.backend = "interp", .lm_head = "q8_0"}, "lm_head q8_0");
  expect_refused({.plan_path = "/nonexistent.plan", .lm_head = "q8_0"}, "lm_head q8_0");
  expect_refused({.use_cache = false, .diagnostics = {.print_after = {"no-such-pass"}}}, "no-such-pass");
  EXPECT_FALSE(evaluate(*model, std::vector<Token>{1, 2, 3}, {.threads = 100000}).ok());
}

// The API's greedy ids are the runtime generator's (what `bitnet run --greedy` prints), and
// several sequences decoded together get the same ids as each alone.
TEST(Api, GreedyMatchesTheGeneratorAlsoWithManySequences) {
  auto model = load(kStories);
  ASSERT_TRUE(model);
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily and Tom went"};
  std::vector<std::vector<Token>> want;
  {
    auto m = compiler::load_model(kStories);
    ASSERT_TRUE(m.ok());
    for (const std::string& p : prompts) {
      auto session = (*m)->new_session(false, 128, 1);
      ASSERT_TRUE(session.ok());
      runtime::GenerateOptions o;
      o.n_predict = 12;
      o.sampling.greedy = true;
      o.stop_at_eog = false;
      auto r = runtime::generate(**session, (*m)->tokenizer(), model->vocab().tokenize(p, true, false), o);
      ASSERT_TRUE(r.ok()) << r.error().message;
      want.push_back(r->generated_ids);
    }
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto ctx = Context::create(model, {.n_ctx = 128, .threads = 2});
    ASSERT_TRUE(ctx.ok());
    EXPECT_EQ(greedy(**ctx, model->vocab().tokenize(prompts[i], true, false), 12), want[i]) << prompts[i];
  }
  // All three at once: prompts in one batch, then one token of each per step.
  auto ctx = Context::create(model, {.n_ctx = 3 * 128, .n_seq_max = 3, .threads = 2});
  ASSERT_TRUE(ctx.ok());
  Batch batch;
  std::vector<int64_t> next(3);
  for (int32_t s = 0; s < 3; ++s) {
    const auto ids = model->vocab().tokenize(prompts[static_cast<size_t>(s)], true, false);
    for (size_t i = 0; i < ids.size(); ++i) batch.add(ids[i], static_cast<int64_t>(i), {s}, i + 1 == ids.size());
    next[static_cast<size_t>(s)] = static_cast<int64_t>(ids.size());
  }
  ASSERT_TRUE((*ctx)->decode(batch).ok());
  ASSERT_EQ((*ctx)->n_outputs(), 3);
  std::vector<std::vector<Token>> got(3);
  for (int step = 0; step < 12; ++step) {
    batch.clear();
    for (int32_t s = 0; s < 3; ++s) {
      std::span<const float> row = (*ctx)->logits(s);
      const auto best = static_cast<Token>(std::max_element(row.begin(), row.end()) - row.begin());
      got[static_cast<size_t>(s)].push_back(best);
      batch.add(best, next[static_cast<size_t>(s)]++, {s}, true);
    }
    ASSERT_TRUE((*ctx)->decode(batch).ok());
  }
  EXPECT_EQ(got, want);
}

// Progress of a load goes to the progress callback, and nowhere without one.
TEST(Api, LoadProgressGoesToTheCallback) {
  std::mutex m;
  std::vector<std::pair<std::string, double>> reports;
  set_progress_callback([&](std::string_view what, double fraction) {
    std::lock_guard<std::mutex> lock(m);
    reports.emplace_back(std::string(what), fraction);
  });
  auto model = load(kStories);  // no plan cache: the kernels are compiled
  set_progress_callback(nullptr);
  ASSERT_TRUE(model);
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.front().first, "compiling kernels");
  // Each step ends with 1, once, after its other reports.
  std::map<std::string, int> finished;
  for (const auto& [what, fraction] : reports) {
    EXPECT_TRUE(fraction >= 0 && fraction <= 1) << what;
    EXPECT_EQ(finished[what], 0) << what << " reported after it finished";
    if (fraction == 1.0) ++finished[what];
  }
  for (const auto& [what, n] : finished) EXPECT_EQ(n, 1) << what;
  EXPECT_EQ(finished.count("compiling kernels"), 1u);
  const size_t seen = reports.size();
  ASSERT_TRUE(load(kStories));
  EXPECT_EQ(reports.size(), seen);
}

// A library must leave the process's signal handling alone: loading a model that has to be
// compiled and linked (a cache miss) installs no signal handler and no alternate signal stack
// (LLVM's file-removal handlers would, were lld to write its output through a temp file).
TEST(Api, LoadingInstallsNoSignalHandlers) {
  const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGPIPE, SIGUSR1};
  auto handlers = [&] {
    std::vector<std::pair<void*, int>> out;
    for (int sig : signals) {
      struct sigaction sa {};
      sigaction(sig, nullptr, &sa);
      // glibc adds SA_RESTORER to whatever it installs (putting SIG_DFL back included).
      out.emplace_back(reinterpret_cast<void*>(sa.sa_sigaction), sa.sa_flags & ~0x04000000);
    }
    return out;
  };
  auto alt_stack = [] {
    stack_t st{};
    sigaltstack(nullptr, &st);
    return std::make_pair(st.ss_sp, st.ss_flags);
  };
  testing::TempDir cache;
  const auto before = handlers();
  std::pair<void*, int> thread_before, thread_after;
  std::thread loader([&] {
    thread_before = alt_stack();
    auto model = Model::load(kStories, {.cache_dir = cache.path().string()});
    EXPECT_TRUE(model.ok()) << model.error().message;
    thread_after = alt_stack();
  });
  loader.join();
  EXPECT_EQ(handlers(), before);
  EXPECT_EQ(thread_after, thread_before);
}

// A vocabulary without a model: the same ids as the model's; bad files are errors.
TEST(Api, AVocabularyLoadsOnItsOwn) {
  auto model = load(kStories);
  ASSERT_TRUE(model);
  auto vocab = Vocab::load(kStories);
  ASSERT_TRUE(vocab.ok()) << vocab.error().message;
  const std::string text = "Once upon a time, Lily saw a big dog.";
  EXPECT_EQ((*vocab)->tokenize(text, true, false), model->vocab().tokenize(text, true, false));
  EXPECT_EQ((*vocab)->n_tokens(), model->vocab().n_tokens());
  testing::TempDir dir;
  EXPECT_FALSE(Vocab::load((dir / "missing.gguf").string()).ok());
  testing::write_file(dir / "t.json", {'{', '}'});
  EXPECT_FALSE(Vocab::load((dir / "t.json").string()).ok());
  testing::write_file(dir / "junk.bin", {'G', 'G', 'U', 'X', 0, 0});
  EXPECT_FALSE(Vocab::load((dir / "junk.bin").string()).ok());
}

// generate(): the same ids as the decode/sample loop, text streamed as it is produced, and a
// second call continuing the context where the first left it.
TEST(Api, GenerateStreamsAndContinuesAContext) {
  auto model = load(kStories);
  ASSERT_TRUE(model);
  const std::vector<Token> prompt = model->vocab().tokenize("Once upon a time", true, false);
  auto fresh = Context::create(model, {.n_ctx = 64, .threads = 1});
  ASSERT_TRUE(fresh.ok());
  const std::vector<Token> want = greedy(**fresh, prompt, 16);

  auto ctx = Context::create(model, {.n_ctx = 64, .threads = 2});
  ASSERT_TRUE(ctx.ok());
  GenerateParams params;
  params.n_predict = 8;
  params.sampling.temperature = 0;
  params.top_logits_steps = 2;
  params.top_logits_k = 3;
  std::string streamed;
  auto first = generate(**ctx, prompt, params, [&](std::string_view text) { streamed += text; });
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->generated_ids, std::vector<Token>(want.begin(), want.begin() + 8));
  EXPECT_EQ(first->text, streamed);
  EXPECT_EQ(first->stop_reason, "length");
  ASSERT_EQ(first->top_logits.size(), 2u);
  ASSERT_EQ(first->top_logits[0].size(), 3u);
  EXPECT_EQ(first->top_logits[0][0].id, want[0]);
  // The context holds the prompt and all generated tokens but the last.
  EXPECT_EQ((*ctx)->seq_pos_max(0) + 1, static_cast<int64_t>(prompt.size() + 7));

  // Continue: the last token is the next prompt; the earlier tokens are what the context holds.
  params.top_logits_steps = 0;
  params.earlier_tokens = prompt;
  params.earlier_tokens.insert(params.earlier_tokens.end(), first->generated_ids.begin(),
                               first->generated_ids.end() - 1);
  const std::vector<Token> next = {first->generated_ids.back()};
  auto second = generate(**ctx, next, params);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->generated_ids, std::vector<Token>(want.begin() + 8, want.end()));

  // Errors are values and change nothing.
  params.earlier_tokens.clear();
  EXPECT_FALSE(generate(**ctx, next, params).ok());  // the context holds more than that
  auto empty = Context::create(model, {.n_ctx = 64, .threads = 1});
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(generate(**empty, std::vector<Token>{}, params).ok());
  params.top_logits_k = 0;
  EXPECT_FALSE(generate(**empty, prompt, params).ok());
  params.top_logits_k = 10;
  params.sampling.top_p = 2;
  EXPECT_FALSE(generate(**empty, prompt, params).ok());
  EXPECT_EQ((*empty)->seq_pos_max(0), -1);

  // The template a chat would use: the model has none, so chatml; a name is itself.
  EXPECT_EQ(chat_template_name(*model, "").value(), "chatml");
  EXPECT_EQ(chat_template_name(*model, "llama3").value(), "llama3");
}

// evaluate(): the NLL of each next token under the logits a Context gives for the same batch
// (prompt mode, one window: the same logits bit for bit).
TEST(Api, EvaluateScoresWhatAContextPredicts) {
  auto model = load(kStories);
  ASSERT_TRUE(model);
  const std::vector<Token> tokens = model->vocab().tokenize("Once upon a time there was a little dog", true, false);
  ASSERT_GE(tokens.size(), 6u);
  auto eval = evaluate(*model, tokens, {.keep_logits = true, .top_logits_steps = 1, .threads = 2});
  ASSERT_TRUE(eval.ok()) << eval.error().message;
  EXPECT_EQ(eval->n_tokens, static_cast<int64_t>(tokens.size()));
  EXPECT_EQ(eval->n_predicted, static_cast<int64_t>(tokens.size()) - 1);
  EXPECT_EQ(eval->windows, 1);
  ASSERT_EQ(eval->n_vocab, model->n_vocab());
  ASSERT_EQ(eval->logits.size(), tokens.size() * static_cast<size_t>(model->n_vocab()));

  auto ctx = Context::create(model, {.n_ctx = 64, .threads = 1, .all_logits = true});
  ASSERT_TRUE(ctx.ok());
  Batch batch;
  for (size_t i = 0; i < tokens.size(); ++i) batch.add(tokens[i], static_cast<int64_t>(i), {0}, true);
  ASSERT_TRUE((*ctx)->decode(batch).ok());
  double nll = 0;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    const std::span<const float> row = (*ctx)->logits(static_cast<int32_t>(i));
    const std::span<const float> kept(eval->logits.data() + i * row.size(), row.size());
    EXPECT_TRUE(std::equal(row.begin(), row.end(), kept.begin())) << "row " << i;
    const float top = *std::max_element(row.begin(), row.end());
    double sum = 0;
    for (float v : row) sum += std::exp(static_cast<double>(v) - top);
    nll -= static_cast<double>(row[static_cast<size_t>(tokens[i + 1])]) - top - std::log(sum);
  }
  EXPECT_NEAR(eval->nll_sum, nll, 1e-6 * nll);
  EXPECT_NEAR(eval->perplexity(), std::exp(nll / static_cast<double>(tokens.size() - 1)), 1e-6);
  ASSERT_EQ(eval->top_logits.size(), 1u);

  // Errors are values.
  EXPECT_FALSE(evaluate(*model, std::vector<Token>{1}, {}).ok());
  EXPECT_FALSE(evaluate(*model, std::vector<Token>{1, static_cast<Token>(model->n_vocab())}, {}).ok());
  EXPECT_FALSE(evaluate(*model, tokens, {.ctx = 4, .stride = 5}).ok());
}

// Two different models whose kernels come from plans, alive at once, each run their own code
// (the dynamic loader once returned the first model's library for the second: both were loaded
// through the same /proc/self/fd/N path).
TEST(Api, TwoModelsFromPlansEachRunTheirOwnKernels) {
  BITNET_REQUIRE_SHARED(shared);
  testing::TempDir dir;
  const std::string other = (shared / "models/bitnet-i2s/bitnet-tiny-mha.i2_s.gguf").string();
  const ModelParams cached{.cache_dir = (dir.path() / "cache").string()};
  // The logits after a short prompt.
  auto logits_of = [](const std::shared_ptr<const Model>& model) {
    auto ctx = Context::create(model, {.n_ctx = 64});
    EXPECT_TRUE(ctx.ok());
    if (!ctx.ok()) return std::vector<float>{};
    Batch batch;
    for (int i = 0; i < 3; ++i) batch.add(1 + 4 * i, i, {0}, i == 2);
    EXPECT_TRUE((*ctx)->decode(batch).ok());
    const auto logits = (*ctx)->logits(-1);
    return std::vector<float>(logits.begin(), logits.end());
  };
  std::vector<float> stories_alone, other_alone;
  for (int pass = 0; pass < 2; ++pass) {  // the first pass compiles into the cache, the second loads plans
    auto a = Model::load(kStories, cached);
    ASSERT_TRUE(a.ok()) << a.error().message;
    stories_alone = logits_of(*a);
  }
  {
    auto b = Model::load(other, cached);
    ASSERT_TRUE(b.ok()) << b.error().message;
    other_alone = logits_of(*b);
  }
  auto b = Model::load(other, cached);
  ASSERT_TRUE(b.ok());
  auto a = Model::load(kStories, cached);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(logits_of(*b), other_alone);
  EXPECT_EQ(logits_of(*a), stories_alone);
}

// One Model, four Contexts on four threads at once (two of them with two worker threads of
// their own): each gets what it gets alone. scripts/tsan.sh runs this under ThreadSanitizer.
TEST(Api, ContextsOnSeveralThreadsShareOneModel) {
  auto model = load(kStories);
  ASSERT_TRUE(model);
  const std::vector<std::string> prompts = {"Once", "The cat", "A big red", "She said"};
  std::vector<std::vector<Token>> alone;
  for (const auto& p : prompts) {
    auto ctx = Context::create(model, {.n_ctx = 64, .threads = 1});
    ASSERT_TRUE(ctx.ok());
    alone.push_back(greedy(**ctx, model->vocab().tokenize(p, true, false), 16));
  }
  std::vector<std::vector<Token>> together(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      auto ctx = Context::create(model, {.n_ctx = 64, .threads = i % 2 == 0 ? 1 : 2});
      if (!ctx.ok()) return;
      for (int round = 0; round < 3; ++round) {
        (*ctx)->memory_clear();
        together[i] = greedy(**ctx, model->vocab().tokenize(prompts[i], true, false), 16);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(together, alone);
}

// Two threads load the same GGUF at once through one plan cache: one compiles and writes the
// plan, the other waits for it or compiles too; both models give the same greedy ids.
TEST(Api, ModelsLoadedOnTwoThreadsAtOnceShareThePlanCache) {
  testing::TempDir cache;
  std::vector<std::vector<Token>> ids(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      auto model = Model::load(kStories, {.cache_dir = cache.path().string()});
      if (!model.ok()) {
        errors[i] = model.error().message;
        return;
      }
      auto ctx = Context::create(*model, {.n_ctx = 64, .threads = 1});
      if (!ctx.ok()) {
        errors[i] = ctx.error().message;
        return;
      }
      ids[i] = greedy(**ctx, (*model)->vocab().tokenize("Once upon", true, false), 8);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, std::vector<std::string>(2));
  EXPECT_EQ(ids[0].size(), 8u);
  EXPECT_EQ(ids[0], ids[1]);
}

TEST(Api, KvEditsAndSampling) {
  auto model = load(kStories);
  ASSERT_TRUE(model);
  auto ctx = Context::create(model, {.n_ctx = 128, .n_seq_max = 2, .threads = 1});
  ASSERT_TRUE(ctx.ok());
  const auto ids = model->vocab().tokenize("Once upon a time there", true, false);
  const auto first = greedy(**ctx, ids, 4);
  EXPECT_EQ((*ctx)->seq_pos_max(0), static_cast<int64_t>(ids.size()) + 3);
  // Copy the prompt's cells to sequence 1 and continue there: the same ids.
  ASSERT_TRUE((*ctx)->seq_rm(0, static_cast<int64_t>(ids.size()) - 1, -1));
  ASSERT_TRUE((*ctx)->seq_cp(0, 1, -1, -1).ok());
  EXPECT_FALSE((*ctx)->seq_rm(-1, 0, 1));  // a middle range of every sequence
  Batch b;
  b.add(ids.back(), static_cast<int64_t>(ids.size()) - 1, {1}, true);
  ASSERT_TRUE((*ctx)->decode(b).ok());
  std::span<const float> row = (*ctx)->logits(0);
  EXPECT_EQ(static_cast<Token>(std::max_element(row.begin(), row.end()) - row.begin()), first[0]);
  EXPECT_TRUE((*ctx)->seq_keep(1).ok());
  EXPECT_EQ((*ctx)->seq_pos_max(0), -1);
  // A seeded sampler repeats itself after reset; accepted tokens feed the penalty.
  auto s = Sampler::create({.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0, .seed = 7});
  ASSERT_TRUE(s.ok());
  std::vector<Token> a, c;
  for (int i = 0; i < 8; ++i) a.push_back(s->sample(row));
  s->reset();
  for (int i = 0; i < 8; ++i) c.push_back(s->sample(row));
  EXPECT_EQ(a, c);
}

TEST(Api, ChatTemplatesAndTheLogCallback) {
  auto model = load(kStories);
  ASSERT_TRUE(model);
  const std::vector<ChatMessage> messages = {{"system", "Be brief."}, {"user", "Hi"}};
  auto text = apply_chat_template(*model, "chatml", messages, true);
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_FALSE(apply_chat_template(*model, "no-such-template", messages, true).ok());
  // Without a model (llama_chat_apply_template): a Jinja text is recognised, BOS/EOS texts given.
  auto by_text = apply_chat_template("{% for m in messages %}<|im_start|>{{ m.role }}", messages, true, "", "");
  ASSERT_TRUE(by_text.ok()) << by_text.error().message;
  EXPECT_EQ(*by_text, *text);
  std::vector<ChatMessage> turns = messages;
  turns.push_back({"assistant", "Hello."});
  turns.push_back({"user", "Bye"});
  auto llama2 = apply_chat_template("llama2", turns, false, "<s>", "</s>");
  ASSERT_TRUE(llama2.ok());
  EXPECT_EQ(*llama2, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(chat_template_names().size(), 8u);

  // Warnings reach the callback, never stderr: an unusable cache directory.
  std::mutex m;
  std::vector<std::string> lines;
  set_log_callback([&](LogLevel, std::string_view line) {
    std::lock_guard<std::mutex> lock(m);
    lines.emplace_back(line);
  });
  ::testing::internal::CaptureStderr();
  auto cached = Model::load(kStories, {.cache_dir = "/dev/null/cache"});
  const std::string err = ::testing::internal::GetCapturedStderr();
  set_log_callback(nullptr);
  ASSERT_TRUE(cached.ok()) << cached.error().message;
  EXPECT_EQ(err, "");
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("warning"), std::string::npos) << lines[0];
}

// lib/libbitnet.so with the public headers alone: a program linked only to it generates the
// same greedy ids as the static library.
TEST(ApiShared, AProgramLinkedToTheSharedLibraryRuns) {
  auto model = load(kStories);
  ASSERT_TRUE(model);
  auto ctx = Context::create(model, {.n_ctx = 64, .threads = 1});
  ASSERT_TRUE(ctx.ok());
  std::string want;
  for (Token t : greedy(**ctx, model->vocab().tokenize("Once upon a time", true, false), 8)) {
    want += std::to_string(t) + " ";
  }
  const auto r =
      testing::run_command((testing::bitnet_cli().parent_path() / "shared_library_smoke").string() + " " + kStories);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want + "\n");
  EXPECT_EQ(r.err, "");
}

// The shared library exports the API of include/bitnet/ and nothing of the engine (whose
// symbols would clash with a program's own copy of LLVM, fmt, ...): every defined dynamic
// symbol is a public class's member or function, or one of the linker's own markers.
TEST(ApiShared, TheSharedLibraryExportsOnlyThePublicApi) {
  const auto lib = testing::binary_dir() / "lib" / "libbitnet.so";
  const auto r = testing::run_command("nm -DC --defined-only " + testing::shell_quote(lib.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string_view> allowed = {"bitnet::Model::",
                                                 "bitnet::Vocab::",
                                                 "bitnet::Context::",
                                                 "bitnet::Sampler::",
                                                 "bitnet::Scheduler::",
                                                 "bitnet::apply_chat_template",
                                                 "bitnet::chat_template_name",
                                                 "bitnet::generate",
                                                 "bitnet::evaluate",
                                                 "bitnet::set_log_callback",
                                                 "bitnet::set_progress_callback",
                                                 "bitnet::compiler_pass_names",
                                                 "_edata",
                                                 "_end",
                                                 "__bss_start",
                                                 "_init",
                                                 "_fini"};
  size_t api = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    // "<address> <kind> <name>"
    const size_t name_at = line.find(' ', line.find(' ') + 1);
    ASSERT_NE(name_at, std::string::npos) << line;
    const std::string_view name = std::string_view(line).substr(name_at + 1);
    // Local symbols (b, d, r, t) bind nothing outside the library: GNU ld leaves some in the
    // dynamic table when the version script demotes a symbol another shared library also
    // defines (std template typeinfo that libLLVM exports).
    const char kind = line[line.find(' ') + 1];
    if (kind == 'b' || kind == 'd' || kind == 'r' || kind == 't') continue;
    const bool ok =
        std::any_of(allowed.begin(), allowed.end(), [&](std::string_view a) { return name.starts_with(a); });
    EXPECT_TRUE(ok) << "exported: " << name;
    if (name.starts_with("bitnet::")) ++api;
  }
  EXPECT_GE(api, 40u) << r.out;  // the API is there
}

}  // namespace
}  // namespace bitnet
