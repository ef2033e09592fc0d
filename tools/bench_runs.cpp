// Benchmark measurements (see bench_runs.h), on the public library.
#include "tools/bench_runs.h"

#include "ir/support/expected.h"  // make_error, BITNET_RETURN_IF_ERROR

#include <sys/mman.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <thread>

namespace bitnet::tools {
namespace {

using Clock = std::chrono::steady_clock;

// Runs `once` (a repetition, returning its seconds) until at least one run and kWarmUp have
// passed: the first runs page the weights in, and on the 2-core VM the first ~100 ms of two
// busy threads often ran at half speed (a standalone test showed Linux waking the worker on
// the caller's CPU until the load balancer moved one), which one run of a small model (5 ms)
// does not cover.
constexpr double kWarmUpSeconds = 0.25;
template <typename Once>
Status warm_up(Once&& once) {
  double spent = 0;
  do {
    BITNET_ASSIGN_OR_RETURN(const double s, once());
    spent += s;
  } while (spent < kWarmUpSeconds);
  return Status::success();
}

BenchStats summarize(std::string test, int threads, std::vector<double> samples) {
  BenchStats s;
  s.test = std::move(test);
  s.threads = threads;
  s.samples = std::move(samples);
  s.mean = std::accumulate(s.samples.begin(), s.samples.end(), 0.0) / static_cast<double>(s.samples.size());
  double var = 0;
  for (double x : s.samples) var += (x - s.mean) * (x - s.mean);
  s.stddev = s.samples.size() > 1 ? std::sqrt(var / static_cast<double>(s.samples.size() - 1)) : 0;
  return s;
}

// Deterministic token ids spread over the vocabulary (as llama-bench feeds random tokens).
std::vector<Token> bench_tokens(int64_t n, int64_t vocab) {
  std::vector<Token> ids(static_cast<size_t>(n));
  uint64_t x = 88172645463325252ull;
  for (auto& id : ids) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    id = static_cast<Token>(x % static_cast<uint64_t>(vocab));
  }
  return ids;
}

}  // namespace

namespace {

Expected<std::unique_ptr<Context>> new_context(const std::shared_ptr<const Model>& model, int64_t n_ctx, int threads,
                                               int32_t n_seq_max = 1) {
  auto ctx = Context::create(model, {.n_ctx = n_ctx, .n_seq_max = n_seq_max, .threads = threads});
  if (!ctx.ok()) return make_error("{}", ctx.error().message);
  return std::move(*ctx);
}

Status decoded(Status s) {
  if (!s.ok()) return make_error("{}", s.error().message);
  return Status::success();
}

// `tokens` into sequence `seq` from position `pos`, in calls of at most n_batch tokens; the
// last token's logits only (a prompt).
Status feed(Context& ctx, std::span<const Token> tokens, int64_t pos, int32_t seq = 0) {
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (static_cast<int64_t>(b.size()) == ctx.n_batch()) {
      BITNET_RETURN_IF_ERROR(decoded(ctx.decode(b)));
      b.clear();
    }
    b.add(tokens[i], pos + static_cast<int64_t>(i), {seq}, i + 1 == tokens.size());
  }
  return b.size() > 0 ? decoded(ctx.decode(b)) : Status::success();
}

// `test`'s tokens/s: `once` (a run of `tokens` tokens, returning its seconds) after the
// warm-up, `repetitions` times.
template <typename Once>
Expected<BenchStats> measure(std::string test, int64_t tokens, int threads, int repetitions, Once&& once) {
  BITNET_RETURN_IF_ERROR(warm_up(once));
  std::vector<double> samples;
  for (int r = 0; r < repetitions; ++r) {
    BITNET_ASSIGN_OR_RETURN(const double s, once());
    samples.push_back(static_cast<double>(tokens) / s);
  }
  return summarize(std::move(test), threads, std::move(samples));
}

}  // namespace

Expected<BenchStats> bench_prompt(const std::shared_ptr<const Model>& model, int64_t n_prompt, int threads,
                                  int repetitions) {
  const auto tokens = bench_tokens(n_prompt, model->n_vocab());
  BITNET_ASSIGN_OR_RETURN(auto ctx, new_context(model, n_prompt, threads));
  auto once = [&]() -> Expected<double> {
    ctx->memory_clear();
    const auto start = Clock::now();
    BITNET_RETURN_IF_ERROR(feed(*ctx, tokens, 0));
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  return measure(fmt::format("pp{}", n_prompt), n_prompt, threads, repetitions, once);
}

Expected<BenchStats> bench_generate(const std::shared_ptr<const Model>& model, int64_t n_gen, int threads,
                                    int repetitions) {
  const auto tokens = bench_tokens(n_gen, model->n_vocab());
  BITNET_ASSIGN_OR_RETURN(auto ctx, new_context(model, n_gen, threads));
  Batch step;
  auto once = [&]() -> Expected<double> {
    ctx->memory_clear();
    const auto start = Clock::now();
    for (int64_t i = 0; i < n_gen; ++i) {
      step.clear();
      step.add(tokens[static_cast<size_t>(i)], i, {0}, true);
      BITNET_RETURN_IF_ERROR(decoded(ctx->decode(step)));
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  return measure(fmt::format("tg{}", n_gen), n_gen, threads, repetitions, once);
}

Expected<std::vector<BenchStats>> bench_batched(const std::shared_ptr<const Model>& model, int64_t n_prompt,
                                                int64_t n_gen, int batch, int threads, int repetitions) {
  if (batch < 1) return make_error("batch must be positive, got {}", batch);
  const auto tokens = bench_tokens(n_prompt + n_gen, model->n_vocab());
  BITNET_ASSIGN_OR_RETURN(auto ctx, new_context(model, batch * (n_prompt + n_gen), threads, batch));
  // Every sequence gets the same ids (as llama-batched-bench without a shared prompt: each
  // sequence still computes its own).
  auto prefill = [&]() -> Status {
    Batch b;
    for (int32_t seq = 0; seq < batch; ++seq) {
      for (int64_t t = 0; t < n_prompt; ++t) {
        if (static_cast<int64_t>(b.size()) == ctx->n_batch()) {
          BITNET_RETURN_IF_ERROR(decoded(ctx->decode(b)));
          b.clear();
        }
        b.add(tokens[static_cast<size_t>(t)], t, {seq}, t == n_prompt - 1);
      }
    }
    if (b.size() > 0) BITNET_RETURN_IF_ERROR(decoded(ctx->decode(b)));
    return Status::success();
  };
  Batch b;  // reused: the loop allocates nothing per step
  auto generate = [&]() -> Status {
    for (int64_t i = 0; i < n_gen; ++i) {
      b.clear();
      for (int32_t seq = 0; seq < batch; ++seq) {
        b.add(tokens[static_cast<size_t>(n_prompt + i)], n_prompt + i, {seq}, true);
      }
      BITNET_RETURN_IF_ERROR(decoded(ctx->decode(b)));
    }
    return Status::success();
  };
  double pp_s = 0, tg_s = 0;
  auto once = [&]() -> Expected<double> {
    ctx->memory_clear();
    const auto start = Clock::now();
    if (n_prompt > 0) BITNET_RETURN_IF_ERROR(prefill());
    const auto mid = Clock::now();
    if (n_gen > 0) BITNET_RETURN_IF_ERROR(generate());
    pp_s = std::chrono::duration<double>(mid - start).count();
    tg_s = std::chrono::duration<double>(Clock::now() - mid).count();
    return pp_s + tg_s;
  };
  BITNET_RETURN_IF_ERROR(warm_up(once));
  std::vector<double> pp, tg;
  for (int r = 0; r < repetitions; ++r) {
    BITNET_RETURN_IF_ERROR(once());
    pp.push_back(static_cast<double>(batch * n_prompt) / pp_s);
    tg.push_back(static_cast<double>(batch * n_gen) / tg_s);
  }
  std::vector<BenchStats> out;
  if (n_prompt > 0) out.push_back(summarize(fmt::format("pp{}", n_prompt), threads, std::move(pp)));
  if (n_gen > 0) out.push_back(summarize(fmt::format("tg{}", n_gen), threads, std::move(tg)));
  for (BenchStats& s : out) s.batch = batch;
  return out;
}

namespace {

// Sums 64-bit words with eight independent accumulators, so the loop is limited by loads.
template <int kStreams>
uint64_t sum_words(const uint64_t* p, size_t n) {
  // kStreams interleaved streams (equal parts of the range) with software prefetch 8 KiB
  // ahead keep more misses in flight than one hardware-prefetched stream: that is how the
  // matmul kernels read weights, so the roofline uses the better of the two.
  const size_t part = n / kStreams / 8 * 8;
  uint64_t acc[8] = {};
  for (size_t i = 0; i < part; i += 8) {
    for (int s = 0; s < kStreams; ++s) {
      const uint64_t* q = p + part * static_cast<size_t>(s) + i;
      if (kStreams > 1) __builtin_prefetch(q + 1024);
      for (int k = 0; k < 8; ++k) acc[k] += q[k];
    }
  }
  return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

#if defined(__x86_64__)
// The same loops with 256-bit loads where the CPU has them (a baseline SSE2 loop issues
// more instructions than one core can retire at DRAM speed).
__attribute__((target("avx2"))) uint64_t sum_words_avx2_1(const uint64_t* p, size_t n) {
  return sum_words<1>(p, n);
}
__attribute__((target("avx2"))) uint64_t sum_words_avx2_4(const uint64_t* p, size_t n) {
  return sum_words<4>(p, n);
}
#endif

// Anonymous memory aligned to 2 MiB and advised to use huge pages.
class HugePageBuffer {
 public:
  static constexpr size_t kHuge = size_t{2} << 20;
  explicit HugePageBuffer(size_t bytes) : mapped_(bytes + kHuge) {
    void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    base_ = static_cast<uint8_t*>(p);
    uint8_t* aligned = base_ + (kHuge - reinterpret_cast<uintptr_t>(base_) % kHuge) % kHuge;
    ::madvise(aligned, bytes, MADV_HUGEPAGE);
    aligned_ = reinterpret_cast<uint64_t*>(aligned);
  }
  ~HugePageBuffer() {
    if (base_ != nullptr) ::munmap(base_, mapped_);
  }
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;
  uint64_t* words() const { return aligned_; }

 private:
  size_t mapped_;
  uint8_t* base_ = nullptr;
  uint64_t* aligned_ = nullptr;
};

uint64_t sum_range(const uint64_t* p, size_t n, bool four_streams) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return four_streams ? sum_words_avx2_4(p, n) : sum_words_avx2_1(p, n);
#endif
  return four_streams ? sum_words<4>(p, n) : sum_words<1>(p, n);
}

}  // namespace

double measure_read_bandwidth(int threads, size_t bytes) {
  threads = std::max(threads, 1);
  const size_t words = bytes / sizeof(uint64_t);
  // On 2 MiB pages where the kernel gives them: the best the memory can do, which is what
  // the weights get when their file is mapped with huge pages (gguf::MappedFile).
  HugePageBuffer buffer(words * sizeof(uint64_t));
  uint64_t* data = buffer.words();
  if (data == nullptr) return 0;
  for (size_t i = 0; i < words; ++i) data[i] = i;  // touch every page before timing
  double best = 0;
  std::vector<uint64_t> sinks(static_cast<size_t>(threads) * 8);
  for (int pass = 0; pass < 4; ++pass) {
    const bool four_streams = pass % 2 == 1;
    const auto start = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t part = words / static_cast<size_t>(threads) / 64 * 64;
        sinks[static_cast<size_t>(t) * 8] = sum_range(data + part * static_cast<size_t>(t), part, four_streams);
      });
    }
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    const size_t read = words / static_cast<size_t>(threads) / 64 * 64 * static_cast<size_t>(threads);
    best = std::max(best, static_cast<double>(read * sizeof(uint64_t)) / s / 1e9);
  }
  volatile uint64_t keep = std::accumulate(sinks.begin(), sinks.end(), uint64_t{0});
  (void)keep;
  return best;
}

}  // namespace bitnet::tools
