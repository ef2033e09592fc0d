// Measurements behind `bitnet bench`, written on the public library: prompt processing (ppN)
// and generation (tgN) throughput of a model's contexts, and the memory read bandwidth of this
// machine, which with Model::decode_bytes_per_token gives the bandwidth roofline.
#pragma once

#include "bitnet/context.h"
#include "bitnet/result.h"

#include <memory>

#include <string>
#include <vector>

namespace bitnet::tools {

struct BenchStats {
  std::string test;  // "pp128" / "tg64"
  int threads = 0;
  int batch = 1;    // sequences decoded together (bench_batched); tokens/s are of all of them
  double mean = 0;  // tokens per second
  double stddev = 0;
  std::vector<double> samples;
};

// ppN: n_prompt tokens (calls of at most n_batch) into an empty context, `repetitions` times after a warm-up
// (at least one run and 0.25 s).
Expected<BenchStats> bench_prompt(const std::shared_ptr<const Model>& model, int64_t n_prompt, int threads,
                                  int repetitions);
// tgN: n_gen single-token steps from an empty cache, `repetitions` times after a warm-up
// (at least one run and 0.25 s).
Expected<BenchStats> bench_generate(const std::shared_ptr<const Model>& model, int64_t n_gen, int threads,
                                    int repetitions);

// As llama-batched-bench: `batch` sequences each get an n_prompt-token prompt (calls of up to
// the context's n_batch tokens, whole prompts where they fit), then n_gen steps decode one
// token of every sequence together (the weights are read once per step for all of them).
// Returns {ppN, tgN} with aggregate tokens/s (batch * n_prompt / prefill time, batch * n_gen /
// decode time); either is skipped when its count is 0.
Expected<std::vector<BenchStats>> bench_batched(const std::shared_ptr<const Model>& model, int64_t n_prompt,
                                                int64_t n_gen, int batch, int threads, int repetitions);

// Read bandwidth in GB/s (1e9 bytes/s) streaming a buffer much larger than the caches with
// `threads` threads: the best of single-stream and four-stream prefetching reads, a few
// passes each, on 2 MiB pages where the kernel gives them (0 when the buffer cannot be mapped).
double measure_read_bandwidth(int threads, size_t bytes = size_t{1} << 30);

}  // namespace bitnet::tools
