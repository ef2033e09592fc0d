// The CUDA module cache (compiler/cuda_module_cache.h, runtime/cuda_module_file.h): what
// `--backend cuda` keeps of NVRTC's work in the plan cache. The file refuses damage; a miss
// compiles and stores, a hit compiles nothing and gives the same bytes; a refused entry is
// replaced; the key changes with everything NVRTC's output depends on; a cache that cannot be
// written still compiles; with NVRTC, a model's decode program compiled twice is compiled once.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "compiler/cuda_model.h"
#include "compiler/cuda_module_cache.h"
#include "runtime/cuda_module_file.h"
#include "runtime/plan_cache.h"
#include "test_support.h"

namespace bitnet::testing {
namespace {

namespace cc = codegen_cuda;
namespace fs = std::filesystem;

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

runtime::CudaModuleFile sample_module() {
  std::vector<uint8_t> cubin(3000);
  for (size_t i = 0; i < cubin.size(); ++i) cubin[i] = static_cast<uint8_t>(i * 31 + 7);
  return {.sm = 90,
          .material = "bitnet-cuda-module-cache-key\nsm=90\n",
          .note = "a note",
          .cubin = cubin,
          .ptx = ".version 8.0\n.target sm_90\n"};
}

TEST(CudaModuleCache, FileRoundTripsAndRefusesDamage) {
  TempDir dir;
  const fs::path path = dir / "m.cumod";
  const runtime::CudaModuleFile m = sample_module();
  ASSERT_TRUE(runtime::write_cuda_module(path.string(), m).ok());
  auto back = runtime::read_cuda_module(path.string());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->sm, 90);
  EXPECT_EQ(back->material, m.material);
  EXPECT_EQ(back->note, m.note);
  EXPECT_EQ(back->cubin, m.cubin);
  EXPECT_EQ(back->ptx, m.ptx);

  const std::vector<uint8_t> good = read_bytes(path);
  auto refused = [&](std::vector<uint8_t> bytes, const std::string& why) {
    write_bytes(path, bytes);
    auto r = runtime::read_cuda_module(path.string());
    EXPECT_FALSE(r.ok()) << why;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
    }
  };
  auto cut = good;
  cut.resize(good.size() - 100);
  refused(cut, "truncated");
  auto longer = good;
  longer.push_back(0);
  refused(longer, "truncated or appended");
  auto flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  refused(flipped, "checksum");
  auto magic = good;
  magic[0] = 'X';
  refused(magic, "not a CUDA module");
  auto huge = good;
  huge[16] = 0xff, huge[23] = 0x7f;  // the material's size
  refused(huge, "larger than the file");
  refused({'B', 'N'}, "too short");
  EXPECT_FALSE(runtime::read_cuda_module((dir / "missing.cumod").string()).ok());
}

TEST(CudaModuleCache, KeyNamesTheSourceTheTargetAndNvrtc) {
  const std::string source = "extern \"C\" __global__ void k() {}";
  const auto base = compiler::cuda_module_key("13.0", source, {.sm = 90});
  EXPECT_EQ(compiler::cuda_module_key("13.0", source, {.sm = 90}).hex, base.hex);
  EXPECT_EQ(base.hex.size(), 32u);
  EXPECT_NE(compiler::cuda_module_key("13.0", source + " ", {.sm = 90}).hex, base.hex);
  EXPECT_NE(compiler::cuda_module_key("13.0", source, {.sm = 80}).hex, base.hex);
  EXPECT_NE(compiler::cuda_module_key("12.8", source, {.sm = 90}).hex, base.hex);
  EXPECT_NE(compiler::cuda_module_key("13.0", source, {.sm = 90, .include_dirs = {"/other/cuda/include"}}).hex,
            base.hex);
  EXPECT_NE(compiler::cuda_module_key("13.0", source, {.sm = 90, .extra = {"-G"}}).hex, base.hex);
  EXPECT_NE(base.material.find("nvrtc_arguments=--std=c++17 --gpu-architecture=sm_90 --fmad=false"), std::string::npos)
      << base.material;
  // Another NVRTC library file of the same version (Nvrtc::identity), and the toolkit headers the
  // kernels include, as the include directory holds them now.
  EXPECT_NE(compiler::cuda_module_key("13.0 /lib/libnvrtc.so.13.0.48 size=1", source, {.sm = 90}).hex,
            compiler::cuda_module_key("13.0 /lib/libnvrtc.so.13.0.88 size=1", source, {.sm = 90}).hex);
  TempDir dir;
  const cc::NvrtcOptions headers{.sm = 90, .include_dirs = {dir.path().string()}};
  const auto absent = compiler::cuda_module_key("13.0", source, headers);
  write_bytes(dir / "cuda_fp16.h", {'a'});
  const auto one = compiler::cuda_module_key("13.0", source, headers);
  write_bytes(dir / "cuda_fp16.hpp", {'b'});
  const auto two = compiler::cuda_module_key("13.0", source, headers);
  write_bytes(dir / "cuda_fp16.hpp", {'c'});
  const auto changed = compiler::cuda_module_key("13.0", source, headers);
  EXPECT_NE(absent.hex, one.hex);
  EXPECT_NE(one.hex, two.hex);
  EXPECT_NE(two.hex, changed.hex);
  EXPECT_EQ(compiler::cuda_module_key("13.0", source, headers).hex, changed.hex);
}

// A stand-in for NVRTC that counts its compiles.
struct FakeCompiler {
  int calls = 0;
  Expected<cc::NvrtcOutput> operator()() {
    ++calls;
    return cc::NvrtcOutput{.ptx = "ptx " + std::to_string(calls), .cubin = {1, 2, 3, static_cast<uint8_t>(calls)}};
  }
};

TEST(CudaModuleCache, MissStoresHitLoadsAndARefusedEntryIsReplaced) {
  TempDir dir;
  std::vector<std::string> warnings, infos;
  const compiler::CudaModuleCacheOptions cache{
      .cache_dir = (dir / "cache").string(), .note = "n", .verbose = true, .log = [&](LogLevel l, std::string_view s) {
        (l == LogLevel::kWarning ? warnings : infos).emplace_back(s);
      }};
  const auto key = compiler::cuda_module_key("13.0", "source", {.sm = 90});
  FakeCompiler nvrtc;
  auto compile = [&] { return nvrtc(); };
  bool hit = true;
  auto first = compiler::cached_cuda_module(key, 90, cache, compile, &hit);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_FALSE(hit);
  EXPECT_EQ(nvrtc.calls, 1);
  const fs::path path = runtime::PlanCache(cache.cache_dir).cuda_module_path(key.hex);
  ASSERT_TRUE(fs::exists(path));
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_NE(infos[0].find("stored"), std::string::npos) << infos[0];

  auto second = compiler::cached_cuda_module(key, 90, cache, compile, &hit);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_TRUE(hit);
  EXPECT_EQ(nvrtc.calls, 1);
  EXPECT_EQ(second->cubin, first->cubin);
  EXPECT_EQ(second->ptx, first->ptx);
  EXPECT_NE(infos.back().find("from the plan cache"), std::string::npos) << infos.back();

  // Damaged: refused with a warning, compiled again, replaced by a good entry.
  auto bytes = read_bytes(path);
  bytes[bytes.size() / 2] ^= 1;
  write_bytes(path, bytes);
  auto third = compiler::cached_cuda_module(key, 90, cache, compile, &hit);
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(hit);
  EXPECT_EQ(nvrtc.calls, 2);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("refusing the cached CUDA module"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("checksum"), std::string::npos) << warnings[0];
  EXPECT_TRUE(runtime::read_cuda_module(path.string()).ok());

  // A valid module under another key's name (or for another SM) is not that key's module.
  const auto other = compiler::cuda_module_key("13.0", "another source", {.sm = 90});
  fs::copy_file(path, runtime::PlanCache(cache.cache_dir).cuda_module_path(other.hex));
  auto fourth = compiler::cached_cuda_module(other, 90, cache, compile, &hit);
  ASSERT_TRUE(fourth.ok());
  EXPECT_FALSE(hit);
  EXPECT_EQ(nvrtc.calls, 3);
  EXPECT_NE(warnings.back().find("another source or target"), std::string::npos) << warnings.back();
  EXPECT_EQ(fourth->ptx, "ptx 3");

  // Without a cache directory nothing is kept.
  auto plain = compiler::cached_cuda_module(key, 90, {}, compile, &hit);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(hit);
  EXPECT_EQ(nvrtc.calls, 4);
}

// Callers missing the same key at once compile it once: the second waits on the key's lock and
// loads the first one's module.
TEST(CudaModuleCache, ConcurrentMissesCompileOnce) {
  TempDir dir;
  const compiler::CudaModuleCacheOptions cache{.cache_dir = (dir / "cache").string()};
  const auto key = compiler::cuda_module_key("13.0", "source", {.sm = 90});
  std::atomic<int> compiles{0};
  auto slow = [&]() -> Expected<cc::NvrtcOutput> {
    const int n = ++compiles;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return cc::NvrtcOutput{.ptx = "ptx " + std::to_string(n), .cubin = {9, 9, static_cast<uint8_t>(n)}};
  };
  Expected<cc::NvrtcOutput> results[2] = {make_error("not run"), make_error("not run")};
  bool hits[2] = {false, false};
  std::thread first([&] { results[0] = compiler::cached_cuda_module(key, 90, cache, slow, &hits[0]); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the first holds the lock by now
  results[1] = compiler::cached_cuda_module(key, 90, cache, slow, &hits[1]);
  first.join();
  ASSERT_TRUE(results[0].ok() && results[1].ok());
  EXPECT_EQ(compiles.load(), 1);
  EXPECT_FALSE(hits[0]);
  EXPECT_TRUE(hits[1]);
  EXPECT_EQ(results[1]->ptx, results[0]->ptx);
  EXPECT_EQ(results[1]->cubin, results[0]->cubin);
}

TEST(CudaModuleCache, AnUnwritableCacheStillCompilesAndErrorsAreNotStored) {
  TempDir dir;
  const fs::path blocker = dir / "not-a-directory";
  write_bytes(blocker, {1});
  std::vector<std::string> warnings;
  const compiler::CudaModuleCacheOptions cache{.cache_dir = blocker.string(),
                                               .log = [&](LogLevel l, std::string_view s) {
                                                 if (l == LogLevel::kWarning) warnings.emplace_back(s);
                                               }};
  const auto key = compiler::cuda_module_key("13.0", "source", {.sm = 90});
  FakeCompiler nvrtc;
  auto out = compiler::cached_cuda_module(key, 90, cache, [&] { return nvrtc(); });
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(nvrtc.calls, 1);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("cannot store the CUDA module"), std::string::npos) << warnings[0];

  const compiler::CudaModuleCacheOptions writable{.cache_dir = (dir / "cache").string()};
  auto failed = compiler::cached_cuda_module(key, 90, writable, []() -> Expected<cc::NvrtcOutput> {
    return make_error("NVRTC failed to compile x for sm_90");
  });
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("NVRTC failed"), std::string::npos);
  EXPECT_FALSE(fs::exists(runtime::PlanCache(writable.cache_dir).cuda_module_path(key.hex)));
}

// With NVRTC: a shared model's decode program for sm_80 compiled twice through the cache is
// compiled once, and the second program has the first one's CUBIN and PTX.
TEST(CudaModuleCache, ADecodeProgramIsCompiledOncePerMachine) {
  BITNET_REQUIRE_SHARED(shared);
  auto nvrtc = cc::Nvrtc::load();
  if (!nvrtc.ok()) GTEST_SKIP() << nvrtc.error().message;
  const fs::path model_path = shared / "models/bitnet-i2s/bitnet-tiny-mha.i2_s.gguf";
  auto model = runtime::Model::open(model_path.string());
  ASSERT_TRUE(model.ok()) << model.error().message;
  TempDir dir;
  std::vector<std::string> infos;
  const compiler::CudaCompileOptions options{
      .sm = 80,
      .max_tokens = 8,
      .cache = {.cache_dir = (dir / "cache").string(), .verbose = true, .log = [&](LogLevel, std::string_view s) {
                  infos.emplace_back(s);
                }}};
  auto first = compiler::compile_cuda_program(**model, 64, options);
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_NE(infos[0].find("NVRTC compiled"), std::string::npos) << infos[0];
  auto second = compiler::compile_cuda_program(**model, 64, options);
  ASSERT_TRUE(second.ok()) << second.error().message;
  ASSERT_EQ(infos.size(), 2u);
  EXPECT_NE(infos[1].find("from the plan cache"), std::string::npos) << infos[1];
  EXPECT_FALSE((*first)->cubin.empty());
  EXPECT_EQ((*second)->cubin, (*first)->cubin);
  EXPECT_EQ((*second)->ptx, (*first)->ptx);
  // Another context size is another source, so another module.
  auto longer = compiler::compile_cuda_program(**model, 128, options);
  ASSERT_TRUE(longer.ok());
  EXPECT_NE(infos.back().find("NVRTC compiled"), std::string::npos) << infos.back();
  auto entries = runtime::PlanCache(options.cache.cache_dir).list();
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_TRUE((*entries)[0].cuda_module && (*entries)[0].valid);
  EXPECT_EQ((*entries)[0].target, "cuda-sm_80");
  EXPECT_NE((*entries)[0].model.find("bitnet-tiny-mha.i2_s.gguf"), std::string::npos) << (*entries)[0].model;
}

}  // namespace
}  // namespace bitnet::testing
