// The executor (see executor.h).
#include "runtime/executor.h"

#include "runtime/kv_shift.h"
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

// One attention layer's cache: n_seq regions of `cells` cells each, every region laid out
// as abi::KernelArgs describes.
struct KvCache {
  std::unique_ptr<AlignedBuffer> k, v;
  int64_t n_head_kv = 0, head_dim = 0;
  KeyRotation rotation;  // how the keys were rotated (the plan's KV table)
};

// One call of the schedule ready to run: its arguments (pointers fixed at creation) and split.
struct Step {
  planfb::CallKind kind = planfb::CallKind::Kernel;
  int32_t node = -1;
  abi::KernelFn fn = nullptr;
  abi::KernelArgs args{};
  int64_t units = -1;         // work units; -1: T
  int64_t granularity = 1;    // split ranges on multiples of this (head groups, SIMD row blocks)
  bool token_rows = true;     // the kernel's rows are the T tokens (else the selected rows)
  bool per_sequence = false;  // run once per sequence (offset by rows, its KV region)
  bool decode_rows = false;   // ... or as one call when every sequence has one row
  int64_t in_row_bytes[abi::kMaxKernelInputs] = {};
  const uint8_t* copy_from = nullptr;  // SelectRows
  int64_t row_bytes = 0;               // SelectRows: per row copied; per_sequence: of the output
  uint8_t* kv_k = nullptr;             // region 0 of the layer's cache (per_sequence attention)
  uint8_t* kv_v = nullptr;
  int64_t kv_region_bytes = 0;
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
  int64_t kv_cells = 0;           // cells per sequence region
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

  // Runs a per-sequence step on thread `thread`: the threads share the work blocks
  // (`granularity` units) of all sequences' calls; each sequence's call sees its own rows,
  // positions and KV region.
  void run_per_sequence(const Step& s, std::span<const SequenceRows> groups, int thread) const {
    auto units_of = [&](const SequenceRows& g) { return s.units < 0 ? g.n : s.units; };
    int64_t total = 0;
    for (const SequenceRows& g : groups) total += (units_of(g) + s.granularity - 1) / s.granularity;
    const auto [b0, b1] = share(total, 1, thread);
    int64_t first = 0;
    for (const SequenceRows& g : groups) {
      const int64_t units = units_of(g);
      const int64_t blocks = (units + s.granularity - 1) / s.granularity;
      const int64_t lo = std::max(b0, first), hi = std::min(b1, first + blocks);
      if (lo < hi) {
        abi::KernelArgs args = s.args;
        args.thread = thread;
        args.n_tokens = g.n;
        args.pos = g.pos0;
        for (int k = 0; k < abi::kMaxKernelInputs; ++k) {
          if (s.in_row_bytes[k]) args.in[k] = static_cast<const uint8_t*>(args.in[k]) + g.row0 * s.in_row_bytes[k];
        }
        args.out = static_cast<uint8_t*>(args.out) + g.row0 * s.row_bytes;
        if (s.kv_k) {
          args.kv_k = s.kv_k + g.seq * s.kv_region_bytes;
          args.kv_v = s.kv_v + g.seq * s.kv_region_bytes;
        }
        s.fn(&args, (lo - first) * s.granularity, std::min(units, (hi - first) * s.granularity));
      }
      first += blocks;
    }
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

Executor::Executor(std::unique_ptr<Impl> impl, const ExecutorOptions& options)
    : SequenceSession(options.n_seq_max, options.n_ctx, impl->t_max, options.n_vocab),
      impl_(std::move(impl)),
      backend_name_(options.backend_name) {}
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
  if (options.n_ctx <= 0 || options.threads <= 0 || options.n_vocab <= 0 || options.n_seq_max <= 0) {
    return make_error("executor: context, sequences, threads and vocabulary size must be positive");
  }
  if (options.n_ctx < options.n_seq_max) {
    return make_error("a context of {} cells cannot hold {} sequences", options.n_ctx, options.n_seq_max);
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
  impl->scratch_stride = (abi::kernel_scratch_bytes(options.n_ctx) + graph.kernel_scratch_bytes + 63) / 64 * 64;
  impl->scratch = std::make_unique<AlignedBuffer>(static_cast<size_t>(impl->scratch_stride * options.threads));

  // KV caches, zeroed: the plan's KV table, a region per sequence, cells rounded up
  // (attention reads whole windows).
  const int64_t cells = abi::kv_cells_for(options.n_ctx / options.n_seq_max);
  impl->kv_cells = cells;
  for (const planfb::KvLayer& layer : graph.kv) {
    const int64_t width = int64_t{layer.n_head_kv()} * layer.head_dim();
    KvCache& c = impl->kv[layer.layer()];
    c.n_head_kv = layer.n_head_kv();
    c.head_dim = layer.head_dim();
    c.rotation = {layer.has_rope(), layer.rope_neox(), layer.rope_freq_base(), layer.rope_freq_scale(), c.head_dim};
    const auto bytes = static_cast<size_t>(options.n_seq_max * cells * width * 2);
    c.k = std::make_unique<AlignedBuffer>(bytes);
    c.v = std::make_unique<AlignedBuffer>(bytes);
    if (!c.k->data || !c.v->data)
      return make_error("cannot allocate the {}-byte KV cache of layer {}", bytes, layer.layer());
  }
  for (const auto& call : graph.schedule) {
    Step s;
    s.kind = call->kind;
    s.node = call->node;
    s.args.out = const_cast<void*>(impl->resolve(*call->output, bindings));
    if (call->kind == planfb::CallKind::SelectRows) {
      s.token_rows = false;
      s.copy_from = static_cast<const uint8_t*>(impl->resolve(call->inputs[0], bindings));
      s.row_bytes = call->row_bytes;
    }
    if (call->kind == planfb::CallKind::Kernel) {
      s.fn = bindings.kernels[static_cast<size_t>(call->kernel)];
      s.units = call->units;
      s.granularity = call->granularity;
      s.token_rows = call->token_rows;
      s.per_sequence = call->per_sequence;
      s.decode_rows = call->decode_rows;
      for (size_t k = 0; k < call->inputs.size(); ++k) s.args.in[k] = impl->resolve(call->inputs[k], bindings);
      for (size_t k = 0; k < call->input_row_bytes.size(); ++k) s.in_row_bytes[k] = call->input_row_bytes[k];
      if (s.per_sequence) s.row_bytes = call->row_bytes;
      s.args.scratch = impl->scratch->data;
      s.args.scratch_stride = impl->scratch_stride;
      s.args.kv_cells = cells;
      s.args.n_threads = options.threads;
      if (call->kv_layer >= 0) {
        KvCache& c = impl->kv.at(call->kv_layer);
        s.kv_k = c.k->data;
        s.kv_v = c.v->data;
        s.kv_region_bytes = cells * c.n_head_kv * c.head_dim * 2;
        s.args.kv_k = s.kv_k;
        s.args.kv_v = s.kv_v;
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
  return std::unique_ptr<Executor>(new Executor(std::move(impl), options));
}

Status Executor::run_layout(const BatchLayout& layout, Outputs& outputs) {
  Impl& m = *impl_;
  const int64_t n = layout.n_rows();
  const auto n_selected = static_cast<int64_t>(layout.selected.size());
  if (n_selected > std::min(m.t_max, abi::kMaxOutputRows) &&
      std::any_of(m.outputs.begin(), m.outputs.end(), [](const Output& o) { return !o.token_rows; })) {
    return make_error("{} rows of logits wanted; a call returns at most {}", n_selected,
                      std::min(m.t_max, abi::kMaxOutputRows));
  }
  auto one_row_each = [](const std::vector<SequenceRows>& groups) {
    return std::all_of(groups.begin(), groups.end(), [](const SequenceRows& g) { return g.n == 1; });
  };
  const bool single_tokens = one_row_each(layout.groups), single_outputs = one_row_each(layout.out_groups);
  for (Step& s : m.steps) {
    s.args.n_tokens = s.token_rows ? n : n_selected;
    s.args.pos = layout.groups.front().pos0;
    // Many one-row sequences: one call with each row's one-token arithmetic.
    s.args.decode_rows = s.decode_rows && (s.token_rows ? single_tokens : single_outputs) && s.args.n_tokens > 1;
  }
  m.pool.run([&](int thread) {
    for (size_t i = 0; i < m.steps.size(); ++i) {
      Step& s = m.steps[i];
      if (!s.token_rows && n_selected == 0) continue;  // no logits wanted: skip the LM head
      const auto t0 = m.profiling ? ProfileClock::now() : ProfileClock::time_point{};
      switch (s.kind) {
        case planfb::CallKind::Kernel: {
          if (s.per_sequence && !s.args.decode_rows) {
            m.run_per_sequence(s, s.token_rows ? layout.groups : layout.out_groups, thread);
            break;
          }
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
          if (thread == 0) std::memcpy(s.args.out, layout.tokens.data(), layout.tokens.size() * sizeof(int32_t));
          break;
        case planfb::CallKind::SelectRows:
          // Ascending rows into the first rows: a row never lands on a row still to be read.
          if (thread == 0) {
            auto* to = static_cast<uint8_t*>(s.args.out);
            for (int64_t r = 0; r < n_selected; ++r) {
              std::memmove(to + r * s.row_bytes, s.copy_from + layout.selected[static_cast<size_t>(r)] * s.row_bytes,
                           static_cast<size_t>(s.row_bytes));
            }
          }
          break;
      }
      const auto t1 = m.profiling ? ProfileClock::now() : ProfileClock::time_point{};
      m.pool.barrier().arrive_and_wait();
      if (m.profiling) m.record(i, thread, t0, t1, ProfileClock::now());
    }
  });
  for (const Output& o : m.outputs) {
    const int64_t rows = o.token_rows ? n : n_selected;
    Matrix& out = outputs[o.name];
    out.cols = o.cols;
    out.rows = rows;
    out.data.assign(o.data, o.data + rows * o.cols);
  }
  ++m.profiled_runs;
  return Status::success();
}

// Cells move down within a region (to < from: copying in increasing order never overwrites a
// cell still to be read); each moved key is rotated by the shift.
void Executor::move_cells(int32_t seq, int64_t from, int64_t to, int64_t n) {
  Impl& m = *impl_;
  const int64_t cells = m.kv_cells;
  for (auto& [layer, c] : m.kv) {
    const int64_t hd = c.head_dim;
    const int64_t region = cells * c.n_head_kv * hd;  // halves
    auto* k = reinterpret_cast<uint16_t*>(c.k->data) + seq * region;
    auto* v = reinterpret_cast<uint16_t*>(c.v->data) + seq * region;
    for (int64_t g = 0; g < c.n_head_kv; ++g) {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t* key = k + abi::kv_k_index(g, to + i, 0, cells, hd);
        std::memmove(key, k + abi::kv_k_index(g, from + i, 0, cells, hd), static_cast<size_t>(hd * 2));
        rotate_key(key, c.rotation, to - from);
        for (int64_t d = 0; d < hd; ++d) {
          v[abi::kv_v_index(g, to + i, d, cells, hd)] = v[abi::kv_v_index(g, from + i, d, cells, hd)];
        }
      }
    }
  }
}

// Cells [p0, p1) of every layer, in the layouts of abi::KernelArgs: K rows are contiguous per
// KV head; V is transposed in tiles of 32 cells.
void Executor::copy_cells(int32_t from_seq, int32_t to_seq, int64_t p0, int64_t p1) {
  Impl& m = *impl_;
  const int64_t cells = m.kv_cells;
  for (auto& [layer, c] : m.kv) {
    const int64_t hd = c.head_dim;
    const int64_t region = cells * c.n_head_kv * hd;  // halves
    auto* k = reinterpret_cast<uint16_t*>(c.k->data);
    auto* v = reinterpret_cast<uint16_t*>(c.v->data);
    for (int64_t g = 0; g < c.n_head_kv; ++g) {
      const int64_t k_at = abi::kv_k_index(g, p0, 0, cells, hd);
      std::memcpy(k + to_seq * region + k_at, k + from_seq * region + k_at, static_cast<size_t>((p1 - p0) * hd * 2));
      for (int64_t cell = p0; cell < p1; ++cell) {
        for (int64_t d = 0; d < hd; ++d) {
          const int64_t at = abi::kv_v_index(g, cell, d, cells, hd);
          v[to_seq * region + at] = v[from_seq * region + at];
        }
      }
    }
  }
}

}  // namespace bitnet::runtime
