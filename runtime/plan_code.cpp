// memfd + dlopen loading of kernel images (see plan_code.h; TOOLCHAIN.md 2 measured it).
#include "runtime/plan_code.h"

#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace bitnet::runtime {
namespace {

Status check_elf(std::span<const uint8_t> image) {
  Elf64_Ehdr h;
  if (image.size() < sizeof h) return make_error("the code image is {} bytes, too short for an ELF file", image.size());
  std::memcpy(&h, image.data(), sizeof h);
  if (std::memcmp(h.e_ident, ELFMAG, SELFMAG) != 0) return make_error("the code image is not an ELF file");
  if (h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != ELFDATA2LSB || h.e_type != ET_DYN) {
    return make_error("the code image is not a 64-bit little-endian shared object");
  }
#if defined(__x86_64__)
  if (h.e_machine != EM_X86_64) return make_error("the code image is for ELF machine {}, not x86-64", h.e_machine);
#elif defined(__aarch64__)
  if (h.e_machine != EM_AARCH64) return make_error("the code image is for ELF machine {}, not AArch64", h.e_machine);
#endif
  return Status::success();
}

}  // namespace

LoadedCode::~LoadedCode() {
  if (handle_ != nullptr) ::dlclose(handle_);
  if (fd_ >= 0) ::close(fd_);
}

Expected<std::shared_ptr<LoadedCode>> LoadedCode::load(std::span<const uint8_t> image,
                                                       const std::vector<std::string>& symbols) {
  BITNET_RETURN_IF_ERROR(check_elf(image));
  const int fd = ::memfd_create("bitnet-plan-kernels", MFD_CLOEXEC);
  if (fd < 0) return make_error("memfd_create failed: {}", std::strerror(errno));
  for (size_t at = 0; at < image.size();) {
    const ssize_t n = ::write(fd, image.data() + at, image.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return make_error("cannot write the code image to memory: {}", std::strerror(err));
    }
    at += static_cast<size_t>(n);
  }
  // The descriptor stays open while the library is loaded: dlopen recognises a library it
  // holds by its path, so a later image written to a reused descriptor number would be
  // "found" as this one (another model's kernels, under the same symbol names).
  std::shared_ptr<LoadedCode> code(new LoadedCode());
  code->fd_ = fd;
  const std::string path = fmt::format("/proc/self/fd/{}", fd);
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return make_error("cannot load the plan's code: {}", ::dlerror());
  code->handle_ = handle;
  for (const std::string& symbol : symbols) {
    void* address = ::dlsym(handle, symbol.c_str());
    if (address == nullptr) return make_error("the plan's code has no kernel '{}'", symbol);
    code->kernels_.push_back(reinterpret_cast<abi::KernelFn>(address));
  }
  return code;
}

}  // namespace bitnet::runtime
