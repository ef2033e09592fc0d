// The host emulator as a runtime::cuda::Device (test only): device memory is host memory, a
// module is its CUDA C++ compiled for the host (EmuModule), launches run on the emulator one
// after another, and a graph records launches and replays them. So the CUDA backend's sessions
// (runtime/cuda/cuda_session.h) run here exactly as on a GPU, minus the GPU.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "emu_module.h"
#include "runtime/cuda/device.h"

namespace bitnet::testing {

class EmuDevice final : public runtime::cuda::Device {
 public:
  // `graphs`: whether capture() works (info().graphs), to test both session paths.
  explicit EmuDevice(bool graphs = true);
  ~EmuDevice() override;

  const runtime::cuda::DeviceInfo& info() const override { return info_; }
  Expected<runtime::cuda::DevicePtr> alloc(int64_t bytes) override;
  void release(runtime::cuda::DevicePtr p) override;
  Status upload(runtime::cuda::DevicePtr dst, const void* src, int64_t bytes) override;
  Status download(void* dst, runtime::cuda::DevicePtr src, int64_t bytes) override;
  Status fill_zero(runtime::cuda::DevicePtr dst, int64_t bytes) override;
  Status copy(runtime::cuda::DevicePtr dst, runtime::cuda::DevicePtr src, int64_t bytes) override;
  Status copy_2d(runtime::cuda::DevicePtr dst, int64_t dst_pitch, runtime::cuda::DevicePtr src, int64_t src_pitch,
                 int64_t width, int64_t rows) override;
  Expected<int> load_module(const runtime::cuda::ModuleImage& image) override;
  Status launch(int module, int kernel, runtime::cuda::Dim3 grid, int threads,
                std::span<const runtime::cuda::KernelArg> args, bool programmatic) override;
  Expected<int> capture(const std::function<Status()>& record) override;
  Status replay(int graph) override;
  void destroy_graph(int graph) override;
  Status synchronize() override { return Status::success(); }

  int64_t launches() const { return launches_; }  // kernels run
  // Makes the n-th kernel run from now fail (a device fault), for the tests of what follows one.
  void fail_launch_after(int64_t n) { fail_at_ = launches_ + n; }
  int64_t replays() const { return replays_; }
  int64_t graphs() const { return static_cast<int64_t>(graphs_.size()); }  // captured
  int64_t live_allocations() const { return static_cast<int64_t>(allocations_.size()); }
  // Launches run of the kernels whose names start with `prefix`.
  int64_t launches_of(const std::string& prefix) const {
    int64_t n = 0;
    for (const auto& [name, runs] : runs_by_kernel_) n += name.starts_with(prefix) ? runs : 0;
    return n;
  }

 private:
  struct Launch {
    int module, kernel;
    runtime::cuda::Dim3 grid;
    int threads;
    std::vector<runtime::cuda::KernelArg> args;
  };
  Status run(const Launch& l);
  bool owns(runtime::cuda::DevicePtr p, int64_t bytes) const;

  runtime::cuda::DeviceInfo info_;
  struct Module {
    std::shared_ptr<EmuModule> code;
    std::vector<void*> kernels;
    std::vector<std::string> names;
  };
  std::vector<Module> modules_;
  std::vector<std::pair<void*, int64_t>> allocations_;
  std::vector<std::vector<Launch>> graphs_;  // empty once destroyed
  std::vector<Launch>* recording_ = nullptr;
  int64_t launches_ = 0;
  int64_t replays_ = 0;
  int64_t fail_at_ = -1;
  std::map<std::string, int64_t> runs_by_kernel_;
};

}  // namespace bitnet::testing
