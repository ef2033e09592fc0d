// NVRTC, loaded at run time (dlopen "libnvrtc.so.13", then "libnvrtc.so"): CUDA C++ text to PTX
// and CUBIN for one sm_XX, without a GPU and without linking the toolkit, so a binary that
// carries this still starts on machines without CUDA (TOOLCHAIN.md 3).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bitnet/result.h"

namespace bitnet::codegen_cuda {

struct NvrtcOptions {
  int sm = 90;                            // --gpu-architecture=sm_<sm>: PTX for it and a CUBIN
  std::vector<std::string> include_dirs;  // empty: default_cuda_include_dir() (for cuda_fp16.h)
  std::vector<std::string> extra;         // appended as they are
};

struct NvrtcOutput {
  std::string ptx;
  std::vector<uint8_t> cubin;
  std::string log;  // warnings; on failure the error carries it
};

// The toolkit's include directory: $CUDA_HOME/include, else the one found at configure time,
// else /usr/local/cuda/include. The kernels include only <cuda_fp16.h> from it.
std::string default_cuda_include_dir();

class Nvrtc {
 public:
  // The process-wide instance, or an error saying why the library could not be loaded.
  static Expected<const Nvrtc*> load();

  // "13.0"
  std::string version() const;
  // What distinguishes this NVRTC from another of the same version: the library file it was
  // loaded from (its resolved path, size and modification time in ns), for cache keys.
  std::string identity() const;
  // The command line compile() gives NVRTC: always --std=c++17, --fmad=false (no contraction
  // beyond the kernels' explicit intrinsics) and -lineinfo, then the target and includes.
  static std::vector<std::string> arguments(const NvrtcOptions& options);
  // Compiles `source` (named `name` in diagnostics) with arguments(options).
  Expected<NvrtcOutput> compile(const std::string& source, const std::string& name, const NvrtcOptions& options) const;

  struct Api;

 private:
  explicit Nvrtc(const Api* api) : api_(api) {}
  const Api* api_;
};

}  // namespace bitnet::codegen_cuda
