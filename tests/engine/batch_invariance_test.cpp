// Many sequences per step (runtime/batch.h): randomized batch compositions - 1 to 16
// sequences, prompt chunks mixed with single-token steps, prompts shared by several
// sequences, copies of a sequence, truncations - give every sequence the logits it gets when
// it runs alone, bit for bit, on the interpreter and the JIT at 1-3 threads. Also the batch
// and KV-edit errors, which change nothing.
#include "compiler/jit_model.h"
#include "compiler/load_model.h"
#include "ir/support/half.h"
#include "ir/support/rope.h"
#include "passes/pass_test_util.h"
#include "runtime/kv_shift.h"
#include "runtime/model.h"
#include "test_support.h"

#include <cstring>
#include <random>

namespace bitnet {
namespace {

constexpr int32_t kSeqs = 16;
constexpr int64_t kCellsPerSeq = 64;

// What happened to one sequence, in order: replaying it on a session of its own must give
// the rows recorded when it ran batched.
struct Step {
  std::vector<int32_t> tokens;  // a chunk fed in one call (empty: a truncation)
  std::vector<uint8_t> wanted;  // rows whose logits were asked for
  std::vector<float> logits;    // those rows, as the batched run gave them
  int64_t truncate_to = -1;
  int64_t shift_from = -1, shift_to = -1;  // a context shift: positions [to, from) removed, the rest moved down
};
using Log = std::vector<Step>;

std::unique_ptr<runtime::Model> load(const std::filesystem::path& path, const std::string& backend) {
  auto model = compiler::load_model(path.string());
  EXPECT_TRUE(model.ok()) << model.error().message;
  if (!model.ok()) return nullptr;
  if (backend == "jit") {
    auto status = compiler::attach_backend(**model, {.backend = "jit"});
    EXPECT_TRUE(status.ok()) << status.error().message;
  }
  return std::move(*model);
}

std::unique_ptr<runtime::Session> session(const runtime::Model& model, int32_t n_seq, int threads) {
  auto s =
      model.new_session({.all_logits = false, .n_ctx = n_seq * kCellsPerSeq, .threads = threads, .n_seq_max = n_seq});
  EXPECT_TRUE(s.ok()) << s.error().message;
  return s.ok() ? std::move(*s) : nullptr;
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Replays `log` on a fresh single-sequence session and compares every recorded row.
void expect_alone_matches(const runtime::Model& model, const Log& log, int threads, const std::string& what) {
  auto alone = session(model, 1, threads);
  ASSERT_TRUE(alone);
  for (size_t i = 0; i < log.size(); ++i) {
    const Step& step = log[i];
    if (step.shift_from >= 0) {
      ASSERT_TRUE(alone->seq_rm(0, step.shift_to, step.shift_from));
      ASSERT_TRUE(alone->seq_add(0, step.shift_from, -1, step.shift_to - step.shift_from).ok());
      continue;
    }
    if (step.tokens.empty()) {
      ASSERT_TRUE(alone->seq_rm(0, step.truncate_to, -1));
      continue;
    }
    runtime::Batch batch;
    for (size_t t = 0; t < step.tokens.size(); ++t) {
      batch.add(step.tokens[t], alone->pos() + static_cast<int64_t>(t), {0}, step.wanted[t] != 0);
    }
    auto out = alone->decode(batch);
    ASSERT_TRUE(out.ok()) << out.error().message;
    if (step.logits.empty()) continue;
    EXPECT_TRUE(same_bits(out->at("logits").data, step.logits)) << what << ": step " << i << " differs";
  }
}

// One randomized script on `model`: returns the number of rows compared.
int64_t run_script(const runtime::Model& model, uint32_t seed, int threads, const std::string& what) {
  std::mt19937 rng(seed);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int64_t n_vocab = model.config().n_vocab;
  const auto n_seq = static_cast<int32_t>(pick(1, kSeqs));
  auto batched = session(model, n_seq, threads);
  if (!batched) return 0;
  std::vector<Log> logs(static_cast<size_t>(n_seq));
  std::vector<std::vector<int32_t>> history(static_cast<size_t>(n_seq));  // tokens in each sequence's cells

  // A prompt shared by a few sequences: computed once, copied to the others.
  {
    const auto n_share = static_cast<int32_t>(pick(1, n_seq));
    std::vector<int32_t> seqs;
    for (int32_t s = 0; s < n_share; ++s) seqs.push_back(s);
    runtime::Batch batch;
    Step step;
    for (int64_t t = 0, n = pick(1, 9); t < n; ++t) {
      step.tokens.push_back(static_cast<int32_t>(pick(0, n_vocab - 1)));
      step.wanted.push_back(t == n - 1);
      batch.add(step.tokens.back(), t, seqs, t == n - 1);
    }
    auto out = batched->decode(batch);
    EXPECT_TRUE(out.ok()) << out.error().message;
    if (!out.ok()) return 0;
    for (int32_t s : seqs) {
      Step mine = step;
      if (s == 0) {
        mine.logits = out->at("logits").data;
      } else {
        std::fill(mine.wanted.begin(), mine.wanted.end(), 0);  // the row belongs to sequence 0's output
      }
      logs[static_cast<size_t>(s)].push_back(std::move(mine));
      history[static_cast<size_t>(s)] = step.tokens;
    }
  }

  int64_t compared = 0;
  for (int round = 0; round < 8; ++round) {
    // Now and then a KV edit: truncate a sequence, or copy one over an empty one.
    const auto edit = pick(0, 6);
    const auto a = static_cast<int32_t>(pick(0, n_seq - 1));
    const auto b = static_cast<int32_t>(pick(0, n_seq - 1));
    auto& ha = history[static_cast<size_t>(a)];
    if (edit == 0 && ha.size() > 1) {
      const int64_t keep = pick(1, static_cast<int64_t>(ha.size()) - 1);
      EXPECT_TRUE(batched->seq_rm(a, keep, -1));
      ha.resize(static_cast<size_t>(keep));
      Step step;
      step.truncate_to = keep;
      logs[static_cast<size_t>(a)].push_back(step);
    } else if (edit == 2 && ha.size() > 3) {
      // A context shift: drop a middle range, move the rest down (keys rotated).
      const int64_t to = pick(1, static_cast<int64_t>(ha.size()) - 2);
      const int64_t from = pick(to + 1, static_cast<int64_t>(ha.size()) - 1);
      EXPECT_TRUE(batched->seq_rm(a, to, from));
      EXPECT_TRUE(batched->seq_add(a, from, -1, to - from).ok());
      ha.erase(ha.begin() + to, ha.begin() + from);
      Step step;
      step.shift_from = from;
      step.shift_to = to;
      logs[static_cast<size_t>(a)].push_back(step);
    } else if (edit == 1 && a != b && !ha.empty()) {
      EXPECT_TRUE(batched->seq_rm(b, -1, -1));
      EXPECT_TRUE(batched->seq_cp(a, b, -1, -1).ok());
      logs[static_cast<size_t>(b)] = logs[static_cast<size_t>(a)];
      for (Step& s : logs[static_cast<size_t>(b)]) s.logits.clear();  // compared under `a` already
      history[static_cast<size_t>(b)] = ha;
    }
    // A batch: a random subset of sequences, each with a chunk of 1..8 tokens (or one).
    runtime::Batch batch;
    std::vector<std::pair<int32_t, Step>> steps;
    for (int32_t s = 0; s < n_seq; ++s) {
      auto& h = history[static_cast<size_t>(s)];
      if (pick(0, 2) == 0) continue;
      const int64_t room = kCellsPerSeq - static_cast<int64_t>(h.size());
      const int64_t n = std::min(room, pick(0, 1) ? int64_t{1} : pick(2, 8));
      if (n <= 0) continue;
      Step step;
      for (int64_t t = 0; t < n; ++t) {
        step.tokens.push_back(static_cast<int32_t>(pick(0, n_vocab - 1)));
        step.wanted.push_back(t == n - 1 || pick(0, 4) == 0);
      }
      steps.emplace_back(s, std::move(step));
    }
    if (steps.empty()) continue;
    // Interleave the sequences' tokens (each sequence's in order), as a server's batch does.
    std::vector<size_t> next(steps.size(), 0);
    std::vector<size_t> pending;  // steps with tokens left
    for (size_t i = 0; i < steps.size(); ++i) pending.push_back(i);
    std::vector<std::pair<size_t, size_t>> order;  // (step, token) of each batch row
    while (!pending.empty()) {
      const auto k = static_cast<size_t>(pick(0, static_cast<int64_t>(pending.size()) - 1));
      const size_t i = pending[k];
      const auto& [s, step] = steps[i];
      const size_t t = next[i]++;
      batch.add(step.tokens[t], static_cast<int64_t>(history[static_cast<size_t>(s)].size() + t), {s},
                step.wanted[t] != 0);
      order.emplace_back(i, t);
      if (next[i] == step.tokens.size()) pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(k));
    }
    auto out = batched->decode(batch);
    EXPECT_TRUE(out.ok()) << out.error().message;
    if (!out.ok()) return compared;
    const runtime::Matrix& logits = out->at("logits");
    int64_t row = 0;
    for (const auto& [i, t] : order) {
      if (!steps[i].second.wanted[t]) continue;
      const auto r = logits.row(row++);
      steps[i].second.logits.insert(steps[i].second.logits.end(), r.begin(), r.end());
    }
    EXPECT_EQ(row, logits.rows);
    for (auto& [s, step] : steps) {
      auto& h = history[static_cast<size_t>(s)];
      h.insert(h.end(), step.tokens.begin(), step.tokens.end());
      compared += static_cast<int64_t>(step.logits.size()) / logits.cols;
      logs[static_cast<size_t>(s)].push_back(std::move(step));
    }
  }
  for (int32_t s = 0; s < n_seq; ++s) {
    EXPECT_EQ(batched->seq_pos_max(s) + 1, static_cast<int64_t>(history[static_cast<size_t>(s)].size()));
    expect_alone_matches(model, logs[static_cast<size_t>(s)], threads,
                         fmt::format("{} seed {} sequence {} of {}", what, seed, s, n_seq));
  }
  return compared;
}

class BatchInvariance : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchInvariance, EverySequenceGetsTheLogitsItGetsAlone) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string backend = GetParam();
  for (const auto& path : testing::semantic_models(shared)) {
    if (path.filename().string().starts_with("b158-small")) continue;  // the slowest; the others cover GQA
    SCOPED_TRACE(path.filename().string());
    auto model = load(path, backend);
    ASSERT_TRUE(model);
    int64_t compared = 0;
    // The interpreter's results do not depend on the thread count by construction (and it is
    // slow): fewer scripts there.
    const uint32_t seeds = backend == "interp" ? 1 : 3;
    for (int threads = 1; threads <= 3; ++threads) {
      for (uint32_t seed = 1; seed <= seeds; ++seed) {
        compared += run_script(*model, seed * 7919 + static_cast<uint32_t>(threads), threads,
                               fmt::format("{} {} threads", backend, threads));
      }
    }
    EXPECT_GT(compared, 20);  // the scripts did compare rows
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, BatchInvariance, ::testing::Values("interp", "jit"),
                         [](const auto& info) { return info.param; });

// The graph of all logits (eval) returns every token's row, in batch order, each as the
// sequence alone gives it.
TEST_P(BatchInvariance, AllLogitsRowsFollowTheBatchOrder) {
  BITNET_REQUIRE_SHARED(shared);
  auto model = load(testing::source_dir() / "models/stories260K.gguf", GetParam());
  ASSERT_TRUE(model);
  const std::vector<std::vector<int32_t>> prompts = {{5, 9, 77, 3}, {101}, {7, 7, 30}};
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts) {
    auto s = model->new_session({.all_logits = true, .n_ctx = 32, .threads = 2, .n_seq_max = 1});
    ASSERT_TRUE(s.ok());
    auto out = (*s)->run(p);
    ASSERT_TRUE(out.ok()) << out.error().message;
    alone.push_back(out->at("logits").data);
  }
  auto s = model->new_session({.all_logits = true, .n_ctx = 96, .threads = 2, .n_seq_max = 3});
  ASSERT_TRUE(s.ok());
  runtime::Batch batch;
  std::vector<std::pair<size_t, size_t>> rows;  // (sequence, token) of each batch row
  for (auto [seq, t] :
       std::vector<std::pair<size_t, size_t>>{{2, 0}, {0, 0}, {0, 1}, {1, 0}, {2, 1}, {0, 2}, {2, 2}, {0, 3}}) {
    batch.add(prompts[seq][t], static_cast<int64_t>(t), {static_cast<int32_t>(seq)}, false);
    rows.emplace_back(seq, t);
  }
  auto out = (*s)->decode(batch);
  ASSERT_TRUE(out.ok()) << out.error().message;
  const runtime::Matrix& logits = out->at("logits");
  ASSERT_EQ(logits.rows, static_cast<int64_t>(rows.size()));
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto [seq, t] = rows[r];
    const std::span<const float> want(alone[seq].data() + t * static_cast<size_t>(logits.cols),
                                      static_cast<size_t>(logits.cols));
    EXPECT_TRUE(same_bits(logits.row(static_cast<int64_t>(r)), want)) << "row " << r;
  }
}

// Refused batches and KV edits change no sequence; the edits keep llama.cpp's meanings.
TEST(Batch, ErrorsChangeNothing) {
  BITNET_REQUIRE_SHARED(shared);
  auto model = load(shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf", "jit");
  ASSERT_TRUE(model);
  auto s = model->new_session({.all_logits = false, .n_ctx = 64, .threads = 2, .n_seq_max = 4});
  ASSERT_TRUE(s.ok());
  runtime::Session& session = **s;
  EXPECT_EQ(session.n_ctx_seq(), 16);
  runtime::Batch batch;
  for (int32_t t = 0; t < 3; ++t) batch.add(10 + t, t, {0, 2}, t == 2);
  ASSERT_TRUE(session.decode(batch).ok());
  EXPECT_EQ(session.seq_pos_max(0), 2);
  EXPECT_EQ(session.seq_pos_max(2), 2);
  EXPECT_EQ(session.seq_pos_min(2), 0);
  EXPECT_EQ(session.seq_pos_max(1), -1);

  auto refused = [&](const runtime::Batch& b, const std::string& words) {
    auto out = session.decode(b);
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.error().message.find(words), std::string::npos) << out.error().message;
    EXPECT_EQ(session.seq_pos_max(0), 2);
    EXPECT_EQ(session.seq_pos_max(1), -1);
    EXPECT_EQ(session.seq_pos_max(2), 2);
  };
  runtime::Batch b;
  refused(b, "empty batch");
  b.add(1, 4, {0}, true);  // skips position 3
  refused(b, "continues at position 3, not 4");
  b.clear();
  b.add(1, 0, {4}, true);
  refused(b, "sequence id 4 is outside [0, 4)");
  b.clear();
  b.add(1, 3, {0}, true);
  b.add(2, 3, {0}, true);  // position 3 twice
  refused(b, "continues at position 4, not 3");
  b.clear();
  b.add(static_cast<int32_t>(model->config().n_vocab), 3, {0}, true);
  refused(b, "outside the vocabulary");
  b.clear();
  for (int32_t t = 0; t < 17; ++t) b.add(1, t, {1}, false);  // a region has 16 cells
  refused(b, "context is full");
  b.clear();
  b.add(1, 3, {0, 2}, false);
  b.add(1, 4, {2}, true);  // sequence 2 both shares and computes
  refused(b, "has tokens of its own and tokens shared");
  b.clear();
  b.add(1, 3, {0, 1}, false);  // sequence 1 is empty: not at position 3
  refused(b, "sequence 1 continues at position 0, not 3");

  // KV edits: a middle range of every sequence is refused (only seq_add may close a hole, one
  // sequence at a time); suffixes, copies and keep work.
  EXPECT_FALSE(session.seq_rm(-1, 1, 2));
  EXPECT_EQ(session.seq_pos_max(0), 2);
  EXPECT_FALSE(session.seq_rm(7, -1, -1));
  EXPECT_FALSE(session.seq_cp(0, 1, 1, -1).ok());  // sequence 1 would start at position 1
  EXPECT_FALSE(session.seq_cp(0, 9, -1, -1).ok());
  EXPECT_TRUE(session.seq_cp(0, 1, -1, -1).ok());
  EXPECT_EQ(session.seq_pos_max(1), 2);
  EXPECT_TRUE(session.seq_rm(0, 2, -1));
  EXPECT_EQ(session.seq_pos_max(0), 1);
  EXPECT_TRUE(session.seq_keep(1).ok());
  EXPECT_EQ(session.seq_pos_max(0), -1);
  EXPECT_EQ(session.seq_pos_max(2), -1);
  EXPECT_EQ(session.seq_pos_max(1), 2);
  session.clear();
  EXPECT_EQ(session.seq_pos_max(1), -1);
}

// A context shift (seq_rm of a middle range, then seq_add moving the rest down) gives the
// executor and the interpreter the same cache: their logits after it agree as closely as
// without it, and differ from not shifting. The hole refuses decoding until it is closed.
TEST(Batch, ContextShiftAgreesBetweenInterpreterAndJit) {
  BITNET_REQUIRE_SHARED(shared);
  for (const auto& path :
       {shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf", testing::source_dir() / "models/stories260K.gguf"}) {
    SCOPED_TRACE(path.filename().string());
    std::vector<std::vector<float>> logits;  // interp, jit, jit without the shift
    for (const char* backend : {"interp", "jit", "jit"}) {
      const bool shift = logits.size() < 2;
      auto model = load(path, backend);
      ASSERT_TRUE(model);
      auto s = model->new_session({.all_logits = false, .n_ctx = 96, .threads = 2, .n_seq_max = 3});
      ASSERT_TRUE(s.ok());
      runtime::Session& session = **s;
      runtime::Batch b;
      for (int32_t t = 0; t < 20; ++t) b.add(3 + 7 * t, t, {1}, false);
      ASSERT_TRUE(session.decode(b).ok());
      int64_t next = 20;
      if (shift) {
        ASSERT_TRUE(session.seq_rm(1, 5, 12));
        EXPECT_EQ(session.seq_pos_max(1), 19);
        b.clear();
        b.add(1, 20, {1}, true);
        auto refused = session.decode(b);
        ASSERT_FALSE(refused.ok());
        EXPECT_NE(refused.error().message.find("positions 5..11 removed"), std::string::npos)
            << refused.error().message;
        EXPECT_FALSE(session.seq_add(1, 12, -1, -6).ok());  // not the removed range's length
        EXPECT_FALSE(session.seq_rm(1, 2, 3));              // a second hole
        ASSERT_TRUE(session.seq_add(1, 12, -1, -7).ok());
        EXPECT_EQ(session.seq_pos_max(1), 12);
        next = 13;
      }
      b.clear();
      for (int32_t t = 0; t < 3; ++t) b.add(11 + t, next + t, {1}, t == 2);
      auto out = session.decode(b);
      ASSERT_TRUE(out.ok()) << out.error().message;
      logits.push_back(out->at("logits").data);
    }
    float scale = 0, diff = 0, shifted = 0;
    for (size_t i = 0; i < logits[0].size(); ++i) {
      scale = std::max(scale, std::abs(logits[0][i]));
      diff = std::max(diff, std::abs(logits[0][i] - logits[1][i]));
      shifted = std::max(shifted, std::abs(logits[1][i] - logits[2][i]));
    }
    EXPECT_LT(diff, 1e-3f * std::max(scale, 1.0f));
    EXPECT_GT(shifted, 10 * diff);
  }
}

// A key rotated by delta is the key rotated at its position plus delta, to F16 rounding.
TEST(Batch, RotatingACachedKeyMovesItsPosition) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-2, 2);
  for (bool neox : {false, true}) {
    const int64_t hd = 64;
    std::vector<float> raw(hd);
    for (float& x : raw) x = u(rng);
    auto at = [&](int64_t pos) {
      std::vector<float> x = raw;
      rope::rotate_head(x.data(), hd, pos, rope::theta_scale(10000.0f, hd), 1.0f, neox);
      std::vector<uint16_t> h(hd);
      for (int64_t d = 0; d < hd; ++d) h[static_cast<size_t>(d)] = half::from_float(x[static_cast<size_t>(d)]);
      return h;
    };
    std::vector<uint16_t> key = at(40);
    runtime::rotate_key(key.data(), {true, neox, 10000.0f, 1.0f, hd}, -25);
    const std::vector<uint16_t> want = at(15);
    for (int64_t d = 0; d < hd; ++d) {
      EXPECT_NEAR(half::to_float(key[static_cast<size_t>(d)]), half::to_float(want[static_cast<size_t>(d)]), 4e-3f)
          << "neox " << neox << " element " << d;
    }
    std::vector<uint16_t> same = at(40);
    runtime::rotate_key(same.data(), {false, neox, 10000.0f, 1.0f, hd}, -25);  // keys without RoPE stay
    EXPECT_EQ(same, at(40));
  }
}

// More logits rows than a call returns is an error, not an overflow.
TEST(Batch, TooManyOutputRowsIsAnError) {
  BITNET_REQUIRE_SHARED(shared);
  auto model = load(shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf", "jit");
  ASSERT_TRUE(model);
  auto s = model->new_session({.all_logits = false, .n_ctx = 512, .threads = 1, .n_seq_max = 1});
  ASSERT_TRUE(s.ok());
  runtime::Batch b;
  for (int32_t t = 0; t < 65; ++t) b.add(1, t, {0}, true);
  auto out = (*s)->decode(b);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("65 rows of logits wanted; a call returns at most 64"), std::string::npos)
      << out.error().message;
  b.logits.back() = 0;
  auto ok = (*s)->decode(b);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->at("logits").rows, 64);
}

}  // namespace
}  // namespace bitnet
