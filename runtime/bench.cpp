// Benchmark measurements (see bench.h).
#include "runtime/bench.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <thread>

namespace bitnet::runtime {
namespace {

using Clock = std::chrono::steady_clock;

BenchStats summarize(std::string test, int threads, std::vector<double> samples) {
  BenchStats s{std::move(test), threads, 0, 0, std::move(samples)};
  s.mean = std::accumulate(s.samples.begin(), s.samples.end(), 0.0) / static_cast<double>(s.samples.size());
  double var = 0;
  for (double x : s.samples) var += (x - s.mean) * (x - s.mean);
  s.stddev = s.samples.size() > 1 ? std::sqrt(var / static_cast<double>(s.samples.size() - 1)) : 0;
  return s;
}

// Deterministic token ids spread over the vocabulary (as llama-bench feeds random tokens).
std::vector<int32_t> bench_tokens(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  uint64_t x = 88172645463325252ull;
  for (auto& id : ids) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    id = static_cast<int32_t>(x % static_cast<uint64_t>(vocab));
  }
  return ids;
}

}  // namespace

Expected<BenchStats> bench_prompt(const Model& model, int64_t n_prompt, int threads, int repetitions) {
  const auto tokens = bench_tokens(n_prompt, static_cast<int64_t>(model.config().n_vocab));
  BITNET_ASSIGN_OR_RETURN(auto session, model.new_session(false, n_prompt, threads));
  std::vector<double> samples;
  for (int r = -1; r < repetitions; ++r) {  // r = -1: warm-up
    session->reset();
    const auto start = Clock::now();
    BITNET_RETURN_IF_ERROR(session->run(tokens));
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    if (r >= 0) samples.push_back(static_cast<double>(n_prompt) / s);
  }
  return summarize(fmt::format("pp{}", n_prompt), threads, std::move(samples));
}

Expected<BenchStats> bench_generate(const Model& model, int64_t n_gen, int threads, int repetitions) {
  const auto tokens = bench_tokens(n_gen, static_cast<int64_t>(model.config().n_vocab));
  BITNET_ASSIGN_OR_RETURN(auto session, model.new_session(false, n_gen, threads));
  std::vector<double> samples;
  for (int r = -1; r < repetitions; ++r) {
    session->reset();
    const auto start = Clock::now();
    for (int64_t i = 0; i < n_gen; ++i) BITNET_RETURN_IF_ERROR(session->run(std::span(&tokens[i], 1)));
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    if (r >= 0) samples.push_back(static_cast<double>(n_gen) / s);
  }
  return summarize(fmt::format("tg{}", n_gen), threads, std::move(samples));
}

double measure_read_bandwidth(int threads, size_t bytes) {
  threads = std::max(threads, 1);
  const size_t words = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buffer(words);
  for (size_t i = 0; i < words; ++i) buffer[i] = i;  // touch every page before timing
  double best = 0;
  std::vector<uint64_t> sinks(static_cast<size_t>(threads) * 8);
  for (int pass = 0; pass < 3; ++pass) {
    const auto start = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t begin = words * static_cast<size_t>(t) / static_cast<size_t>(threads);
        const size_t end = words * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
        // Four independent sums so the loop is limited by loads, not by one add chain.
        uint64_t a = 0, b = 0, c = 0, d = 0;
        size_t i = begin;
        for (; i + 4 <= end; i += 4) {
          a += buffer[i];
          b += buffer[i + 1];
          c += buffer[i + 2];
          d += buffer[i + 3];
        }
        for (; i < end; ++i) a += buffer[i];
        sinks[static_cast<size_t>(t) * 8] = a + b + c + d;
      });
    }
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / s / 1e9);
  }
  volatile uint64_t keep = std::accumulate(sinks.begin(), sinks.end(), uint64_t{0});
  (void)keep;
  return best;
}

int64_t decode_bytes_per_token(const Model& model) {
  const ir::Graph& g = model.graph(false);
  int64_t bytes = 0;
  for (const ir::Node& node : g.nodes()) {
    if (node.op == ir::OpKind::Weight || node.op == ir::OpKind::InputTokens || node.op == ir::OpKind::Output) continue;
    for (size_t k = 0; k < node.operands.size(); ++k) {
      const ir::Node& def = g.def(node.operands[k]);
      if (def.op != ir::OpKind::Weight) continue;
      const gguf::TensorInfo* t = model.file().find_tensor(def.attr_string("tensor"));
      if (t == nullptr) continue;
      if (node.op == ir::OpKind::Embed) {
        bytes += static_cast<int64_t>(t->nbytes / t->ne.back());  // one row per token
      } else {
        bytes += static_cast<int64_t>(t->nbytes);
      }
    }
  }
  return bytes;
}

}  // namespace bitnet::runtime
