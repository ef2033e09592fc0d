// NVRTC through the plan cache (see cuda_module_cache.h).
#include "compiler/cuda_module_cache.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "runtime/cuda_module_file.h"
#include "runtime/plan_cache.h"
#include "runtime/plan_format.h"

namespace bitnet::compiler {
namespace cc = codegen_cuda;

namespace {

// Bump when the meaning of a cached module changes without its key text changing.
constexpr int kModuleCacheVersion = 1;

std::span<const uint8_t> text_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// xxh3-128 of the headers the kernels include, as the include directories hold them now.
std::string header_digest(const cc::NvrtcOptions& options) {
  std::vector<std::string> dirs = options.include_dirs;
  if (dirs.empty()) dirs.push_back(cc::default_cuda_include_dir());
  std::string contents;
  for (const std::string& dir : dirs) {
    for (const char* name : {"cuda_fp16.h", "cuda_fp16.hpp"}) {
      std::ifstream in(dir + "/" + name, std::ios::binary);
      contents += std::string(name) + (in ? ":" : ": absent\n");
      if (in) contents.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  return runtime::to_hex(runtime::xxh3_128(text_bytes(contents)));
}

}  // namespace

CudaModuleKey cuda_module_key(std::string_view nvrtc_identity, const std::string& source,
                              const cc::NvrtcOptions& options) {
  std::string arguments;
  for (const std::string& a : cc::Nvrtc::arguments(options)) arguments += (arguments.empty() ? "" : " ") + a;
  CudaModuleKey key;
  key.material = fmt::format(
      "bitnet-cuda-module-cache-key\n"
      "module_cache_version={}\nnvrtc={}\nnvrtc_arguments={}\nheaders_xxh3_128={}\nsm={}\n"
      "source_xxh3_128={}\nsource_bytes={}\n",
      kModuleCacheVersion, nvrtc_identity, arguments, header_digest(options), options.sm,
      runtime::to_hex(runtime::xxh3_128(text_bytes(source))), source.size());
  key.hex = runtime::to_hex(runtime::xxh3_128(text_bytes(key.material)));
  return key;
}

Expected<cc::NvrtcOutput> compile_cuda_module(const cc::Nvrtc& nvrtc, const std::string& source,
                                              const std::string& name, const cc::NvrtcOptions& options,
                                              const CudaModuleCacheOptions& cache, bool* hit) {
  if (hit) *hit = false;
  if (cache.cache_dir.empty()) return nvrtc.compile(source, name, options);
  return cached_cuda_module(
      cuda_module_key(nvrtc.identity(), source, options), options.sm, cache,
      [&] { return nvrtc.compile(source, name, options); }, hit);
}

Expected<cc::NvrtcOutput> cached_cuda_module(const CudaModuleKey& key, int sm, const CudaModuleCacheOptions& cache,
                                             const std::function<Expected<cc::NvrtcOutput>()>& compile, bool* hit) {
  if (hit) *hit = false;
  if (cache.cache_dir.empty()) return compile();
  auto say = [&](LogLevel level, const std::string& line) {
    if (cache.log && (level != LogLevel::kInfo || cache.verbose)) cache.log(level, line);
  };
  const runtime::PlanCache plans(cache.cache_dir);
  const std::string path = plans.cuda_module_path(key.hex);

  // The stored module when it is this key's; `complain`: say why one that is there is refused.
  auto lookup = [&](bool complain) -> std::optional<cc::NvrtcOutput> {
    std::error_code missing;
    if (!std::filesystem::exists(path, missing)) return std::nullopt;
    auto stored = runtime::read_cuda_module(path);
    if (stored.ok() && stored->material == key.material && stored->sm == sm) {
      plans.touch(path);
      say(LogLevel::kInfo, fmt::format("cuda: kernels for sm_{} from the plan cache ({})", sm, path));
      if (hit) *hit = true;
      return cc::NvrtcOutput{.ptx = std::move(stored->ptx), .cubin = std::move(stored->cubin), .log = {}};
    }
    if (complain) {
      say(LogLevel::kWarning, fmt::format("bitnet: warning: refusing the cached CUDA module ({}); compiling again",
                                          stored.ok() ? fmt::format("'{}' was made from another source or target", path)
                                                      : stored.error().message));
    }
    return std::nullopt;
  };
  if (auto found = lookup(true)) return std::move(*found);

  // Of the processes that miss this key at once, one compiles (holding the key's lock) and the
  // others wait for its module, as for plans (runtime::PlanCache::lock_key).
  const Status writable = plans.prepare();
  std::unique_ptr<runtime::PlanCache::KeyLock> lock;
  if (writable.ok()) {
    auto locked = plans.lock_key(key.hex, cache.lock_timeout_s, [&] {
      say(LogLevel::kInfo,
          fmt::format("cuda: waiting for another process compiling these kernels (lock {})", plans.lock_path(key.hex)));
    });
    if (locked.ok() && *locked) {
      lock = std::move(*locked);
      if (auto found = lookup(false)) return std::move(*found);
    }
  }

  const auto start = std::chrono::steady_clock::now();
  BITNET_ASSIGN_OR_RETURN(cc::NvrtcOutput out, compile());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const Status stored =
      writable.ok()
          ? runtime::write_cuda_module(
                path, {.sm = sm, .material = key.material, .note = cache.note, .cubin = out.cubin, .ptx = out.ptx})
          : writable;
  if (!stored.ok()) {
    say(LogLevel::kWarning,
        fmt::format("bitnet: warning: cannot store the CUDA module in the plan cache ({})", stored.error().message));
  } else {
    say(LogLevel::kInfo,
        fmt::format("cuda: NVRTC compiled the kernels for sm_{} in {:.0f} ms; stored {}", sm, ms, path));
  }
  return out;
}

}  // namespace bitnet::compiler
