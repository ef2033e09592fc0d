// How long opening (mmap + parse + validate) a GGUF file takes, and hashing it.
// Usage: gguf_bench [--benchmark_filter=...] [MODEL.gguf]   (default: models/stories260K.gguf)
#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/sha256.h"

#include <benchmark/benchmark.h>

#include <string>

namespace {

std::string g_model = std::string(BITNET_SOURCE_DIR) + "/models/stories260K.gguf";

void BM_OpenGguf(benchmark::State& state) {
  for (auto _ : state) {
    auto file = bitnet::gguf::GgufFile::open(g_model);
    if (!file.ok()) {
      state.SkipWithError(file.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(file->tensors().size());
  }
}
BENCHMARK(BM_OpenGguf)->Unit(benchmark::kMillisecond);

void BM_Sha256File(benchmark::State& state) {
  auto file = bitnet::gguf::GgufFile::open(g_model);
  if (!file.ok()) {
    state.SkipWithError(file.error().message.c_str());
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(bitnet::gguf::sha256_hex(file->bytes()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * file->file_size()));
}
BENCHMARK(BM_Sha256File)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (argc > 1) g_model = argv[1];
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
