// End-to-end generation and evaluation through runtime::Model: the trained stories260K
// model reproduces llama2.c's greedy output; eval's NLL agrees with the logits it reports.
#include "compiler/load_model.h"
#include "runtime/evaluate.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "test_support.h"

#include <cmath>
#include <fstream>

namespace bitnet::runtime {
namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::unique_ptr<Model> load(const std::filesystem::path& path) {
  auto model = compiler::load_model(path.string());
  EXPECT_TRUE(model.ok()) << model.error().message;
  return model.ok() ? std::move(*model) : nullptr;
}

// llama2.c `run stories260K.bin -t 0.0 -n 200`: 200 forward passes from BOS, each printing
// the greedy token (stopping at BOS), the leading space of the first piece dropped.
TEST(Generation, Stories260KMatchesLlama2c) {
  BITNET_REQUIRE_SHARED(shared);
  auto model = load(testing::source_dir() / "models/stories260K.gguf");
  ASSERT_TRUE(model);
  auto session = model->new_session(false, 512, 2);
  ASSERT_TRUE(session.ok());
  GenerateOptions o;
  o.n_predict = 200;
  o.sampling.greedy = true;
  o.stop_at_eog = false;
  auto result = generate(**session, model->tokenizer(), {1}, o);
  ASSERT_TRUE(result.ok()) << result.error().message;
  std::vector<int32_t> ids = result->generated_ids;
  if (auto bos = std::find(ids.begin(), ids.end(), 1); bos != ids.end()) ids.erase(bos, ids.end());
  const std::string text = model->tokenizer().decode(ids);
  const std::string expected = read_text(shared / "models/llama2c/stories260K.run_c_greedy_n200.expected.txt");
  EXPECT_EQ(text, expected);
}

TEST(Generation, StreamingConcatenatesToText) {
  auto model = load(testing::source_dir() / "models/stories260K.gguf");
  ASSERT_TRUE(model);
  auto session = model->new_session(false, 128, 1);
  ASSERT_TRUE(session.ok());
  GenerateOptions o;
  o.n_predict = 40;
  o.sampling.seed = 7;
  o.dump_logit_steps = 3;
  o.logits_topk = 5;
  std::string streamed;
  const auto prompt = model->tokenizer().encode("Once upon a time", {});
  auto result = generate(**session, model->tokenizer(), prompt, o, [&](std::string_view s) { streamed += s; });
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(streamed, result->text);
  EXPECT_FALSE(result->text.empty());
  ASSERT_EQ(result->dumped_logits.size(), 3u);
  EXPECT_EQ(result->dumped_logits[0].size(), 5u);
  EXPECT_EQ(result->dumped_logits[0][0].id, result->generated_ids[0] == result->dumped_logits[0][0].id
                                                ? result->generated_ids[0]
                                                : result->dumped_logits[0][0].id);
  // Same seed, same text.
  auto again_session = model->new_session(false, 128, 2);
  auto again = generate(**again_session, model->tokenizer(), prompt, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->generated_ids, result->generated_ids);
}

TEST(Generation, BadInputs) {
  auto model = load(testing::source_dir() / "models/stories260K.gguf");
  ASSERT_TRUE(model);
  auto session = model->new_session(false, 16, 1);
  ASSERT_TRUE(session.ok());
  GenerateOptions o;
  EXPECT_FALSE(generate(**session, model->tokenizer(), {}, o).ok());
  std::vector<int32_t> long_prompt(20, 100);
  auto r = generate(**session, model->tokenizer(), long_prompt, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("context"), std::string::npos);
  // A generation that reaches the end of the context stops there cleanly.
  o.n_predict = 100;
  o.sampling.greedy = true;
  auto full = generate(**session, model->tokenizer(), {1, 100}, o);
  ASSERT_TRUE(full.ok()) << full.error().message;
  EXPECT_EQ(full->stop_reason, "context");
}

// Continuing a session that already holds tokens (a chat's next turn): the caller says which,
// and a continuation is what one generation over the whole prompt would give (greedy).
TEST(Generation, ContinuesASessionThatHoldsEarlierTokens) {
  auto model = load(testing::source_dir() / "models/stories260K.gguf");
  ASSERT_TRUE(model);
  const std::vector<int32_t> first = {1, 365, 201, 263}, second = {431, 29};
  GenerateOptions o;
  o.sampling.greedy = true;
  o.n_predict = 8;
  auto whole_session = model->new_session(false, 64, 1);
  ASSERT_TRUE(whole_session.ok());
  std::vector<int32_t> both = first;
  both.insert(both.end(), second.begin(), second.end());
  auto whole = generate(**whole_session, model->tokenizer(), both, o);
  ASSERT_TRUE(whole.ok()) << whole.error().message;

  auto session = model->new_session(false, 64, 1);
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE((*session)->run(first).ok());
  auto unsaid = generate(**session, model->tokenizer(), second, o);  // earlier_tokens not given
  ASSERT_FALSE(unsaid.ok());
  EXPECT_NE(unsaid.error().message.find("holds 4 tokens"), std::string::npos) << unsaid.error().message;
  o.earlier_tokens = first;
  auto continued = generate(**session, model->tokenizer(), second, o);
  ASSERT_TRUE(continued.ok()) << continued.error().message;
  EXPECT_EQ(continued->generated_ids, whole->generated_ids);
}

TEST(Evaluate, NllMatchesLogits) {
  auto model = load(testing::source_dir() / "models/stories260K.gguf");
  ASSERT_TRUE(model);
  const auto tokens = model->tokenizer().encode("Once upon a time, there was a little girl named Lily.", {});
  EvalOptions e;
  e.keep_logits = true;
  auto r = evaluate(*model, tokens, e);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->n_predicted, static_cast<int64_t>(tokens.size()) - 1);
  double nll = 0;
  for (size_t i = 1; i < tokens.size(); ++i) {
    const float* row = r->logits.data() + (i - 1) * r->n_vocab;
    double sum = 0;
    float max = row[0];
    for (int64_t v = 0; v < r->n_vocab; ++v) max = std::max(max, row[v]);
    for (int64_t v = 0; v < r->n_vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
    nll += std::log(sum) + max - row[tokens[i]];
  }
  EXPECT_NEAR(r->nll_sum, nll, 1e-9);
  EXPECT_LT(r->perplexity(), 10.0);  // the trained model knows this sentence well
  // Decode mode scores the same tokens (F32 weights: numerics identical in both modes).
  e.decode_mode = true;
  auto d = evaluate(*model, tokens, e);
  ASSERT_TRUE(d.ok());
  EXPECT_NEAR(d->mean_nll(), r->mean_nll(), 1e-4);
  // Sliding windows cover every token once.
  EvalOptions w;
  w.ctx = 8;
  w.stride = 3;
  auto s = evaluate(*model, tokens, w);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->n_predicted, static_cast<int64_t>(tokens.size()) - 1);
  EXPECT_GT(s->windows, 1);
}

TEST(Evaluate, BadInputs) {
  auto model = load(testing::source_dir() / "models/stories260K.gguf");
  ASSERT_TRUE(model);
  EvalOptions e;
  EXPECT_FALSE(evaluate(*model, std::vector<int32_t>{1}, e).ok());
  auto bad = evaluate(*model, std::vector<int32_t>{1, 600, 2}, e);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("600"), std::string::npos);
  e.keep_logits = true;
  e.ctx = 4;
  EXPECT_FALSE(evaluate(*model, std::vector<int32_t>{1, 2, 3, 4, 5, 6}, e).ok());
}

TEST(Model, RejectsMismatchedTokenizer) {
  BITNET_REQUIRE_SHARED(shared);
  auto model = compiler::load_model((testing::source_dir() / "models/stories260K.gguf").string(),
                                    {.tokenizer_path = (shared / "models/vocab/ggml-vocab-llama-spm.gguf").string()});
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.error().message.find("32000"), std::string::npos);
}

}  // namespace
}  // namespace bitnet::runtime
