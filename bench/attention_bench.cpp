// Decode (and prefill) attention kernels of the CPU backend at the BitNet b1.58 2B4T shape
// (20 query heads, 5 KV heads, head_dim 128), one thread, next to the reference kernel; and
// the prefill of the small test models' shapes (bitnet-tiny-mha: 4 heads of 64, b158-tiny-gqa:
// 8 heads of 32 on 2 KV heads), where attention is half of the prompt time.
// Usage: attention_bench [--benchmark_filter=...]
#include "codegen_cpu/jit.h"
#include "reference/kernels.h"

#include <benchmark/benchmark.h>

#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace bitnet;
using abi::KernelArgs;

struct Shape {
  int64_t heads, kv_heads, dim;
};
constexpr Shape k2b4t{20, 5, 128}, kTinyMha{4, 4, 64}, kTinyGqa{8, 2, 32};
constexpr int64_t kCells = 4096;

ir::Type f32(int64_t cols) {
  return ir::Type{ir::DType::F32, {ir::Dim::tokens(), ir::Dim{cols}}};
}

abi::KernelFn compile(const Shape& shape, bool fused, benchmark::State& state, const std::string& target = "host") {
  const int64_t kHeads = shape.heads, kKvHeads = shape.kv_heads, kDim = shape.dim;
  static std::map<std::string, Expected<std::unique_ptr<codegen::Jit>>> jits;
  auto it = jits.find(target);
  if (it == jits.end()) {
    codegen::JitOptions options;
    options.target = target;
    it = jits.emplace(target, codegen::Jit::create(options)).first;
  }
  auto& jit = it->second;
  if (!jit.ok()) {
    state.SkipWithError(jit.error().message.c_str());
    return nullptr;
  }
  codegen::KernelDesc d;
  d.op = fused ? ir::OpKind::RopeAttention : ir::OpKind::Attention;
  d.attrs = {{"layer", int64_t{0}}, {"n_head", kHeads}, {"n_head_kv", kKvHeads}, {"head_dim", kDim}};
  if (fused) {
    d.attrs.push_back({"style", std::string("neox")});
    d.attrs.push_back({"freq_base", 500000.0});
    d.attrs.push_back({"freq_scale", 1.0});
    d.operands = {f32((kHeads + 2 * kKvHeads) * kDim)};
  } else {
    d.operands = {f32(kHeads * kDim), f32(kKvHeads * kDim), f32(kKvHeads * kDim)};
  }
  d.result = f32(kHeads * kDim);
  auto k = (*jit)->compile_one(d);
  if (!k.ok()) {
    state.SkipWithError(k.error().message.c_str());
    return nullptr;
  }
  return k->fn;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A layer cache with random F16 entries in every cell (attention only reads the window).
std::vector<uint16_t> random_cache(const Shape& shape, uint32_t seed) {
  const int64_t kKvHeads = shape.kv_heads, kDim = shape.dim;
  const std::vector<float> f = random_floats(static_cast<size_t>(kCells * kKvHeads * kDim), seed);
  std::vector<uint16_t> h(f.size());
  for (size_t i = 0; i < f.size(); ++i) h[i] = ref::fp32_to_fp16(f[i]);
  return h;
}

// tokens = 1: decode at position `pos` (state.range(0)); tokens > 1: a prefill chunk from 0.
void run_kernel(benchmark::State& state, const Shape& shape, bool fused, int64_t tokens,
                const std::string& target = "host") {
  const int64_t kHeads = shape.heads, kKvHeads = shape.kv_heads, kDim = shape.dim;
  abi::KernelFn fn = compile(shape, fused, state, target);
  if (fn == nullptr) return;
  const int64_t pos = tokens == 1 ? state.range(0) : 0;
  const int64_t width = fused ? (kHeads + 2 * kKvHeads) * kDim : kHeads * kDim;
  const auto q = random_floats(static_cast<size_t>(tokens * width), 1);
  const auto k = random_floats(static_cast<size_t>(tokens * kKvHeads * kDim), 2);
  const auto v = random_floats(static_cast<size_t>(tokens * kKvHeads * kDim), 3);
  std::vector<uint16_t> k_cache = random_cache(shape, 4), v_cache = random_cache(shape, 5);
  std::vector<float> out(static_cast<size_t>(tokens * kHeads * kDim)), scratch(4 * kCells + 12 * kDim);
  KernelArgs args{};
  args.in[0] = q.data();
  args.in[1] = k.data();
  args.in[2] = v.data();
  args.out = out.data();
  args.n_tokens = tokens;
  args.pos = pos;
  args.kv_k = k_cache.data();
  args.kv_v = v_cache.data();
  args.kv_cells = kCells;
  args.scratch = scratch.data();
  args.scratch_stride = static_cast<int64_t>(scratch.size() * 4);
  for (auto _ : state) {
    fn(&args, 0, kHeads);
    benchmark::DoNotOptimize(out.data());
  }
  // K and V bytes of the window the heads read, per second.
  const int64_t window = pos + tokens;
  state.SetBytesProcessed(state.iterations() * 2 * window * kKvHeads * kDim * 2);
}

void BM_DecodeAttention(benchmark::State& state) {
  run_kernel(state, k2b4t, false, 1);
}
void BM_DecodeRopeAttention(benchmark::State& state) {
  run_kernel(state, k2b4t, true, 1);
}
void BM_PrefillRopeAttention(benchmark::State& state) {
  run_kernel(state, k2b4t, true, state.range(0));
}
void BM_PrefillRopeAttentionTinyMha(benchmark::State& state) {
  run_kernel(state, kTinyMha, true, state.range(0));
}
void BM_PrefillRopeAttentionTinyGqa(benchmark::State& state) {
  run_kernel(state, kTinyGqa, true, state.range(0));
}
void BM_PrefillRopeAttentionTinyMhaX86_64_v3(benchmark::State& state) {
  run_kernel(state, kTinyMha, true, state.range(0), "x86-64-v3");
}
void BM_PrefillRopeAttentionTinyGqaX86_64_v3(benchmark::State& state) {
  run_kernel(state, kTinyGqa, true, state.range(0), "x86-64-v3");
}
// The AVX2 build (x86-64-v3): 256-bit vectors, query blocks of 2 heads.
void BM_DecodeAttentionX86_64_v3(benchmark::State& state) {
  run_kernel(state, k2b4t, false, 1, "x86-64-v3");
}

// The reference kernel (runtime/reference) at the same shape, for scale.
void BM_DecodeAttentionReference(benchmark::State& state) {
  const int64_t kHeads = k2b4t.heads, kKvHeads = k2b4t.kv_heads, kDim = k2b4t.dim;
  const int64_t pos = state.range(0);
  const auto q = random_floats(static_cast<size_t>(kHeads * kDim), 1);
  std::vector<uint16_t> k_cache = random_cache(k2b4t, 4), v_cache = random_cache(k2b4t, 5);
  std::vector<float> out(static_cast<size_t>(kHeads * kDim));
  const ref::AttentionShape shape{kHeads, kKvHeads, kDim};
  const ref::KvLayerView kv{k_cache.data(), v_cache.data(), kCells};
  for (auto _ : state) {
    ref::attention(q.data(), 1, pos, shape, kv, ref::Mode::kDecode, out.data());
    benchmark::DoNotOptimize(out.data());
  }
}

BENCHMARK(BM_DecodeAttention)->Arg(128)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeRopeAttention)->Arg(128)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeAttentionX86_64_v3)->Arg(128)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeAttentionReference)->Arg(128)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PrefillRopeAttention)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PrefillRopeAttentionTinyMha)->Arg(128)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PrefillRopeAttentionTinyGqa)->Arg(128)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PrefillRopeAttentionTinyMhaX86_64_v3)->Arg(128)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PrefillRopeAttentionTinyGqaX86_64_v3)->Arg(128)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
