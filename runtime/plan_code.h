// A plan's machine code in this process: the shared-object image is written to an anonymous
// memory file (memfd_create) and dlopen'ed through /proc/self/fd (no temp files, and glibc
// does the relocations), then each kernel's symbol is looked up. Unloaded with the last owner.
#pragma once

#include "ir/support/expected.h"
#include "schema/abi.h"

#include <memory>
#include <span>
#include <string>
#include <vector>

namespace bitnet::runtime {

class LoadedCode {
 public:
  // Checks that `image` is an ELF shared object for this machine before handing it to the
  // dynamic loader, then resolves `symbols` in order.
  static Expected<std::shared_ptr<LoadedCode>> load(std::span<const uint8_t> image,
                                                    const std::vector<std::string>& symbols);
  ~LoadedCode();
  LoadedCode(const LoadedCode&) = delete;
  LoadedCode& operator=(const LoadedCode&) = delete;

  const std::vector<abi::KernelFn>& kernels() const { return kernels_; }

 private:
  LoadedCode() = default;
  void* handle_ = nullptr;
  int fd_ = -1;  // the memfd the library was loaded from, open as long as it is loaded
  std::vector<abi::KernelFn> kernels_;
};

}  // namespace bitnet::runtime
