// Generated CUDA C++ compiled for the host against the device shim (host_emu/cuda_host_emu.h)
// and loaded with dlopen, so a test can launch the very kernel text NVRTC compiles.
#pragma once

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "codegen_cuda/kernel_source.h"
#include "host_emu/host_emu_api.h"

namespace bitnet::testing {

class EmuModule {
 public:
  // Compiles `source` with the host compiler (-O1, -ffp-contract=off, warnings as errors) into a
  // shared object with the emulator runtime. Objects are cached by content in the build tree
  // (each test process would otherwise rebuild them); the error carries the compiler output.
  static std::shared_ptr<EmuModule> build(const std::string& source, std::string* error);
  ~EmuModule();
  EmuModule(const EmuModule&) = delete;
  EmuModule& operator=(const EmuModule&) = delete;

  void* symbol(const std::string& name) const;

  // Launches `kernel` whose parameters are `pointers` then, where `has_int`, the int `value`
  // (the signatures of the generated kernels: every pointer type has the same ABI).
  std::string launch_pointers(const std::string& kernel, codegen_cuda::Dim3 grid, int threads,
                              const std::vector<void*>& pointers, bool has_int, int value) const;

  // Launches `kernel` (whose parameters must be exactly Args...) on the emulator; returns "" or
  // the emulator's error (a deadlock, a missing symbol).
  template <class... Args>
  std::string launch(const std::string& kernel, codegen_cuda::Dim3 grid, int threads, Args... args) const {
    using Fn = void (*)(Args...);
    struct Call {
      Fn fn;
      std::tuple<Args...> args;
    };
    void* fn = symbol(kernel);
    if (!fn) return "no symbol " + kernel;
    Call call{reinterpret_cast<Fn>(fn), std::tuple<Args...>(args...)};
    return launch_raw(
        grid, threads, [](void* p) { std::apply(static_cast<Call*>(p)->fn, static_cast<Call*>(p)->args); }, &call);
  }

 private:
  explicit EmuModule(void* handle) : handle_(handle) {}
  std::string launch_raw(codegen_cuda::Dim3 grid, int threads, void (*body)(void*), void* arg) const;
  void* handle_;
};

}  // namespace bitnet::testing
