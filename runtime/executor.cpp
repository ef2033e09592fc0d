// The executor (see executor.h).
#include "runtime/executor.h"

#include "runtime/plan_check.h"
#include "runtime/worker_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace bitnet::runtime {
namespace {

// Cache-line aligned zeroed memory. Large buffers (KV caches: ~300 MB for a 2B model at 4096
// cells) are anonymous mappings, whose pages the kernel zeroes when first touched, so creating
// a session does not write every byte up front (a warm start would otherwise spend ~130 ms here).
// No huge pages here: the first token touches a cell in every head of every layer, and 2 MiB
// pages would make that zero ~300 MB (the first prompt after a compile took 430 ms, not 90).
struct AlignedBuffer {
  static constexpr size_t kMapThreshold = size_t{1} << 20;
  uint8_t* data = nullptr;
  size_t size = 0;
  size_t mapped = 0;
  explicit AlignedBuffer(size_t bytes) : size(bytes) {
    const size_t rounded = std::max<size_t>((bytes + 63) / 64 * 64, 64);
    if (rounded >= kMapThreshold) {
      void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p != MAP_FAILED) {
        data = static_cast<uint8_t*>(p);
        mapped = rounded;
      }
      return;
    }
    data = static_cast<uint8_t*>(std::aligned_alloc(64, rounded));
    if (data) std::memset(data, 0, bytes);
  }
  ~AlignedBuffer() {
    if (mapped) {
      ::munmap(data, mapped);
    } else {
      std::free(data);
    }
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

struct KvCache {
  std::unique_ptr<AlignedBuffer> k, v;
};

// One call of the schedule ready to run: its arguments (pointers fixed at creation) and split.
struct Step {
  planfb::CallKind kind = planfb::CallKind::Kernel;
  int32_t node = -1;
  abi::KernelFn fn = nullptr;
  abi::KernelArgs args{};
  int64_t units = -1;                  // work units; -1: T
  int64_t granularity = 1;             // split ranges on multiples of this (head groups, SIMD row blocks)
  bool token_rows = true;              // the kernel's n_tokens is T (else 1)
  const uint8_t* copy_from = nullptr;  // CopyLastRow
  int64_t row_bytes = 0;
};

struct Output {
  std::string name;
  const float* data = nullptr;
  bool token_rows = false;
  int64_t cols = 0;
};

}  // namespace

using ProfileClock = std::chrono::steady_clock;

struct Executor::Impl {
  const planfb::GraphPlanT& graph;
  // Profiling (ExecutorOptions::profile): per step and thread, seconds in the kernel and at
  // the barrier after it.
  bool profiling = false;
  std::vector<std::vector<double>> kernel_s, wait_s;  // [step][thread]
  int64_t profiled_runs = 0;
  void record(size_t step, int thread, ProfileClock::time_point t0, ProfileClock::time_point t1,
              ProfileClock::time_point t2) {
    kernel_s[step][static_cast<size_t>(thread)] += std::chrono::duration<double>(t1 - t0).count();
    wait_s[step][static_cast<size_t>(thread)] += std::chrono::duration<double>(t2 - t1).count();
  }
  void print_profile() const;
  std::unique_ptr<AlignedBuffer> arena;
  std::unique_ptr<AlignedBuffer> scratch;
  int64_t scratch_stride = 0;
  std::map<int32_t, KvCache> kv;  // by layer
  std::vector<Step> steps;        // the schedule, in order
  std::vector<Output> outputs;
  WorkerPool pool;
  int64_t t_max;

  Impl(const planfb::GraphPlanT& g, int threads) : graph(g), pool(threads) {}

  // Where a binding points (checked by check_graph_plan before any is resolved).
  const void* resolve(const planfb::Binding& b, const PlanBindings& bindings) const {
    switch (b.kind()) {
      case planfb::BindingKind::Weight:
        return bindings.weights[static_cast<size_t>(b.index())].data();
      case planfb::BindingKind::Repacked:
        return bindings.repacked[static_cast<size_t>(b.index())].data();
      case planfb::BindingKind::Arena:
        break;
    }
    return arena->data + b.offset();
  }

  // Thread `t`'s share of `units`, on multiples of `granularity` where possible.
  std::pair<int64_t, int64_t> share(int64_t units, int64_t granularity, int t) const {
    const int n = pool.size();
    const int64_t blocks = (units + granularity - 1) / granularity;
    const int64_t base = blocks / n;
    const int64_t extra = blocks % n;
    const int64_t first = t * base + std::min<int64_t>(t, extra);
    const int64_t count = base + (t < extra ? 1 : 0);
    return {std::min(units, first * granularity), std::min(units, (first + count) * granularity)};
  }
};

Executor::Executor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Executor::~Executor() {
  if (impl_ && impl_->profiling) impl_->print_profile();
}

// Totals by op (the kernel time of the slowest thread, and the time threads spent waiting).
void Executor::Impl::print_profile() const {
  struct Row {
    int64_t calls = 0;
    double kernel = 0, wait = 0;
  };
  std::map<std::string, Row> rows;
  double total = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto& node = graph.nodes[static_cast<size_t>(steps[i].node)];
    Row& r = rows[node ? node->op : "?"];
    r.calls += profiled_runs;
    double slowest = 0, waited = 0;
    for (size_t t = 0; t < kernel_s[i].size(); ++t) {
      slowest = std::max(slowest, kernel_s[i][t]);
      waited += wait_s[i][t];
    }
    r.kernel += slowest;
    r.wait += waited;
    total += slowest;
  }
  fmt::print(stderr,
             "executor profile over {} runs ({} threads): op, calls, ms in kernels (slowest thread), "
             "ms waiting at barriers (all threads), share\n",
             profiled_runs, pool.size());
  for (const auto& [op, r] : rows) {
    fmt::print(stderr, "  {:<16} {:>8} {:>10.2f} {:>10.2f} {:>6.1f} %\n", op, r.calls, r.kernel * 1e3, r.wait * 1e3,
               total > 0 ? 100.0 * r.kernel / total : 0.0);
  }
}
int64_t Executor::arena_bytes() const {
  return impl_->graph.arena_bytes;
}

Expected<std::unique_ptr<Executor>> Executor::create(const planfb::GraphPlanT& graph, const PlanBindings& bindings,
                                                     const ExecutorOptions& options) {
  if (options.n_ctx <= 0 || options.threads <= 0 || options.n_vocab <= 0) {
    return make_error("executor: context, threads and vocabulary size must be positive");
  }
  BITNET_RETURN_IF_ERROR(check_graph_plan(graph, bindings));
  if (bindings.kernels.size() != bindings.kernel_splits.size() ||
      std::find(bindings.kernels.begin(), bindings.kernels.end(), nullptr) != bindings.kernels.end()) {
    return make_error("executor: not every kernel of the plan is bound");
  }
  auto impl = std::make_unique<Impl>(graph, options.threads);
  impl->t_max = graph.t_max;
  impl->arena = std::make_unique<AlignedBuffer>(static_cast<size_t>(graph.arena_bytes));
  if (impl->arena->data == nullptr)
    return make_error("cannot allocate the {}-byte activation arena", graph.arena_bytes);
  impl->scratch_stride = (abi::kernel_scratch_bytes(options.n_ctx) + 63) / 64 * 64;
  impl->scratch = std::make_unique<AlignedBuffer>(static_cast<size_t>(impl->scratch_stride * options.threads));

  // KV caches, zeroed: the plan's KV table, cells rounded up (attention reads whole windows).
  const int64_t cells = abi::kv_cells_for(options.n_ctx);
  for (const planfb::KvLayer& layer : graph.kv) {
    const int64_t width = int64_t{layer.n_head_kv()} * layer.head_dim();
    KvCache& c = impl->kv[layer.layer()];
    c.k = std::make_unique<AlignedBuffer>(static_cast<size_t>(cells * width * 2));
    c.v = std::make_unique<AlignedBuffer>(static_cast<size_t>(cells * width * 2));
    if (!c.k->data || !c.v->data) return make_error("cannot allocate the KV cache");
  }
  for (const auto& call : graph.schedule) {
    Step s;
    s.kind = call->kind;
    s.node = call->node;
    s.args.out = const_cast<void*>(impl->resolve(*call->output, bindings));
    if (call->kind == planfb::CallKind::CopyLastRow) {
      s.copy_from = static_cast<const uint8_t*>(impl->resolve(call->inputs[0], bindings));
      s.row_bytes = call->row_bytes;
    }
    if (call->kind == planfb::CallKind::Kernel) {
      s.fn = bindings.kernels[static_cast<size_t>(call->kernel)];
      s.units = call->units;
      s.granularity = call->granularity;
      s.token_rows = call->token_rows;
      for (size_t k = 0; k < call->inputs.size(); ++k) s.args.in[k] = impl->resolve(call->inputs[k], bindings);
      s.args.scratch = impl->scratch->data;
      s.args.scratch_stride = impl->scratch_stride;
      s.args.kv_cells = cells;
      s.args.n_threads = options.threads;
      if (call->kv_layer >= 0) {
        KvCache& c = impl->kv.at(call->kv_layer);
        s.args.kv_k = c.k->data;
        s.args.kv_v = c.v->data;
      }
    }
    impl->steps.push_back(s);
  }
  for (const auto& out : graph.outputs) {
    impl->outputs.push_back(
        {out->name, reinterpret_cast<const float*>(impl->resolve(*out->value, bindings)), out->token_rows, out->cols});
  }
  const char* profile_env = std::getenv("BITNET_PROFILE");
  impl->profiling = options.profile || (profile_env != nullptr && std::string_view(profile_env) == "1");
  impl->kernel_s.assign(impl->steps.size(), std::vector<double>(static_cast<size_t>(options.threads), 0.0));
  impl->wait_s = impl->kernel_s;
  auto exec = std::unique_ptr<Executor>(new Executor(std::move(impl)));
  exec->n_ctx_ = options.n_ctx;
  exec->n_vocab_ = options.n_vocab;
  exec->backend_name_ = options.backend_name;
  return exec;
}

Status Executor::run_chunk(std::span<const int32_t> tokens, std::map<std::string, Matrix>& outputs, bool last_chunk) {
  Impl& m = *impl_;
  const auto n = static_cast<int64_t>(tokens.size());
  for (Step& s : m.steps) {
    s.args.n_tokens = s.token_rows ? n : 1;
    s.args.pos = pos_;
  }
  m.pool.run([&](int thread) {
    for (size_t i = 0; i < m.steps.size(); ++i) {
      Step& s = m.steps[i];
      const auto t0 = m.profiling ? ProfileClock::now() : ProfileClock::time_point{};
      switch (s.kind) {
        case planfb::CallKind::Kernel: {
          const int64_t units = s.units < 0 ? s.args.n_tokens : s.units;
          const auto [begin, end] = m.share(units, s.granularity, thread);
          if (begin < end) {
            abi::KernelArgs args = s.args;
            args.thread = thread;
            s.fn(&args, begin, end);
          }
          break;
        }
        case planfb::CallKind::LoadTokens:
          if (thread == 0) std::memcpy(s.args.out, tokens.data(), tokens.size() * sizeof(int32_t));
          break;
        case planfb::CallKind::CopyLastRow:
          if (thread == 0)
            std::memmove(s.args.out, s.copy_from + (n - 1) * s.row_bytes, static_cast<size_t>(s.row_bytes));
          break;
      }
      const auto t1 = m.profiling ? ProfileClock::now() : ProfileClock::time_point{};
      m.pool.barrier().arrive_and_wait();
      if (m.profiling) m.record(i, thread, t0, t1, ProfileClock::now());
    }
  });
  for (const Output& o : m.outputs) {
    const int64_t rows = o.token_rows ? n : 1;
    Matrix& out = outputs[o.name];
    if (!o.token_rows) {
      if (!last_chunk) continue;  // only the last chunk's last row counts
      out.rows = 0;
      out.data.clear();
    }
    out.cols = o.cols;
    out.rows += rows;
    out.data.insert(out.data.end(), o.data, o.data + rows * o.cols);
  }
  pos_ += n;
  ++m.profiled_runs;
  return Status::success();
}

Expected<std::map<std::string, Matrix>> Executor::run(std::span<const int32_t> tokens) {
  BITNET_RETURN_IF_ERROR(check_batch(tokens, pos_, n_ctx_, n_vocab_));
  std::map<std::string, Matrix> outputs;
  const auto n = static_cast<int64_t>(tokens.size());
  for (int64_t start = 0; start < n; start += impl_->t_max) {
    const int64_t count = std::min(impl_->t_max, n - start);
    BITNET_RETURN_IF_ERROR(
        run_chunk(tokens.subspan(static_cast<size_t>(start), static_cast<size_t>(count)), outputs, start + count == n));
  }
  return outputs;
}

}  // namespace bitnet::runtime
