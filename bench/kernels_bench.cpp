// Microbenchmarks of the JIT-compiled matmul-family kernels on the BitNet b1.58 2B-4T
// shapes (I2_S GEMV/GEMM, the F16 LM head and its Q8_0/Q6_K requantizations), next to a
// streaming-read measurement of the memory bandwidth taken in the same run (and again right
// before every kernel benchmark, because the machine is shared and noisy). Weights rotate
// through a 1.5 GiB pool so "cold" runs stream from DRAM like a real decode step; "hot" runs
// reuse one cache-resident copy and show the compute ceiling. Threads split the feature range
// as the executor does (halves aligned to 64).
#include "codegen_cpu/jit.h"
#include "codegen_cpu/matmul_tuning.h"
#include "compiler/requantize.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace bitnet::codegen;
using namespace bitnet::compiler;  // requantize_f16_to_*
using bitnet::abi::KernelArgs;
namespace ir = bitnet::ir;
using Clock = std::chrono::steady_clock;

constexpr size_t kPoolBytes = size_t{1536} << 20;

// Bytes whose 2-bit fields are all valid I2_S codes (0..2) and which, read as F16, are finite
// and never produce f32 denormals: one pool serves every weight type.
uint8_t* pool() {
  static uint8_t* data = [] {
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(4096, kPoolBytes));
    std::mt19937 rng(7);
    std::vector<uint8_t> pattern(1 << 20);
    for (auto& b : pattern)
      b = static_cast<uint8_t>(((rng() % 3) << 6) | ((rng() % 3) << 4) | ((rng() % 3) << 2) | (rng() % 3));
    for (size_t at = 0; at < kPoolBytes; at += pattern.size()) std::memcpy(p + at, pattern.data(), pattern.size());
    return p;
  }();
  return data;
}

// A fixed team of spinning threads (thread creation would dwarf a 100 us GEMV).
class Team {
 public:
  explicit Team(int threads) : threads_(threads) {
    for (int i = 1; i < threads; ++i) {
      workers_.emplace_back([this, i] {
        uint64_t seen = 0;
        for (;;) {
          uint64_t e;
          for (int spins = 0; (e = epoch_.load(std::memory_order_acquire)) == seen; ++spins) {
            if (stop_.load(std::memory_order_relaxed)) return;
            if (spins > 4096) std::this_thread::yield();  // the shared machine may have taken our other core
          }
          seen = e;
          (*job_)(i);
          done_.fetch_add(1, std::memory_order_release);
        }
      });
    }
  }
  ~Team() {
    stop_ = true;
    for (auto& w : workers_) w.join();
  }
  int size() const { return threads_; }
  void run(const std::function<void(int)>& fn) {
    job_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    epoch_.fetch_add(1, std::memory_order_release);
    fn(0);
    for (int spins = 0; done_.load(std::memory_order_acquire) != threads_ - 1; ++spins) {
      if (spins > 4096) std::this_thread::yield();
    }
  }

 private:
  int threads_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* job_ = nullptr;
};

__attribute__((target("avx2"))) uint64_t sum_bytes_avx2(const uint64_t* p, size_t n) {
  uint64_t a[8] = {};
  for (size_t i = 0; i < n; i += 8)
    for (int k = 0; k < 8; ++k) a[k] += p[i + static_cast<size_t>(k)];
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

// The same sum over four interleaved streams (the quarters of the range) with software
// prefetch 8 KiB ahead: more misses in flight than one hardware-prefetched stream, which is
// how the kernels read several weight rows at once.
__attribute__((target("avx2"))) uint64_t sum_bytes_4streams(const uint64_t* p, size_t n) {
  const size_t quarter = n / 4 / 64 * 64;
  uint64_t a[8] = {};
  for (size_t i = 0; i < quarter; i += 8) {
    for (int s = 0; s < 4; ++s) {
      const uint64_t* q = p + quarter * static_cast<size_t>(s) + i;
      __builtin_prefetch(q + 1024);
      for (int k = 0; k < 8; ++k) a[k] += q[k];
    }
  }
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

std::atomic<uint64_t> g_sink{0};

// GB/s of a streaming read of `bytes` of the pool split over the team: the better of a plain
// single-stream read and the four-stream prefetching read (best of 2 each).
double stream_gbps(Team& team, size_t bytes, bool multi) {
  double best = 0;
  for (int rep = 0; rep < 2; ++rep) {
    const auto start = Clock::now();
    team.run([&](int t) {
      const size_t part = bytes / static_cast<size_t>(team.size()) / 64 * 64;
      const auto* p = reinterpret_cast<const uint64_t*>(pool() + part * static_cast<size_t>(t));
      g_sink += multi ? sum_bytes_4streams(p, part / 8) : sum_bytes_avx2(p, part / 8);
    });
    best =
        std::max(best, static_cast<double>(bytes) / std::chrono::duration<double>(Clock::now() - start).count() / 1e9);
  }
  return best;
}

double stream_gbps(Team& team, size_t bytes) {
  return std::max(stream_gbps(team, bytes, false), stream_gbps(team, bytes, true));
}

void bm_stream(benchmark::State& state, bool multi) {
  Team team(static_cast<int>(state.range(0)));
  const size_t bytes = size_t{1} << 30;
  const auto start = Clock::now();
  for (auto _ : state) {
    team.run([&](int t) {
      const size_t part = bytes / static_cast<size_t>(team.size());
      const auto* p = reinterpret_cast<const uint64_t*>(pool() + part * static_cast<size_t>(t));
      g_sink += multi ? sum_bytes_4streams(p, part / 8) : sum_bytes_avx2(p, part / 8);
    });
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  state.counters["GB/s"] = static_cast<double>(bytes) * static_cast<double>(state.iterations()) / seconds / 1e9;
}

ir::Type type2(ir::DType dtype, int64_t rows, int64_t cols) {
  return ir::Type::of(dtype, {rows < 0 ? ir::Dim::tokens() : ir::Dim{rows}, ir::Dim{cols}});
}

int64_t weight_bytes(ir::DType t, int64_t rows, int64_t cols) {
  switch (t) {
    case ir::DType::I2_S:
      return rows * cols / 4 + 32;
    case ir::DType::F16:
      return rows * cols * 2;
    case ir::DType::Q8_0:
      return rows * cols / 32 * 34;
    case ir::DType::Q6_K:
      return rows * cols / 256 * 210;
    default:
      return rows * cols * 4;
  }
}

// One benchmark case: a kernel description plus how to feed it.
struct Case {
  std::string target = "host";
  MatmulTuning tuning;
  ir::DType weight = ir::DType::I2_S;
  std::vector<int64_t> rows;  // one entry per weight (matmul_cat when several)
  int64_t cols = 2560;
  int64_t tokens = 1;
  bool cold = true;
  bool gated = false;         // gated_ffn over two weights of `rows[0]` rows instead of a matmul_cat
  std::string act = "relu2";  // gated_ffn activation
  bool add = false;           // matmul_add (a residual input) instead of a matmul
  bool decode_rows = false;   // every token a one-token sequence (KernelArgs::decode_rows)
};

void bm_kernel(benchmark::State& state, Case c) {
  const int threads = static_cast<int>(state.range(0));
  matmul_tuning() = c.tuning;
  JitOptions options;
  options.target = c.target;
  auto jit = Jit::create(options);
  if (!jit.ok()) {
    state.SkipWithError(jit.error().message.c_str());
    return;
  }
  const bool i8q = c.weight == ir::DType::I2_S;
  KernelDesc d;
  d.op = c.gated             ? ir::OpKind::GatedFfn
         : c.rows.size() > 1 ? ir::OpKind::MatMulCat
         : c.add             ? ir::OpKind::MatMulAdd
                             : ir::OpKind::MatMul;
  if (c.gated) d.attrs.push_back({"act", c.act});
  d.operands.push_back(type2(i8q ? ir::DType::I8Q : ir::DType::F32, -1, c.cols));
  int64_t total = 0;
  int64_t bytes = 0;
  for (int64_t r : c.rows) {
    d.operands.push_back(type2(c.weight, r, c.cols));
    total += r;
    bytes += weight_bytes(c.weight, r, c.cols);
  }
  if (c.gated) total = c.rows[0];
  if (c.add) d.operands.push_back(type2(ir::DType::F32, -1, total));
  d.result = type2(ir::DType::F32, -1, total);
  auto kernel = (*jit)->compile_one(d);
  matmul_tuning() = MatmulTuning{};
  if (!kernel.ok()) {
    state.SkipWithError(kernel.error().message.c_str());
    return;
  }
  // Activations: valid int8 rows with scale 1 and sum 0, or f32 values.
  std::vector<uint8_t> x(static_cast<size_t>(c.tokens * c.cols * 4 + 8 * c.tokens));
  std::mt19937 rng(3);
  if (i8q) {
    for (int64_t i = 0; i < c.tokens * c.cols; ++i) x[static_cast<size_t>(i)] = static_cast<uint8_t>(rng());
    const float one = 1.0f;
    for (int64_t t = 0; t < c.tokens; ++t) std::memcpy(x.data() + c.tokens * c.cols + 4 * t, &one, 4);
    std::memset(x.data() + c.tokens * c.cols + 4 * c.tokens, 0, static_cast<size_t>(4 * c.tokens));
  } else {
    auto* f = reinterpret_cast<float*>(x.data());
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int64_t i = 0; i < c.tokens * c.cols; ++i) f[i] = u(rng);
  }
  std::vector<float> out(static_cast<size_t>(c.tokens * total)), residual(out.size(), 0.5f);
  Team team(threads);
  // Halves aligned to 64 features, as the executor splits.
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int t = 0; t < threads; ++t) {
    auto edge = [&](int i) { return i == threads ? total : std::min(total, (total * i / threads + 63) / 64 * 64); };
    ranges.emplace_back(edge(t), edge(t + 1));
  }
  const double bandwidth = stream_gbps(team, size_t{512} << 20);
  const size_t stride = (static_cast<size_t>(bytes) + 4095) / 4096 * 4096;
  const size_t copies = c.cold ? std::max<size_t>(1, (kPoolBytes - 4096) / stride) : 1;
  size_t copy = 0;
  if (i8q) {
    // The per-tensor I2_S scale behind each weight: 1.0 rather than whatever float the pool's
    // bytes spell there (a subnormal or huge scale would time microcode assists, not the kernel).
    const float one = 1.0f;
    for (size_t k = 0; k < copies; ++k) {
      int64_t at = 0;
      for (int64_t r : c.rows) {
        at += weight_bytes(c.weight, r, c.cols);
        std::memcpy(pool() + stride * k + static_cast<size_t>(at) - 32, &one, 4);
      }
    }
  }
  KernelArgs args{};
  args.in[0] = x.data();
  args.out = out.data();
  args.n_tokens = c.tokens;
  args.n_threads = threads;
  args.decode_rows = c.decode_rows ? 1 : 0;
  // Per-thread scratch (the F16 decode rows are rounded into it), as the executor provides.
  const int64_t scratch_stride = (c.tokens * c.cols * 4 + 63) / 64 * 64;
  std::vector<float> scratch(static_cast<size_t>(scratch_stride / 4 * threads + 16));
  args.scratch = scratch.data();
  args.scratch_stride = scratch_stride;
  const std::function<void(int)> job = [&](int t) {
    KernelArgs mine = args;
    mine.thread = t;
    kernel->fn(&mine, ranges[static_cast<size_t>(t)].first, ranges[static_cast<size_t>(t)].second);
  };
  const auto start = Clock::now();
  for (auto _ : state) {
    uint8_t* base = pool() + stride * copy;
    copy = (copy + 1) % copies;
    int64_t at = 0;
    for (size_t i = 0; i < c.rows.size(); ++i) {
      args.in[i + 1] = base + at;
      at += weight_bytes(c.weight, c.rows[i], c.cols);
    }
    if (c.add) args.in[2] = residual.data();
    team.run(job);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double iterations = static_cast<double>(state.iterations());
  const double gbps = static_cast<double>(bytes) * iterations / seconds / 1e9;
  state.counters["GB/s"] = gbps;
  state.counters["stream_GB/s"] = bandwidth;
  state.counters["bw_ratio"] = gbps / bandwidth;
  state.counters["us/call"] = seconds / iterations * 1e6;
  const double products = c.gated ? 2.0 : 1.0;  // gated_ffn: gate and up
  if (c.tokens > 1)
    state.counters["GOPS"] =
        2.0 * products * static_cast<double>(total * c.cols * c.tokens) * iterations / seconds / 1e9;
}

// F16 -> Q8_0 / Q6_K requantization speed on the LM-head shape (single thread).
void bm_requantize(benchmark::State& state, bool q6k) {
  const int64_t rows = 128256, cols = 2560;
  for (auto _ : state) {
    auto q = q6k ? requantize_f16_to_q6_k(pool(), rows, cols) : requantize_f16_to_q8_0(pool(), rows, cols);
    benchmark::DoNotOptimize(q.data());
  }
  state.counters["Mweights/s"] =
      benchmark::Counter(static_cast<double>(rows * cols) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (int t : {1, 2}) {
    benchmark::RegisterBenchmark("bandwidth/stream_read_1GiB", [](benchmark::State& s) { bm_stream(s, false); })
        ->Arg(t)
        ->ArgName("threads")
        ->UseRealTime();
    benchmark::RegisterBenchmark("bandwidth/stream_read_1GiB_4streams_prefetch",
                                 [](benchmark::State& s) { bm_stream(s, true); })
        ->Arg(t)
        ->ArgName("threads")
        ->UseRealTime();
  }

  struct Shape {
    const char* name;
    std::vector<int64_t> rows;
    int64_t cols;
  };
  const std::vector<Shape> shapes = {{"2560x2560", {2560}, 2560},
                                     {"640x2560", {640}, 2560},
                                     {"6912x2560", {6912}, 2560},
                                     {"2560x6912", {2560}, 6912},
                                     {"qkv_cat_3840x2560", {2560, 640, 640}, 2560}};
  auto add = [](const std::string& name, const Case& c, std::vector<int> threads) {
    auto* b = benchmark::RegisterBenchmark(name.c_str(), [c](benchmark::State& s) { bm_kernel(s, c); });
    for (int t : threads) b->Arg(t);
    b->ArgName("threads")->UseRealTime()->Unit(benchmark::kMicrosecond);
  };
  for (const Shape& s : shapes) {
    Case c;
    c.rows = s.rows;
    c.cols = s.cols;
    add(std::string("i2s_gemv/") + s.name + "/cold", c, {1, 2});
    c.cold = false;
    add(std::string("i2s_gemv/") + s.name + "/hot", c, {1, 2});
    c.cold = true;
    c.tokens = 8;
    add(std::string("i2s_gemm_T8/") + s.name, c, {1, 2});
    c.tokens = 128;
    add(std::string("i2s_gemm_T128/") + s.name, c, {1, 2});
  }
  Case gated;
  gated.rows = {6912, 6912};
  gated.gated = true;
  add("i2s_gated_ffn_relu2/2x6912x2560/cold", gated, {1, 2});
  gated.tokens = 8;
  add("i2s_gated_ffn_relu2_T8/2x6912x2560", gated, {1, 2});
  gated.tokens = 128;
  add("i2s_gated_ffn_relu2_T128/2x6912x2560", gated, {1, 2});
  Case head;
  head.weight = ir::DType::F16;
  head.rows = {128256};
  head.cols = 2560;
  add("f16_lm_head_gemv/128256x2560", head, {1, 2});
  head.tokens = 16;
  add("f16_lm_head_gemm_T16/128256x2560", head, {1, 2});
  // The batched decode's head: 8 sequences' last rows, each with the one-token arithmetic.
  head.tokens = 8;
  head.decode_rows = true;
  add("f16_lm_head_decode_rows_T8/128256x2560", head, {1, 2});
  head.tokens = 1;
  head.weight = ir::DType::Q8_0;
  add("q8_0_lm_head_gemv/128256x2560", head, {1, 2});
  head.weight = ir::DType::Q6_K;
  add("q6_k_lm_head_gemv/128256x2560", head, {1, 2});

  // ---- the small test models' decode kernels (weights cache-resident, per-call overheads) ----
  for (const int64_t e : {int64_t{256}, int64_t{384}}) {
    const std::string dims = std::to_string(3 * e) + "x" + std::to_string(e);
    Case tiny;
    tiny.cols = e;
    tiny.cold = false;
    tiny.rows = {e, e, e};
    add("tiny/i2s_qkv_cat_" + dims, tiny, {1, 2});
    tiny.tuning.i2s_gemv_batch = false;
    add("tiny/i2s_qkv_cat_" + dims + "_unbatched", tiny, {1});
    tiny.tuning.i2s_gemv_batch = true;
    tiny.rows = {3 * e, 3 * e};
    tiny.gated = true;
    tiny.act = "silu";
    add("tiny/i2s_gated_ffn_silu_2x" + dims, tiny, {1, 2});
    tiny.act = "relu2";
    add("tiny/i2s_gated_ffn_relu2_2x" + dims, tiny, {1, 2});
    // A 128-token prompt: the activation's cost next to the product's, on both ISA levels.
    tiny.tokens = 128;
    for (const char* act : {"silu", "relu2"}) {
      tiny.act = act;
      for (const char* target : {"x86-64-v3", "host"}) {
        tiny.target = target;
        add("tiny/i2s_gated_ffn_" + std::string(act) + "_T128_2x" + dims + "/" + target, tiny, {1});
      }
    }
    tiny.target = "host";
    tiny.tokens = 1;
    tiny.tuning.i2s_gemv_batch = false;
    add("tiny/i2s_gated_ffn_relu2_2x" + dims + "_unbatched", tiny, {1});
    tiny.tuning.i2s_gemv_batch = true;
    tiny.gated = false;
    tiny.add = true;
    tiny.rows = {e};
    tiny.cols = 3 * e;
    add("tiny/i2s_ffn_down_add_" + std::to_string(e) + "x" + std::to_string(3 * e), tiny, {1, 2});
    tiny.add = false;
    tiny.weight = ir::DType::F16;
    tiny.rows = {32000};
    tiny.cols = e;
    add("tiny/f16_lm_head_32000x" + std::to_string(e), tiny, {1, 2});
  }

  // ---- design variants (1 thread; the defaults are the chosen ones) ----
  using Edit = std::function<void(Case&)>;
  struct Variant {
    std::string name;
    Edit edit;
  };
  // Registers "variant/<prefix>/<name>" for each variant of one product shape.
  auto variants = [&](const std::string& prefix, const Case& base, const std::vector<Variant>& list) {
    for (const Variant& v : list) {
      Case c = base;
      v.edit(c);
      add("variant/" + prefix + "/" + v.name, c, {1});
    }
  };
  auto shape = [](std::vector<int64_t> rows, int64_t cols, int64_t tokens, ir::DType weight, bool cold) {
    Case c;
    c.rows = std::move(rows);
    c.cols = cols;
    c.tokens = tokens;
    c.weight = weight;
    c.cold = cold;
    return c;
  };
  auto tune = [](auto f) { return Edit([f](Case& c) { f(c.tuning); }); };
  const Edit none = [](Case&) {};
  const std::vector<Variant> i2s_gemv = {
      {"default", none},
      {"streams1", tune([](MatmulTuning& t) { t.i2s_gemv_streams = 1; })},
      {"split1", tune([](MatmulTuning& t) { t.i2s_gemv_split = 1; })},
      {"split2", tune([](MatmulTuning& t) { t.i2s_gemv_split = 2; })},
      {"rows2", tune([](MatmulTuning& t) { t.i2s_gemv_rows = 2; })},
      {"rows8_split2", tune([](MatmulTuning& t) { t.i2s_gemv_rows = 8, t.i2s_gemv_split = 2; })},
      {"prefetch0", tune([](MatmulTuning& t) { t.i2s_prefetch_bytes = 0; })},
      {"prefetch2k", tune([](MatmulTuning& t) { t.i2s_prefetch_bytes = 2048; })},
      {"prefetch4k", tune([](MatmulTuning& t) { t.i2s_prefetch_bytes = 4096; })},
      {"prefetch16k", tune([](MatmulTuning& t) { t.i2s_prefetch_bytes = 16384; })},
      {"vnni256", tune([](MatmulTuning& t) { t.i2s_max_vector_bits = 256; })},
      {"maddubs512", tune([](MatmulTuning& t) { t.i2s_allow_vnni = false; })},
      {"portable", tune([](MatmulTuning& t) { t.portable_only = true; })},
      {"target_x86-64-v3", [](Case& c) { c.target = "x86-64-v3"; }},
      {"target_x86-64-v4", [](Case& c) { c.target = "x86-64-v4"; }},
  };
  variants("i2s_gemv_6912x2560", shape({6912}, 2560, 1, ir::DType::I2_S, true), i2s_gemv);
  variants("i2s_gemv_2560x6912", shape({2560}, 6912, 1, ir::DType::I2_S, true), i2s_gemv);
  variants("i2s_gemv_2560x2560_hot", shape({2560}, 2560, 1, ir::DType::I2_S, false), i2s_gemv);
  std::vector<Variant> i2s_gemm = {
      {"default", none},
      {"direct0", tune([](MatmulTuning& t) { t.i2s_direct_max_tokens = 0; })},
      {"direct_rows8_tokens4", tune([](MatmulTuning& t) { t.i2s_direct_rows = 8, t.i2s_direct_tokens = 4; })},
      {"vnni256_direct0", tune([](MatmulTuning& t) { t.i2s_max_vector_bits = 256, t.i2s_direct_max_tokens = 0; })},
      {"chunk0", tune([](MatmulTuning& t) { t.i2s_gemm_chunk_bytes = 0; })},
      {"chunk12k", tune([](MatmulTuning& t) { t.i2s_gemm_chunk_bytes = 12288; })},
      {"chunk28k", tune([](MatmulTuning& t) { t.i2s_gemm_chunk_bytes = 28672; })},
      {"vnni256", tune([](MatmulTuning& t) { t.i2s_max_vector_bits = 256; })},
      {"target_x86-64-v3", [](Case& c) { c.target = "x86-64-v3"; }}};
  for (int accs : {1, 2}) {
    for (auto [r, t] : std::vector<std::pair<int, int>>{{4, 4}, {6, 4}, {8, 2}, {8, 3}, {8, 4}, {8, 6}, {12, 3}}) {
      i2s_gemm.push_back({"rows" + std::to_string(r) + "_tokens" + std::to_string(t) + "_accs" + std::to_string(accs),
                          tune([r, t, accs](MatmulTuning& m) {
                            m.i2s_gemm_rows = r, m.i2s_gemm_tokens = t, m.i2s_gemm_accs = accs;
                          })});
    }
  }
  variants("i2s_gemm_T128_2560x2560", shape({2560}, 2560, 128, ir::DType::I2_S, true), i2s_gemm);
  variants("i2s_gemm_T128_2560x6912", shape({2560}, 6912, 128, ir::DType::I2_S, true), i2s_gemm);
  variants("i2s_gemm_T8_2560x6912", shape({2560}, 6912, 8, ir::DType::I2_S, true), i2s_gemm);
  variants("i2s_gemm_T16_2560x6912", shape({2560}, 6912, 16, ir::DType::I2_S, true), i2s_gemm);
  variants("i2s_gemm_T8_2560x2560", shape({2560}, 2560, 8, ir::DType::I2_S, true), i2s_gemm);
  variants("i2s_gemm_T8_qkv_2560+640+640x2560", shape({2560, 640, 640}, 2560, 8, ir::DType::I2_S, true), i2s_gemm);
  // Batched decode: 8 or 16 tokens per call (one per sequence).
  for (int64_t tokens : {8, 16}) {
    Case gated_rows = shape({6912, 6912}, 2560, tokens, ir::DType::I2_S, true);
    gated_rows.gated = true;
    variants("i2s_gated_ffn_T" + std::to_string(tokens) + "_2x6912x2560", gated_rows, i2s_gemm);
  }
  // The AVX2 (vpmaddubsw) path has 16 vector registers instead of 32: its own tile sizes.
  std::vector<Variant> i2s_gemm_avx2;
  for (auto [r, t] : std::vector<std::pair<int, int>>{{3, 3}, {2, 4}, {4, 2}, {5, 2}, {2, 5}, {4, 3}, {3, 4}, {6, 2}}) {
    i2s_gemm_avx2.push_back({"v3_rows" + std::to_string(r) + "_tokens" + std::to_string(t), [r, t](Case& c) {
                               c.target = "x86-64-v3";
                               c.tuning.i2s_gemm_rows_avx2 = r, c.tuning.i2s_gemm_tokens_avx2 = t;
                             }});
  }
  variants("i2s_gemm_T128_2560x2560", shape({2560}, 2560, 128, ir::DType::I2_S, true), i2s_gemm_avx2);
  variants("i2s_gemm_T128_qkv_2560+640+640x2560", shape({2560, 640, 640}, 2560, 128, ir::DType::I2_S, true),
           i2s_gemm_avx2);
  variants("i2s_gemm_T128_2560x6912", shape({2560}, 6912, 128, ir::DType::I2_S, true), i2s_gemm_avx2);
  Case gated_avx2 = shape({6912, 6912}, 2560, 128, ir::DType::I2_S, true);
  gated_avx2.gated = true;
  variants("i2s_gated_ffn_T128_2x6912x2560", gated_avx2, i2s_gemm_avx2);
  const std::vector<Variant> float_gemv = {
      {"default", none},
      {"streams1", tune([](MatmulTuning& t) { t.float_gemv_streams = 1; })},
      {"rows2", tune([](MatmulTuning& t) { t.float_gemv_rows = 2; })},
      {"rows8", tune([](MatmulTuning& t) { t.float_gemv_rows = 8; })},
      {"accs1", tune([](MatmulTuning& t) { t.float_gemv_accs = 1; })},
      {"prefetch0", tune([](MatmulTuning& t) { t.float_prefetch_bytes = 0; })},
      {"target_x86-64-v3", [](Case& c) { c.target = "x86-64-v3"; }},
  };
  const std::vector<int64_t> vocab = {128256};
  variants("f16_gemv_128256x2560", shape(vocab, 2560, 1, ir::DType::F16, true), float_gemv);
  variants("q8_0_gemv_128256x2560", shape(vocab, 2560, 1, ir::DType::Q8_0, true), float_gemv);
  variants("f16_gemv_1024x2560_hot", shape({1024}, 2560, 1, ir::DType::F16, false), {{"default", none}});
  variants("q8_0_gemv_2048x2560_hot", shape({2048}, 2560, 1, ir::DType::Q8_0, false), {{"default", none}});
  std::vector<Variant> float_gemm;
  for (auto [r, t] : std::vector<std::pair<int, int>>{{4, 4}, {2, 8}, {4, 6}, {6, 4}}) {
    float_gemm.push_back({"rows" + std::to_string(r) + "_tokens" + std::to_string(t),
                          tune([r, t](MatmulTuning& m) { m.float_gemm_rows = r, m.float_gemm_tokens = t; })});
  }
  variants("f16_gemm_T16_128256x2560", shape(vocab, 2560, 16, ir::DType::F16, true), float_gemm);
  // The LM head of batched decode: 8 or 16 sequences' last rows, each with the one-token
  // arithmetic (KernelArgs::decode_rows), the weights read once for all.
  std::vector<Variant> decode_rows = {{"default", none}};
  for (auto [r, t] : std::vector<std::pair<int, int>>{{4, 2}, {4, 4}}) {
    decode_rows.push_back(
        {"generic_rows" + std::to_string(r) + "_tokens" + std::to_string(t), tune([r, t](MatmulTuning& m) {
           m.float_rows_chunked = false, m.float_decode_rows_tile = r, m.float_decode_tokens = t;
         })});
  }
  decode_rows.push_back({"v3_default", [](Case& c) { c.target = "x86-64-v3"; }});
  decode_rows.push_back({"v3_generic_rows4_tokens2", [](Case& c) {
                           c.target = "x86-64-v3";
                           c.tuning.float_rows_chunked = false;
                           c.tuning.float_decode_rows_tile = 4, c.tuning.float_decode_tokens = 2;
                         }});
  for (auto [reg, group] : std::vector<std::pair<int, int>>{{2, 2}, {1, 6}, {1, 4}}) {
    decode_rows.push_back(
        {"v3_chunked_reg" + std::to_string(reg) + "_group" + std::to_string(group), [reg, group](Case& c) {
           c.target = "x86-64-v3";
           c.tuning.float_rows_reg_rows = reg, c.tuning.float_rows_group = group;
         }});
  }
  for (auto [reg, group, kib] :
       std::vector<std::tuple<int, int, int>>{{3, 4, 8}, {3, 4, 32}, {2, 4, 16}, {2, 6, 16}, {4, 3, 16}, {1, 8, 16}}) {
    decode_rows.push_back(
        {"chunked_reg" + std::to_string(reg) + "_group" + std::to_string(group) + "_" + std::to_string(kib) + "KiB",
         tune([reg, group, kib](MatmulTuning& m) {
           m.float_rows_reg_rows = reg, m.float_rows_group = group, m.float_rows_chunk_bytes = kib * 1024;
         })});
  }
  // One accumulator per (row, token) (float_gemv_accs = 1, which changes the one-token arithmetic
  // too): twice the tokens per register tile, half the F16 conversions per FMA.
  for (auto [reg, group, kib] : std::vector<std::tuple<int, int, int>>{
           {3, 8, 16}, {3, 8, 8}, {3, 8, 4}, {3, 8, 12}, {2, 8, 16}, {4, 6, 16}, {3, 4, 16}}) {
    decode_rows.push_back(
        {"accs1_reg" + std::to_string(reg) + "_group" + std::to_string(group) + "_" + std::to_string(kib) + "KiB",
         tune([reg, group, kib](MatmulTuning& m) {
           m.float_gemv_accs = 1, m.float_rows_reg_rows = reg, m.float_rows_group = group;
           m.float_rows_chunk_bytes = kib * 1024;
         })});
  }
  for (auto [reg, group] : std::vector<std::pair<int, int>>{{2, 3}, {2, 6}, {1, 8}, {3, 4}}) {
    decode_rows.push_back(
        {"v3_accs1_reg" + std::to_string(reg) + "_group" + std::to_string(group), [reg, group](Case& c) {
           c.target = "x86-64-v3";
           c.tuning.float_gemv_accs = 1, c.tuning.float_rows_reg_rows = reg, c.tuning.float_rows_group = group;
         }});
  }
  // The small models' heads (32000 rows, in L3) at 8 rows: where the chunked nest starts to pay.
  std::vector<Variant> small_rows = {{"default", none}, {"generic_rows4_tokens2", tune([](MatmulTuning& m) {
                                                           m.float_rows_chunked = false, m.float_decode_rows_tile = 4,
                                                           m.float_decode_tokens = 2;
                                                         })}};
  for (int64_t k : {384, 768, 1024, 1536, 2048}) {
    Case small = shape({32000}, k, 8, ir::DType::F16, false);
    small.decode_rows = true;
    variants("f16_decode_rows_T8_32000x" + std::to_string(k), small, small_rows);
  }
  {
    // The same loop nest on rows that stay in L2/L3: what the arithmetic alone costs.
    Case hot_rows = shape({1536}, 2560, 8, ir::DType::F16, false);
    hot_rows.decode_rows = true;
    variants("f16_decode_rows_T8_1536x2560_hot", hot_rows, {{"default", none}});
  }
  for (int64_t tokens : {8, 16}) {
    Case head_rows = shape(vocab, 2560, tokens, ir::DType::F16, true);
    head_rows.decode_rows = true;
    variants("f16_decode_rows_T" + std::to_string(tokens) + "_128256x2560", head_rows, decode_rows);
  }
  benchmark::RegisterBenchmark("requantize/f16_to_q8_0/128256x2560",
                               [](benchmark::State& s) { bm_requantize(s, false); })
      ->Unit(benchmark::kMillisecond)
      ->Iterations(1);
  benchmark::RegisterBenchmark("requantize/f16_to_q6_k/128256x2560",
                               [](benchmark::State& s) { bm_requantize(s, true); })
      ->Unit(benchmark::kMillisecond)
      ->Iterations(1);
}

}  // namespace

int main(int argc, char** argv) {
  pool();  // filled (and faulted in) before anything is timed
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
