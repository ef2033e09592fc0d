// What every CUDA emitter returns: one self-contained translation unit and the launch facts
// its host side must agree on. The same text goes to NVRTC (for the GPU) and, in the tests,
// to the host compiler against the device shim (tests/codegen_cuda/host_emu).
#pragma once

#include <cstdint>
#include <string>

namespace bitnet::codegen_cuda {

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
};

// Programmatic dependent launch (sm_90+) in a kernel's text: with it a kernel may be scheduled while
// the kernel before it in the stream still runs (the launcher sets the driver's programmatic stream
// serialization attribute), issues the loads that do not depend on it (its weights), then waits for
// it (griddepcontrol.wait) before reading its outputs or writing anything. Kernel names get a suffix
// ("_pdl", "_pdle"); the instructions compile to nothing for sm_80.
enum class PdlMode {
  kOff,        // no griddepcontrol: the plain stream order (the text as before PDL existed)
  kAfterWait,  // wait for the previous kernel, then let the next one be scheduled
  kEarly,      // let the next kernel be scheduled at once, wait before the first dependent access
};

struct KernelSource {
  std::string name;    // the extern "C" entry point
  std::string source;  // a complete CUDA C++ translation unit (may be concatenated with others)
  // __launch_bounds__(threads, min_blocks): ptxas keeps registers <= 65536 / (threads * min_blocks).
  int threads = 0;
  int min_blocks = 1;
};

// The largest register count per thread that __launch_bounds__(threads, min_blocks) allows
// (65536 registers per SM on sm_80 and sm_90; 255 per thread at most).
int register_limit(const KernelSource& kernel);

}  // namespace bitnet::codegen_cuda
