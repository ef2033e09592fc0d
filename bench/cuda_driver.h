// The CUDA driver API loaded with dlopen("libcuda.so.1"): the check binary must start, and say
// why it cannot run, on machines without a driver. Entry points are looked up under the
// versioned names cuda.h maps them to (cuMemAlloc -> cuMemAlloc_v2, ...), so each call has the
// signature its declaration says (TOOLCHAIN.md 3).
#pragma once

#include <cuda.h>
#include <dlfcn.h>

#include <string>

namespace bitnet::bench {

#define BN_CU_STR2(x) #x
#define BN_CU_STR(x) BN_CU_STR2(x)
#define BN_CU_FN(name) decltype(&::name) name = nullptr;

struct CudaDriver {
  BN_CU_FN(cuInit)
  BN_CU_FN(cuDriverGetVersion)
  BN_CU_FN(cuGetErrorString)
  BN_CU_FN(cuDeviceGetCount)
  BN_CU_FN(cuDeviceGet)
  BN_CU_FN(cuDeviceGetName)
  BN_CU_FN(cuDeviceGetAttribute)
  BN_CU_FN(cuDevicePrimaryCtxRetain)
  BN_CU_FN(cuCtxSetCurrent)
  BN_CU_FN(cuCtxSynchronize)
  BN_CU_FN(cuModuleLoadDataEx)
  BN_CU_FN(cuModuleGetFunction)
  BN_CU_FN(cuMemAlloc)
  BN_CU_FN(cuMemFree)
  BN_CU_FN(cuMemcpyHtoD)
  BN_CU_FN(cuMemcpyDtoH)
  BN_CU_FN(cuMemsetD8)
  BN_CU_FN(cuLaunchKernel)
  BN_CU_FN(cuEventCreate)
  BN_CU_FN(cuEventRecord)
  BN_CU_FN(cuEventSynchronize)
  BN_CU_FN(cuEventElapsedTime)
  BN_CU_FN(cuEventDestroy)
  // Streams and graphs (the decode-step timing).
  BN_CU_FN(cuStreamCreate)
  BN_CU_FN(cuStreamDestroy)
  BN_CU_FN(cuStreamSynchronize)
  BN_CU_FN(cuStreamBeginCapture)
  BN_CU_FN(cuStreamEndCapture)
  BN_CU_FN(cuGraphInstantiate)
  BN_CU_FN(cuGraphLaunch)
  BN_CU_FN(cuGraphExecDestroy)
  BN_CU_FN(cuGraphDestroy)
  // Optional (CUDA 11.8+ drivers): launches with attributes (programmatic dependent launch).
  BN_CU_FN(cuLaunchKernelEx)

  // Loads libcuda.so.1 and every entry point; false with `why` when either is missing.
  bool load(std::string* why) {
    void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      *why = dlerror();
      return false;
    }
    bool ok = true;
    auto get = [&](auto& fn, const char* symbol, const char* fallback = nullptr) {
      void* p = dlsym(h, symbol);
      if (!p && fallback) p = dlsym(h, fallback);
      if (!p) {
        ok = false;
        *why += std::string(why->empty() ? "" : ", ") + "missing " + symbol;
      }
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
    };
#define BN_CU_GET(name) get(name, BN_CU_STR(name))
    BN_CU_GET(cuInit);
    BN_CU_GET(cuDriverGetVersion);
    BN_CU_GET(cuGetErrorString);
    BN_CU_GET(cuDeviceGetCount);
    BN_CU_GET(cuDeviceGet);
    BN_CU_GET(cuDeviceGetName);
    BN_CU_GET(cuDeviceGetAttribute);
    BN_CU_GET(cuDevicePrimaryCtxRetain);
    BN_CU_GET(cuCtxSetCurrent);
    BN_CU_GET(cuCtxSynchronize);
    BN_CU_GET(cuModuleLoadDataEx);
    BN_CU_GET(cuModuleGetFunction);
    BN_CU_GET(cuMemAlloc);
    BN_CU_GET(cuMemFree);
    BN_CU_GET(cuMemcpyHtoD);
    BN_CU_GET(cuMemcpyDtoH);
    BN_CU_GET(cuMemsetD8);
    BN_CU_GET(cuLaunchKernel);
    BN_CU_GET(cuEventCreate);
    BN_CU_GET(cuEventRecord);
    BN_CU_GET(cuEventSynchronize);
    BN_CU_GET(cuEventDestroy);
    BN_CU_GET(cuStreamCreate);
    BN_CU_GET(cuStreamDestroy);
    BN_CU_GET(cuStreamSynchronize);
    BN_CU_GET(cuStreamBeginCapture);
    BN_CU_GET(cuStreamEndCapture);
    BN_CU_GET(cuGraphInstantiate);
    BN_CU_GET(cuGraphLaunch);
    BN_CU_GET(cuGraphExecDestroy);
    BN_CU_GET(cuGraphDestroy);
#undef BN_CU_GET
    // cuEventElapsedTime_v2 needs a 12.8+ driver; the original has the same signature.
    get(cuEventElapsedTime, BN_CU_STR(cuEventElapsedTime), "cuEventElapsedTime");
    // Optional: null on drivers without it; the decode cases that need it then report a skip.
    cuLaunchKernelEx = reinterpret_cast<decltype(cuLaunchKernelEx)>(dlsym(h, BN_CU_STR(cuLaunchKernelEx)));
    return ok;
  }

  std::string error_string(CUresult rc) const {
    const char* text = nullptr;
    if (cuGetErrorString && cuGetErrorString(rc, &text) == CUDA_SUCCESS && text) {
      return std::string(text) + " (" + std::to_string(static_cast<int>(rc)) + ")";
    }
    // The toolkit's stub libcuda (TOOLCHAIN.md 3) has no error strings either.
    if (rc == CUDA_ERROR_STUB_LIBRARY)
      return "CUDA_ERROR_STUB_LIBRARY (34): libcuda.so.1 is the toolkit's stub, not a driver";
    return "CUDA error " + std::to_string(static_cast<int>(rc));
  }
};

#undef BN_CU_FN

}  // namespace bitnet::bench
