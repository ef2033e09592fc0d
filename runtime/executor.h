// The executor: runs one graph of a plan (planfb::GraphPlanT) exactly as stored: its schedule
// of calls, in order with a barrier after each, every activation at its slot's offset in one
// arena, a KV cache per layer of the plan's KV table (one region per sequence, batch.h), on a
// persistent worker pool. Nothing is re-derived and nothing is allocated per token. A batch
// of many sequences runs each call once over all rows, except calls the plan marks
// per_sequence, which run once per sequence within the same step. The kernels come in as function pointers:
// from a plan's code image (plan_model.h) or from the JIT's in-memory plan (compiler/).
#pragma once

#include "plan_generated.h"
#include "runtime/session.h"
#include "schema/abi.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace bitnet::runtime {

// What a plan's bindings and kernel indices resolve to in this process.
struct PlanBindings {
  std::vector<abi::KernelFn> kernels;              // by Plan.kernels index
  std::vector<abi::WorkSplit> kernel_splits;       // the split each kernel was compiled for
  std::vector<std::span<const uint8_t>> weights;   // by Plan.weights index: the mapped GGUF bytes
  std::vector<std::span<const uint8_t>> repacked;  // by Sidecar.weights index
};

struct ExecutorOptions {
  int64_t n_ctx = 512;    // cells of all sequences
  int32_t n_seq_max = 1;  // sequences (KV regions of n_ctx / n_seq_max cells)
  int threads = 1;
  int64_t n_vocab = 0;                // token ids must be below it
  std::string backend_name = "plan";  // what backend() reports ("jit" for the JIT's in-memory plan)
  // Time every call and barrier per thread and print a summary by op on destruction (also
  // switched on by BITNET_PROFILE=1).
  bool profile = false;
};

class Executor : public SequenceSession {
 public:
  // Checks `graph` against `bindings` (check_graph_plan: every index and byte range), then
  // allocates the arena and KV caches. `graph` and `bindings` must outlive the executor.
  static Expected<std::unique_ptr<Executor>> create(const planfb::GraphPlanT& graph, const PlanBindings& bindings,
                                                    const ExecutorOptions& options);
  ~Executor() override;

  std::string_view backend() const override { return backend_name_; }

  int64_t arena_bytes() const;

 protected:
  Status run_layout(const BatchLayout& layout, Outputs& out) override;
  void copy_cells(int32_t from_seq, int32_t to_seq, int64_t p0, int64_t p1) override;
  void move_cells(int32_t seq, int64_t from, int64_t to, int64_t n) override;

 private:
  struct Impl;
  Executor(std::unique_ptr<Impl> impl, const ExecutorOptions& options);
  std::unique_ptr<Impl> impl_;
  std::string backend_name_;
};

}  // namespace bitnet::runtime
