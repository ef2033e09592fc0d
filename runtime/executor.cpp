// Compiled executor (see executor.h).
#include "runtime/executor.h"

#include "passes/memory_plan.h"
#include "passes/schedule.h"
#include "runtime/worker_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace bitnet::runtime {
namespace {

using ir::OpKind;

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

// One kernel node ready to call: its arguments (pointers fixed at creation) and split.
struct Step {
  int32_t node = -1;
  codegen::KernelFn fn = nullptr;
  codegen::KernelArgs args{};
  passes::NodeWork work;
  int64_t granularity = 1;      // split ranges on multiples of this (head groups, SIMD row blocks)
  bool rows_are_tokens = true;  // the result's first dim is T (else a static 1)
};

}  // namespace

using ProfileClock = std::chrono::steady_clock;

struct Executor::Impl {
  const ir::Graph& graph;
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
  passes::MemoryPlan plan;
  std::unique_ptr<AlignedBuffer> arena;
  std::unique_ptr<AlignedBuffer> scratch;
  int64_t scratch_stride = 0;
  std::map<int64_t, KvCache> kv;
  std::vector<const void*> weight_data;  // by value id
  std::vector<Step> steps;               // kernel nodes in order
  std::vector<int32_t> step_of_node;     // -1 for nodes without a kernel
  WorkerPool pool;
  int64_t t_max;

  Impl(const ir::Graph& g, int threads) : graph(g), pool(threads) {}

  uint8_t* slot(ir::ValueId v) {
    const passes::Slot& s = plan.slots[static_cast<size_t>(v)];
    const ir::ValueId target = s.alias >= 0 ? s.alias : v;
    return arena->data + plan.slots[static_cast<size_t>(target)].offset;
  }
  const void* operand(ir::ValueId v) {
    if (graph.def(v).op == OpKind::Weight) return weight_data[static_cast<size_t>(v)];
    return slot(v);
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
    Row& r = rows[std::string(ir::op_name(graph.nodes()[static_cast<size_t>(steps[i].node)].op))];
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
  return impl_->plan.arena_bytes;
}

Expected<std::unique_ptr<Executor>> Executor::create(const ir::Graph& graph, const gguf::GgufFile& file,
                                                     std::vector<codegen::KernelFn> kernels,
                                                     const ExecutorOptions& options) {
  if (options.n_ctx <= 0 || options.threads <= 0 || options.t_max <= 0) {
    return make_error("executor: context, threads and t_max must be positive");
  }
  if (kernels.size() != graph.nodes().size()) return make_error("executor: one kernel slot per graph node expected");
  auto impl = std::make_unique<Impl>(graph, options.threads);
  impl->t_max = options.t_max;
  BITNET_ASSIGN_OR_RETURN(impl->plan, passes::plan_memory(graph, options.t_max));
  impl->arena = std::make_unique<AlignedBuffer>(static_cast<size_t>(impl->plan.arena_bytes));
  if (impl->arena->data == nullptr)
    return make_error("cannot allocate the {}-byte activation arena", impl->plan.arena_bytes);
  impl->scratch_stride = (options.scratch_bytes_per_thread + 63) / 64 * 64;
  impl->scratch = std::make_unique<AlignedBuffer>(static_cast<size_t>(impl->scratch_stride * options.threads));

  // Weights: zero-copy views of the mapped file.
  impl->weight_data.assign(graph.values().size(), nullptr);
  int64_t n_vocab = 0;
  for (const ir::Node& node : graph.nodes()) {
    if (node.op == OpKind::Weight) {
      const std::string& name = node.attr_string("tensor");
      if (auto extra = options.extra_weights.find(name); extra != options.extra_weights.end()) {
        impl->weight_data[static_cast<size_t>(node.result)] = extra->second;
        continue;
      }
      const gguf::TensorInfo* t = file.find_tensor(name);
      if (t == nullptr) return make_error("weight '{}' is not in the model file", name);
      impl->weight_data[static_cast<size_t>(node.result)] = t->data.data();
    }
    if (node.op == OpKind::Embed) n_vocab = graph.value(node.operands[0]).type.shape[0].size;
  }
  // KV caches: cells rounded up to 32 (attention reads whole 32-cell windows), zeroed.
  const int64_t cells = (options.n_ctx + 31) / 32 * 32;
  for (const ir::Node& node : graph.nodes()) {
    if (node.op != OpKind::Attention && node.op != OpKind::RopeAttention) continue;
    const int64_t width = node.attr_int("n_head_kv") * node.attr_int("head_dim");
    KvCache& c = impl->kv[node.attr_int("layer")];
    c.k = std::make_unique<AlignedBuffer>(static_cast<size_t>(cells * width * 2));
    c.v = std::make_unique<AlignedBuffer>(static_cast<size_t>(cells * width * 2));
    if (!c.k->data || !c.v->data) return make_error("cannot allocate the KV cache");
  }
  // Steps.
  impl->step_of_node.assign(graph.nodes().size(), -1);
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const ir::Node& node = graph.nodes()[i];
    auto work = passes::work_of(graph, node);
    if (!work) continue;
    if (kernels[i] == nullptr) return make_error("executor: node #{} ({}) has no kernel", i, ir::op_name(node.op));
    Step s;
    s.node = static_cast<int32_t>(i);
    s.fn = kernels[i];
    s.work = *work;
    if (node.operands.size() > static_cast<size_t>(codegen::kMaxKernelInputs)) {
      return make_error("executor: node #{} has more operands than a kernel takes", i);
    }
    for (size_t k = 0; k < node.operands.size(); ++k) s.args.in[k] = impl->operand(node.operands[k]);
    s.args.out = impl->slot(node.result);
    s.args.scratch = impl->scratch->data;
    s.args.scratch_stride = impl->scratch_stride;
    s.args.kv_cells = cells;
    s.args.n_threads = options.threads;
    if (node.op == OpKind::Attention || node.op == OpKind::RopeAttention) {
      KvCache& c = impl->kv.at(node.attr_int("layer"));
      s.args.kv_k = c.k->data;
      s.args.kv_v = c.v->data;
    }
    s.granularity = split_granularity(graph, node);
    s.rows_are_tokens = graph.value(node.result).type.shape[0].is_tokens();
    impl->step_of_node[i] = static_cast<int32_t>(impl->steps.size());
    impl->steps.push_back(s);
  }
  const char* profile_env = std::getenv("BITNET_PROFILE");
  impl->profiling = options.profile || (profile_env != nullptr && std::string_view(profile_env) == "1");
  impl->kernel_s.assign(impl->steps.size(), std::vector<double>(static_cast<size_t>(options.threads), 0.0));
  impl->wait_s = impl->kernel_s;
  auto exec = std::unique_ptr<Executor>(new Executor(std::move(impl)));
  exec->n_ctx_ = options.n_ctx;
  exec->n_vocab_ = n_vocab;
  exec->backend_name_ = options.backend_name;
  return exec;
}

int64_t split_granularity(const ir::Graph& graph, const ir::Node& node) {
  if (node.op == OpKind::Attention || node.op == OpKind::RopeAttention) {
    return node.attr_int("n_head") / node.attr_int("n_head_kv");
  }
  auto work = passes::work_of(graph, node);
  return work && work->split == passes::WorkSplit::kRows ? 64 : 1;
}

Status Executor::run_chunk(std::span<const int32_t> tokens, std::map<std::string, Matrix>& outputs, bool last_chunk) {
  Impl& m = *impl_;
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t pos = pos_;
  for (Step& s : m.steps) {
    s.args.n_tokens = s.rows_are_tokens ? n : 1;
    s.args.pos = pos;
  }
  const auto& nodes = m.graph.nodes();
  m.pool.run([&](int thread) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      const ir::Node& node = nodes[i];
      const int32_t step = m.step_of_node[i];
      if (step >= 0) {
        Step& s = m.steps[static_cast<size_t>(step)];
        const int64_t units = passes::units_for(s.work, s.args.n_tokens);
        const auto [begin, end] = m.share(units, s.granularity, thread);
        const auto t0 = m.profiling ? ProfileClock::now() : ProfileClock::time_point{};
        if (begin < end) {
          codegen::KernelArgs args = s.args;
          args.thread = thread;
          s.fn(&args, begin, end);
        }
        const auto t1 = m.profiling ? ProfileClock::now() : ProfileClock::time_point{};
        m.pool.barrier().arrive_and_wait();
        if (m.profiling) m.record(static_cast<size_t>(step), thread, t0, t1, ProfileClock::now());
      } else if (node.op == OpKind::InputTokens) {
        if (thread == 0) std::memcpy(m.slot(node.result), tokens.data(), tokens.size() * sizeof(int32_t));
        m.pool.barrier().arrive_and_wait();
      } else if (node.op == OpKind::SelectLast) {
        if (thread == 0) {
          const int64_t cols = m.graph.value(node.result).type.shape[1].size;
          std::memmove(m.slot(node.result), m.slot(node.operands[0]) + (n - 1) * cols * 4,
                       static_cast<size_t>(cols) * 4);
        }
        m.pool.barrier().arrive_and_wait();
      }
    }
  });
  for (const ir::Node* node : m.graph.outputs()) {
    const ir::Type& type = m.graph.value(node->result).type;
    const int64_t rows = type.shape[0].is_tokens() ? n : type.shape[0].size;
    const int64_t cols = type.shape[1].size;
    const auto* data = reinterpret_cast<const float*>(m.slot(node->operands[0]));
    Matrix& out = outputs[node->attr_string("name")];
    if (!type.shape[0].is_tokens()) {
      if (!last_chunk) continue;  // only the last chunk's last row counts
      out.rows = 0;
      out.data.clear();
    }
    out.cols = cols;
    out.rows += rows;
    out.data.insert(out.data.end(), data, data + rows * cols);
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
