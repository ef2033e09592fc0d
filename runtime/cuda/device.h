// What the CUDA backend needs of a GPU, as an interface: device memory, copies, a loaded
// module's kernels, launches in one stream's order, and replayable graphs of launches. Two
// implementations: the CUDA driver (cuda_driver_device.h, loaded at run time with dlopen, so the
// binaries start on machines without CUDA) and, in the tests only, the host emulator that runs
// the same kernel text on the CPU (tests/codegen_cuda/emu_device.h).
//
// Every operation is ordered after the ones before it (one stream). Uploads read the host
// memory before they return; downloads return once the bytes are on the host.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "ir/support/expected.h"

namespace bitnet::runtime::cuda {

using DevicePtr = uint64_t;  // 0 is null

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
};

// A kernel parameter: a device pointer or a 32-bit int (what the generated kernels take).
struct KernelArg {
  bool is_int = false;
  DevicePtr pointer = 0;
  int32_t value = 0;
  static KernelArg ptr(DevicePtr p) { return {false, p, 0}; }
  static KernelArg int32(int32_t v) { return {true, 0, v}; }
};

// A module to load: its kernels by name, and the code in the forms a device may take: a CUBIN
// for one SM, the PTX the driver can compile for newer GPUs, the CUDA C++ text (what the host
// emulator compiles).
struct ModuleImage {
  std::vector<std::string> kernels;  // launch() names a kernel by its index here
  std::span<const uint8_t> cubin;
  std::string_view ptx;
  std::string_view source;
  int sm = 0;  // the CUBIN's compute capability (major * 10 + minor)
};

struct DeviceInfo {
  std::string name;                  // "NVIDIA H200", "host emulator"
  int sm = 0;                        // compute capability, major * 10 + minor
  int64_t memory = 0;                // bytes of device memory
  bool graphs = false;               // capture() records launches for replay()
  bool programmatic_launch = false;  // launches may set programmatic stream serialization (sm_90+)
};

class Device {
 public:
  virtual ~Device() = default;
  virtual const DeviceInfo& info() const = 0;

  virtual Expected<DevicePtr> alloc(int64_t bytes) = 0;  // contents undefined; 256-byte aligned
  virtual void release(DevicePtr p) = 0;
  virtual Status upload(DevicePtr dst, const void* src, int64_t bytes) = 0;
  virtual Status download(void* dst, DevicePtr src, int64_t bytes) = 0;
  virtual Status fill_zero(DevicePtr dst, int64_t bytes) = 0;
  virtual Status copy(DevicePtr dst, DevicePtr src, int64_t bytes) = 0;
  // `rows` rows of `width` bytes, each `src_pitch` / `dst_pitch` bytes after the one before.
  virtual Status copy_2d(DevicePtr dst, int64_t dst_pitch, DevicePtr src, int64_t src_pitch, int64_t width,
                         int64_t rows) = 0;

  // Loads a module; the id it returns names it in launch().
  virtual Expected<int> load_module(const ModuleImage& image) = 0;
  // Launches kernel `kernel` of module `module`. `programmatic`: with programmatic stream
  // serialization where info().programmatic_launch (ignored elsewhere; the kernels are correct
  // either way).
  virtual Status launch(int module, int kernel, Dim3 grid, int threads, std::span<const KernelArg> args,
                        bool programmatic) = 0;

  // Runs `record`, whose launches are captured into a graph instead of executed; returns the
  // graph's id for replay(). Only where info().graphs.
  virtual Expected<int> capture(const std::function<Status()>& record) = 0;
  virtual Status replay(int graph) = 0;
  virtual void destroy_graph(int graph) = 0;

  virtual Status synchronize() = 0;
};

}  // namespace bitnet::runtime::cuda
