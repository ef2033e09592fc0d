// Measurements behind `bitnet bench`: prompt processing (ppN) and generation (tgN)
// throughput of a model's sessions, the memory read bandwidth of this machine, and the
// bytes a decode step must read, which together give the bandwidth roofline.
#pragma once

#include "runtime/model.h"

#include <string>
#include <vector>

namespace bitnet::runtime {

struct BenchStats {
  std::string test;  // "pp128" / "tg64"
  int threads = 0;
  int batch = 1;    // sequences decoded together (bench_batched); tokens/s are of all of them
  double mean = 0;  // tokens per second
  double stddev = 0;
  std::vector<double> samples;
};

// ppN: one batch of n_prompt tokens into a fresh session, `repetitions` times after a warm-up
// (at least one run and 0.25 s).
Expected<BenchStats> bench_prompt(const Model& model, int64_t n_prompt, int threads, int repetitions);
// tgN: n_gen single-token steps from an empty cache, `repetitions` times after a warm-up
// (at least one run and 0.25 s).
Expected<BenchStats> bench_generate(const Model& model, int64_t n_gen, int threads, int repetitions);

// As llama-batched-bench: `batch` sequences each get an n_prompt-token prompt (calls of up to
// the session's max_batch tokens, whole prompts where they fit), then n_gen steps decode one
// token of every sequence together (the weights are read once per step for all of them).
// Returns {ppN, tgN} with aggregate tokens/s (batch * n_prompt / prefill time, batch * n_gen /
// decode time); either is skipped when its count is 0.
Expected<std::vector<BenchStats>> bench_batched(const Model& model, int64_t n_prompt, int64_t n_gen, int batch,
                                                int threads, int repetitions);

// Read bandwidth in GB/s (1e9 bytes/s) streaming a buffer much larger than the caches with
// `threads` threads: the best of single-stream and four-stream prefetching reads, a few
// passes each, on 2 MiB pages where the kernel gives them (0 when the buffer cannot be mapped).
double measure_read_bandwidth(int threads, size_t bytes = size_t{1} << 30);

// Bytes of weights a decode step reads: every matrix the graph multiplies by, the norm gains,
// and one embedding row (KV-cache reads are excluded: they depend on the position).
int64_t decode_bytes_per_token(const Model& model);

}  // namespace bitnet::runtime
