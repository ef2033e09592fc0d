// NVRTC through the plan cache: `--backend cuda` on a GGUF compiles a model's kernels for the
// device once per machine and toolkit, and later starts load the CUBIN and PTX from
// cuda/KEY.cumod (runtime/cuda_module_file.h, listed and pruned by `bitnet cache`). The key
// names everything NVRTC's output depends on: the source text's hash, NVRTC's version and its
// whole command line (target SM and include directory). Kernels are specialised to shapes, not
// weights, so models of one shape share a module; the weights are repacked from the GGUF at
// upload as without the cache.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "bitnet/log.h"
#include "codegen_cuda/nvrtc.h"

namespace bitnet::compiler {

struct CudaModuleCacheOptions {
  std::string cache_dir;  // the plan cache's root; empty: compile without the cache
  std::string note;       // stored with the module for `bitnet cache list`
  // Warnings (a refused entry, a cache that cannot be written) and, with verbose, hits,
  // misses and stores.
  bool verbose = false;
  std::function<void(LogLevel level, std::string_view line)> log;
  // How long a miss waits for another process compiling the same key before compiling too.
  double lock_timeout_s = 600;
};

// The cache key text of `source` compiled by the NVRTC `nvrtc_identity` names (Nvrtc::identity:
// version and library file) with `options`, and its hex name. It also hashes the toolkit headers
// the kernels include (cuda_fp16.h/.hpp in the include directories), read now.
struct CudaModuleKey {
  std::string material;
  std::string hex;
};
CudaModuleKey cuda_module_key(std::string_view nvrtc_identity, const std::string& source,
                              const codegen_cuda::NvrtcOptions& options);

// The module of `key` for `sm`: the cached one when there is a valid one made from the same key
// (a hit marks it used), else `compile()`'s, stored. Callers that miss the same key at once
// compile it once: the others wait on the key's lock (locks/KEY.lock, at most lock_timeout_s)
// and then load its module. An entry that is unreadable, altered or from another key is refused
// with a warning and replaced; a cache that cannot be written is a warning; compile errors are
// errors. `hit` (optional) says which.
Expected<codegen_cuda::NvrtcOutput> cached_cuda_module(
    const CudaModuleKey& key, int sm, const CudaModuleCacheOptions& cache,
    const std::function<Expected<codegen_cuda::NvrtcOutput>()>& compile, bool* hit = nullptr);

// NVRTC's CUBIN and PTX of `source` for options.sm through the cache (none when
// cache.cache_dir is empty).
Expected<codegen_cuda::NvrtcOutput> compile_cuda_module(const codegen_cuda::Nvrtc& nvrtc, const std::string& source,
                                                        const std::string& name,
                                                        const codegen_cuda::NvrtcOptions& options,
                                                        const CudaModuleCacheOptions& cache, bool* hit = nullptr);

}  // namespace bitnet::compiler
