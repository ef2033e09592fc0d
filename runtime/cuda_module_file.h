// A compiled CUDA module in the plan cache (cuda/KEY.cumod): the CUBIN and PTX that NVRTC made
// of one CUDA C++ source for one SM, so that `--backend cuda` on a GGUF compiles a model's
// kernels once per machine and toolkit (compiler/cuda_module_cache.h). The kernels are
// specialised to shapes, not weights, so models of one shape share a module.
//
// Layout (little-endian): magic "BNCUMOD1", u32 sm, u32 reserved (0), u64 sizes of the key
// material, the note, the CUBIN and the PTX, then those four byte strings, then the xxh3-128 of
// everything before it (lo, hi). A short, long or altered file is refused with what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/support/expected.h"

namespace bitnet::runtime {

inline constexpr const char* kCudaModuleExtension = ".cumod";

struct CudaModuleFile {
  int sm = 0;
  std::string material;  // the cache key's text (what the module was compiled from and how)
  std::string note;      // for `bitnet cache list`: "21 kernels, 4096 cells, first for MODEL"
  std::vector<uint8_t> cubin;
  std::string ptx;
};

// Replaces `path` atomically (plan_files.h), so a reader never sees half a module.
Status write_cuda_module(const std::string& path, const CudaModuleFile& module);
Expected<CudaModuleFile> read_cuda_module(const std::string& path);

}  // namespace bitnet::runtime
