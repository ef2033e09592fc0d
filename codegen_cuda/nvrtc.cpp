#include "codegen_cuda/nvrtc.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <climits>
#include <cstdint>

#include <cstdlib>
#include <memory>
#include <mutex>

namespace bitnet::codegen_cuda {

// The few entry points used, declared here so that nothing needs nvrtc.h at build time. The
// ABI (an int result code, an opaque program handle) is stable across NVRTC versions.
struct Nvrtc::Api {
  using Program = void*;
  const char* (*get_error_string)(int);
  int (*version)(int*, int*);
  int (*create_program)(Program*, const char*, const char*, int, const char* const*, const char* const*);
  int (*destroy_program)(Program*);
  int (*compile_program)(Program, int, const char* const*);
  int (*get_log_size)(Program, size_t*);
  int (*get_log)(Program, char*);
  int (*get_ptx_size)(Program, size_t*);
  int (*get_ptx)(Program, char*);
  int (*get_cubin_size)(Program, size_t*);
  int (*get_cubin)(Program, char*);
};

namespace {

template <class F>
bool bind(void* handle, const char* symbol, F& fn) {
  fn = reinterpret_cast<F>(dlsym(handle, symbol));
  return fn != nullptr;
}

Expected<const Nvrtc::Api*> load_api() {
  void* handle = nullptr;
  std::string tried;
  for (const char* soname : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"}) {
    handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (handle) break;
    tried += std::string(tried.empty() ? "" : "; ") + dlerror();
  }
  if (!handle) return Error{"NVRTC not available (" + tried + ")"};
  static Nvrtc::Api api;
  const bool ok = bind(handle, "nvrtcGetErrorString", api.get_error_string) &&
                  bind(handle, "nvrtcVersion", api.version) && bind(handle, "nvrtcCreateProgram", api.create_program) &&
                  bind(handle, "nvrtcDestroyProgram", api.destroy_program) &&
                  bind(handle, "nvrtcCompileProgram", api.compile_program) &&
                  bind(handle, "nvrtcGetProgramLogSize", api.get_log_size) &&
                  bind(handle, "nvrtcGetProgramLog", api.get_log) &&
                  bind(handle, "nvrtcGetPTXSize", api.get_ptx_size) && bind(handle, "nvrtcGetPTX", api.get_ptx) &&
                  bind(handle, "nvrtcGetCUBINSize", api.get_cubin_size) && bind(handle, "nvrtcGetCUBIN", api.get_cubin);
  if (!ok) return Error{"NVRTC library lacks an expected entry point"};
  return &api;
}

}  // namespace

std::string default_cuda_include_dir() {
  if (const char* home = std::getenv("CUDA_HOME"); home && *home) return std::string(home) + "/include";
#ifdef BITNET_CUDA_INCLUDE_DIR
  return BITNET_CUDA_INCLUDE_DIR;
#else
  return "/usr/local/cuda/include";
#endif
}

Expected<const Nvrtc*> Nvrtc::load() {
  static std::once_flag once;
  static std::unique_ptr<Expected<const Nvrtc*>> loaded;
  std::call_once(once, [] {
    Expected<const Api*> api = load_api();
    if (!api) {
      loaded = std::make_unique<Expected<const Nvrtc*>>(api.error());
    } else {
      static const Nvrtc instance(*api);
      loaded = std::make_unique<Expected<const Nvrtc*>>(&instance);
    }
  });
  return *loaded;
}

std::string Nvrtc::version() const {
  int major = 0, minor = 0;
  api_->version(&major, &minor);
  return std::to_string(major) + "." + std::to_string(minor);
}

std::vector<std::string> Nvrtc::arguments(const NvrtcOptions& options) {
  std::vector<std::string> args = {"--std=c++17", "--gpu-architecture=sm_" + std::to_string(options.sm), "--fmad=false",
                                   "-lineinfo"};
  if (options.include_dirs.empty()) {
    args.push_back("-I" + default_cuda_include_dir());
  } else {
    for (const std::string& dir : options.include_dirs) args.push_back("-I" + dir);
  }
  args.insert(args.end(), options.extra.begin(), options.extra.end());
  return args;
}

std::string Nvrtc::identity() const {
  Dl_info info{};
  std::string out = version();
  if (dladdr(reinterpret_cast<void*>(api_->version), &info) != 0 && info.dli_fname != nullptr) {
    struct stat st {};
    char resolved[PATH_MAX];
    const char* path = realpath(info.dli_fname, resolved) != nullptr ? resolved : info.dli_fname;
    out += std::string(" ") + path;
    if (::stat(path, &st) == 0) {
      out += " size=" + std::to_string(st.st_size) + " mtime_ns=" +
             std::to_string(static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec);
    }
  }
  return out;
}

Expected<NvrtcOutput> Nvrtc::compile(const std::string& source, const std::string& name,
                                     const NvrtcOptions& options) const {
  const std::vector<std::string> args = arguments(options);
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());

  Api::Program program = nullptr;
  if (int rc = api_->create_program(&program, source.c_str(), name.c_str(), 0, nullptr, nullptr); rc != 0) {
    return Error{std::string("nvrtcCreateProgram: ") + api_->get_error_string(rc)};
  }
  NvrtcOutput out;
  const int rc = api_->compile_program(program, static_cast<int>(argv.size()), argv.data());
  size_t size = 0;
  api_->get_log_size(program, &size);
  if (size > 1) {
    out.log.resize(size);
    api_->get_log(program, out.log.data());
    out.log.resize(size - 1);
  }
  auto fail = [&](const std::string& what) {
    api_->destroy_program(&program);
    return Error{what};
  };
  if (rc != 0)
    return fail("NVRTC failed to compile " + name + " for sm_" + std::to_string(options.sm) + " (" +
                api_->get_error_string(rc) + "):\n" + out.log);
  if (api_->get_ptx_size(program, &size) != 0) return fail("nvrtcGetPTXSize failed");
  out.ptx.resize(size);
  api_->get_ptx(program, out.ptx.data());
  if (!out.ptx.empty() && out.ptx.back() == '\0') out.ptx.pop_back();
  if (api_->get_cubin_size(program, &size) != 0) return fail("nvrtcGetCUBINSize failed");
  out.cubin.resize(size);
  if (size > 0) api_->get_cubin(program, reinterpret_cast<char*>(out.cubin.data()));
  api_->destroy_program(&program);
  return out;
}

}  // namespace bitnet::codegen_cuda
