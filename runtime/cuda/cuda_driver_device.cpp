// The CUDA driver Device (see cuda_driver_device.h).
#include "runtime/cuda/cuda_driver_device.h"

#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_set>

#include <fmt/ranges.h>

namespace bitnet::runtime::cuda {

namespace {

// ---- The driver ABI ----------------------------------------------------------------------------
// Declared here so that the build needs no CUDA toolkit. Every type, value and layout is cuda.h's
// (checked against CUDA 13.0's; all of them are unchanged since CUDA 11.8 at least), and the
// tests compare the struct layouts with cuda.h where the toolkit is installed.

using CUresult = int;                    // enum cudaError_enum
using CUdevice = int;                    // CUdevice_v1: int
using CUdeviceptr = unsigned long long;  // CUdeviceptr_v2 on LP64 targets
struct CUctx_st;                         // the handles are pointers to opaque structs
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;
struct CUgraphNode_st;
using CUcontext = CUctx_st*;
using CUmodule = CUmod_st*;
using CUfunction = CUfunc_st*;
using CUstream = CUstream_st*;
using CUevent = CUevent_st*;
using CUgraph = CUgraph_st*;
using CUgraphExec = CUgraphExec_st*;
using CUgraphNode = CUgraphNode_st*;

// enum cudaError_enum
constexpr CUresult kSuccess = 0;            // CUDA_SUCCESS
constexpr CUresult kErrorStubLibrary = 34;  // CUDA_ERROR_STUB_LIBRARY
constexpr CUresult kErrorNoDevice = 100;    // CUDA_ERROR_NO_DEVICE
// enum CUdevice_attribute_enum
constexpr int kAttributeComputeCapabilityMajor = 75;  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
constexpr int kAttributeComputeCapabilityMinor = 76;  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
// enum CUstream_flags_enum, CUevent_flags_enum, CUstreamCaptureMode_enum, CUmemorytype_enum
constexpr unsigned kStreamNonBlocking = 0x1;   // CU_STREAM_NON_BLOCKING
constexpr unsigned kEventDisableTiming = 0x2;  // CU_EVENT_DISABLE_TIMING
constexpr int kCaptureModeThreadLocal = 1;     // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
constexpr int kMemoryTypeDevice = 2;           // CU_MEMORYTYPE_DEVICE
// enum CUjit_option_enum
constexpr int kJitErrorLogBuffer = 5;           // CU_JIT_ERROR_LOG_BUFFER
constexpr int kJitErrorLogBufferSizeBytes = 6;  // CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
// enum CUlaunchAttributeID_enum
constexpr int kLaunchAttributeProgrammaticStreamSerialization = 6;  // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_...

// CUDA_MEMCPY2D (CUDA_MEMCPY2D_v2, what cuMemcpy2DAsync_v2 takes).
struct Memcpy2D {
  size_t srcXInBytes;
  size_t srcY;
  int srcMemoryType;  // CUmemorytype
  const void* srcHost;
  CUdeviceptr srcDevice;
  void* srcArray;  // CUarray
  size_t srcPitch;
  size_t dstXInBytes;
  size_t dstY;
  int dstMemoryType;
  void* dstHost;
  CUdeviceptr dstDevice;
  void* dstArray;
  size_t dstPitch;
  size_t WidthInBytes;
  size_t Height;
};
static_assert(sizeof(Memcpy2D) == 128 && offsetof(Memcpy2D, srcHost) == 24 && offsetof(Memcpy2D, dstXInBytes) == 56 &&
              offsetof(Memcpy2D, dstDevice) == 88 && offsetof(Memcpy2D, WidthInBytes) == 112);

// CUlaunchAttributeValue: a union padded to 64 bytes (char pad[64]); its members include
// pointers, hence 8-byte alignment.
union LaunchAttributeValue {
  char pad[64];
  int programmaticStreamSerializationAllowed;
  void* align;
};
// CUlaunchAttribute: the id, padded to 8 bytes (char pad[8 - sizeof(CUlaunchAttributeID)]), then the value.
struct LaunchAttribute {
  int id;  // CUlaunchAttributeID
  char pad[4];
  LaunchAttributeValue value;
};
// CUlaunchConfig
struct LaunchConfig {
  unsigned gridDimX, gridDimY, gridDimZ;
  unsigned blockDimX, blockDimY, blockDimZ;
  unsigned sharedMemBytes;
  CUstream hStream;
  LaunchAttribute* attrs;
  unsigned numAttrs;
};
static_assert(sizeof(LaunchAttributeValue) == 64 && alignof(LaunchAttributeValue) == 8);
static_assert(sizeof(LaunchAttribute) == 72 && offsetof(LaunchAttribute, value) == 8);
static_assert(sizeof(LaunchConfig) == 56 && offsetof(LaunchConfig, hStream) == 32 &&
              offsetof(LaunchConfig, attrs) == 40 && offsetof(LaunchConfig, numAttrs) == 48);

// The entry points, under the versioned names cuda.h maps each call to (cuMemAlloc ->
// cuMemAlloc_v2, ...): the unversioned symbols are the old ABIs (32-bit sizes, other arguments).
struct Driver {
  CUresult (*cuInit)(unsigned flags) = nullptr;
  CUresult (*cuDriverGetVersion)(int* version) = nullptr;
  CUresult (*cuGetErrorName)(CUresult error, const char** name) = nullptr;
  CUresult (*cuGetErrorString)(CUresult error, const char** text) = nullptr;
  CUresult (*cuDeviceGetCount)(int* count) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice* device, int ordinal) = nullptr;
  CUresult (*cuDeviceGetName)(char* name, int length, CUdevice device) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int* value, int attribute, CUdevice device) = nullptr;
  CUresult (*cuDeviceTotalMem)(size_t* bytes, CUdevice device) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext* context, CUdevice device) = nullptr;
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice device) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext context) = nullptr;
  CUresult (*cuStreamCreate)(CUstream* stream, unsigned flags) = nullptr;
  CUresult (*cuStreamDestroy)(CUstream stream) = nullptr;
  CUresult (*cuStreamSynchronize)(CUstream stream) = nullptr;
  CUresult (*cuEventCreate)(CUevent* event, unsigned flags) = nullptr;
  CUresult (*cuEventRecord)(CUevent event, CUstream stream) = nullptr;
  CUresult (*cuEventSynchronize)(CUevent event) = nullptr;
  CUresult (*cuEventDestroy)(CUevent event) = nullptr;
  CUresult (*cuMemAlloc)(CUdeviceptr* pointer, size_t bytes) = nullptr;
  CUresult (*cuMemFree)(CUdeviceptr pointer) = nullptr;
  CUresult (*cuMemHostAlloc)(void** pointer, size_t bytes, unsigned flags) = nullptr;
  CUresult (*cuMemFreeHost)(void* pointer) = nullptr;
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr dst, const void* src, size_t bytes, CUstream stream) = nullptr;
  CUresult (*cuMemcpyDtoHAsync)(void* dst, CUdeviceptr src, size_t bytes, CUstream stream) = nullptr;
  CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream) = nullptr;
  CUresult (*cuMemcpy2DAsync)(const Memcpy2D* copy, CUstream stream) = nullptr;
  CUresult (*cuMemsetD8Async)(CUdeviceptr dst, unsigned char value, size_t count, CUstream stream) = nullptr;
  CUresult (*cuModuleLoadDataEx)(CUmodule* module, const void* image, unsigned n_options, int* options,
                                 void** values) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction* function, CUmodule module, const char* name) = nullptr;
  CUresult (*cuModuleUnload)(CUmodule module) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction function, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                             unsigned block_y, unsigned block_z, unsigned shared_bytes, CUstream stream, void** params,
                             void** extra) = nullptr;
  // Optional: launches with attributes (CUDA 11.8+ drivers) and graphs.
  CUresult (*cuLaunchKernelEx)(const LaunchConfig* config, CUfunction function, void** params, void** extra) = nullptr;
  CUresult (*cuStreamBeginCapture)(CUstream stream, int mode) = nullptr;
  CUresult (*cuStreamEndCapture)(CUstream stream, CUgraph* graph) = nullptr;
  CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec* exec, CUgraph graph, unsigned long long flags) = nullptr;
  // cuGraphInstantiate_v2 or cuGraphInstantiate, for drivers before cuGraphInstantiateWithFlags (11.4).
  CUresult (*cuGraphInstantiateOld)(CUgraphExec* exec, CUgraph graph, CUgraphNode* error_node, char* log,
                                    size_t log_bytes) = nullptr;
  CUresult (*cuGraphLaunch)(CUgraphExec exec, CUstream stream) = nullptr;
  CUresult (*cuGraphExecDestroy)(CUgraphExec exec) = nullptr;
  CUresult (*cuGraphDestroy)(CUgraph graph) = nullptr;

  std::vector<std::string> missing;  // required entry points the library lacks

  template <class F>
  static void find(void* library, F& fn, const char* symbol) {
    fn = reinterpret_cast<F>(dlsym(library, symbol));
  }
  template <class F>
  void need(void* library, F& fn, const char* symbol) {
    find(library, fn, symbol);
    if (!fn) missing.emplace_back(symbol);
  }

  void resolve(void* library) {
    need(library, cuDriverGetVersion, "cuDriverGetVersion");
    need(library, cuGetErrorName, "cuGetErrorName");
    need(library, cuGetErrorString, "cuGetErrorString");
    need(library, cuDeviceGetCount, "cuDeviceGetCount");
    need(library, cuDeviceGet, "cuDeviceGet");
    need(library, cuDeviceGetName, "cuDeviceGetName");
    need(library, cuDeviceGetAttribute, "cuDeviceGetAttribute");
    need(library, cuDeviceTotalMem, "cuDeviceTotalMem_v2");
    need(library, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    need(library, cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    need(library, cuCtxSetCurrent, "cuCtxSetCurrent");
    need(library, cuStreamCreate, "cuStreamCreate");
    need(library, cuStreamDestroy, "cuStreamDestroy_v2");
    need(library, cuStreamSynchronize, "cuStreamSynchronize");
    need(library, cuEventCreate, "cuEventCreate");
    need(library, cuEventRecord, "cuEventRecord");
    need(library, cuEventSynchronize, "cuEventSynchronize");
    need(library, cuEventDestroy, "cuEventDestroy_v2");
    need(library, cuMemAlloc, "cuMemAlloc_v2");
    need(library, cuMemFree, "cuMemFree_v2");
    need(library, cuMemHostAlloc, "cuMemHostAlloc");
    need(library, cuMemFreeHost, "cuMemFreeHost");
    need(library, cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    need(library, cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
    need(library, cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    need(library, cuMemcpy2DAsync, "cuMemcpy2DAsync_v2");
    need(library, cuMemsetD8Async, "cuMemsetD8Async");
    need(library, cuModuleLoadDataEx, "cuModuleLoadDataEx");
    need(library, cuModuleGetFunction, "cuModuleGetFunction");
    need(library, cuModuleUnload, "cuModuleUnload");
    need(library, cuLaunchKernel, "cuLaunchKernel");
    find(library, cuLaunchKernelEx, "cuLaunchKernelEx");
    find(library, cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    find(library, cuStreamEndCapture, "cuStreamEndCapture");
    find(library, cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
    find(library, cuGraphInstantiateOld, "cuGraphInstantiate_v2");
    if (!cuGraphInstantiateOld) find(library, cuGraphInstantiateOld, "cuGraphInstantiate");
    find(library, cuGraphLaunch, "cuGraphLaunch");
    find(library, cuGraphExecDestroy, "cuGraphExecDestroy");
    find(library, cuGraphDestroy, "cuGraphDestroy");
  }

  bool has_graphs() const {
    return cuStreamBeginCapture && cuStreamEndCapture && (cuGraphInstantiateWithFlags || cuGraphInstantiateOld) &&
           cuGraphLaunch && cuGraphExecDestroy && cuGraphDestroy;
  }

  CUresult instantiate(CUgraphExec* exec, CUgraph graph) const {
    if (cuGraphInstantiateWithFlags) return cuGraphInstantiateWithFlags(exec, graph, 0);
    return cuGraphInstantiateOld(exec, graph, nullptr, nullptr, 0);
  }

  // "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory".
  std::string describe(CUresult rc) const {
    const char* name = nullptr;
    const char* text = nullptr;
    if (cuGetErrorName && cuGetErrorName(rc, &name) != kSuccess) name = nullptr;
    if (cuGetErrorString && cuGetErrorString(rc, &text) != kSuccess) text = nullptr;
    if (name && text) return fmt::format("{} ({}): {}", name, rc, text);
    if (rc == kErrorNoDevice) return "CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected";
    return fmt::format("CUDA error {}", rc);
  }
};

// Loads `library` once per process and keeps it (drivers are not meant to be unloaded), except
// the toolkit's stub: unloaded, so that a later dlopen("libcuda.so.1") does not find it again by
// its soname. `reason`: why not, in a few words, for cuda_driver_status.
Expected<const Driver*> load_driver(const std::string& library, std::string* reason) {
  static std::mutex mutex;
  static auto* loaded = new std::map<std::string, std::unique_ptr<Driver>>;  // never destroyed
  std::lock_guard lock(mutex);
  if (auto it = loaded->find(library); it != loaded->end()) return it->second.get();

  dlerror();
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* error = dlerror();
    *reason = error ? error : library + ": dlopen failed";
    return make_error("no NVIDIA driver: {} could not be loaded ({})", library, *reason);
  }
  auto driver = std::make_unique<Driver>();
  Driver::find(handle, driver->cuInit, "cuInit");
  if (!driver->cuInit) {
    dlclose(handle);
    *reason = library + " is not a CUDA driver (it has no cuInit)";
    return make_error("no NVIDIA driver: {}", *reason);
  }
  // The toolkit's lib64/stubs/libcuda.so (for linking only) has every entry point, each failing
  // with CUDA_ERROR_STUB_LIBRARY; an LD_LIBRARY_PATH naming that directory makes it load here.
  if (driver->cuInit(0) == kErrorStubLibrary) {
    dlclose(handle);
    *reason = library + " is the CUDA toolkit's stub, not a driver";
    return make_error(
        "no NVIDIA driver: {} (CUDA_ERROR_STUB_LIBRARY): install the NVIDIA driver, or take the toolkit's "
        "lib64/stubs out of LD_LIBRARY_PATH",
        *reason);
  }
  driver->resolve(handle);
  const Driver* result = driver.get();
  (*loaded)[library] = std::move(driver);
  return result;
}

std::string version_text(const Driver& cu) {
  int version = 0;
  if (cu.cuDriverGetVersion(&version) != kSuccess) return "CUDA driver (version unknown)";
  return fmt::format("CUDA driver {}.{}", version / 1000, version % 1000 / 10);
}

// The driver, initialised, or why not.
Expected<const Driver*> init_driver(const std::string& library) {
  std::string reason;
  BITNET_ASSIGN_OR_RETURN(const Driver* cu, load_driver(library, &reason));
  if (!cu->missing.empty()) {
    return make_error("the NVIDIA driver is too old for the CUDA backend: {} lacks {}", library,
                      fmt::join(cu->missing, ", "));
  }
  if (CUresult rc = cu->cuInit(0); rc != kSuccess) {
    return make_error("the CUDA driver did not initialize: cuInit: {}{}", cu->describe(rc),
                      rc == kErrorNoDevice ? " (no GPU is visible: see nvidia-smi and CUDA_VISIBLE_DEVICES)" : "");
  }
  return cu;
}

// Name, compute capability and memory of a device.
Expected<DeviceInfo> describe_device(const Driver& cu, CUdevice device) {
  DeviceInfo info;
  char name[256] = {};
  int major = 0, minor = 0;
  size_t memory = 0;
  CUresult rc = cu.cuDeviceGetName(name, sizeof name - 1, device);
  if (rc == kSuccess) rc = cu.cuDeviceGetAttribute(&major, kAttributeComputeCapabilityMajor, device);
  if (rc == kSuccess) rc = cu.cuDeviceGetAttribute(&minor, kAttributeComputeCapabilityMinor, device);
  if (rc == kSuccess) rc = cu.cuDeviceTotalMem(&memory, device);
  if (rc != kSuccess) return make_error("CUDA device {}: {}", device, cu.describe(rc));
  info.name = name;
  info.sm = major * 10 + minor;
  info.memory = static_cast<int64_t>(memory);
  return info;
}

// ---- The device -------------------------------------------------------------------------------

class DriverDevice final : public Device {
 public:
  DriverDevice(const Driver& cu, CUdevice device, DeviceInfo info) : cu_(cu), device_(device), info_(std::move(info)) {}
  DriverDevice(const DriverDevice&) = delete;
  DriverDevice& operator=(const DriverDevice&) = delete;

  // Frees what the device still holds, ignoring errors (after a fault every call fails). Also
  // what start() made where it failed half way.
  ~DriverDevice() override {
    if (!context_) return;
    cu_.cuCtxSetCurrent(context_);
    if (stream_) cu_.cuStreamSynchronize(stream_);
    for (const auto& [id, exec] : graphs_) cu_.cuGraphExecDestroy(exec);
    for (const Module& m : modules_) cu_.cuModuleUnload(m.handle);
    for (DevicePtr p : allocations_) cu_.cuMemFree(p);
    for (const StagingSlot& slot : staging_) {
      cu_.cuMemFreeHost(slot.host);
      cu_.cuEventDestroy(slot.copied);
    }
    if (stream_) cu_.cuStreamDestroy(stream_);
    cu_.cuDevicePrimaryCtxRelease(device_);
  }

  // The context, the stream, the staging slots; what the device can do.
  Status start() {
    // The primary context: the one the CUDA runtime and other libraries in the process use too.
    if (CUresult rc = cu_.cuDevicePrimaryCtxRetain(&context_, device_); rc != kSuccess) {
      context_ = nullptr;
      return fail(rc, "cuDevicePrimaryCtxRetain");
    }
    BITNET_RETURN_IF_ERROR(bind());
    // Non-blocking: neither waits for nor holds up other code's work on the legacy NULL stream.
    if (CUresult rc = cu_.cuStreamCreate(&stream_, kStreamNonBlocking); rc != kSuccess) {
      stream_ = nullptr;
      return fail(rc, "cuStreamCreate");
    }
    for (size_t i = 0; i < kStagingSlots; ++i) {
      StagingSlot slot;
      if (cu_.cuMemHostAlloc(&slot.host, kStagingSlotBytes, 0) != kSuccess) break;
      if (cu_.cuEventCreate(&slot.copied, kEventDisableTiming) != kSuccess) {
        cu_.cuMemFreeHost(slot.host);
        break;
      }
      staging_.push_back(slot);
    }
    // Without all its slots (pinned memory is limited) every upload waits for the stream.
    if (staging_.size() < kStagingSlots) {
      for (const StagingSlot& slot : staging_) {
        cu_.cuMemFreeHost(slot.host);
        cu_.cuEventDestroy(slot.copied);
      }
      staging_.clear();
    }
    info_.programmatic_launch = info_.sm >= 90 && cu_.cuLaunchKernelEx != nullptr;
    info_.graphs = cu_.has_graphs() && capture_works();
    return Status::success();
  }

  const DeviceInfo& info() const override { return info_; }

  Expected<DevicePtr> alloc(int64_t bytes) override {
    BITNET_RETURN_IF_ERROR(check_size("alloc", bytes));
    BITNET_RETURN_IF_ERROR(outside_capture("alloc"));
    BITNET_RETURN_IF_ERROR(bind());
    CUdeviceptr p = 0;
    // cuMemAlloc rejects 0 bytes; its blocks are aligned to at least 256 bytes.
    if (CUresult rc = cu_.cuMemAlloc(&p, bytes > 0 ? static_cast<size_t>(bytes) : 1); rc != kSuccess) {
      return fail(rc, fmt::format("cuMemAlloc({} bytes)", bytes));
    }
    allocations_.insert(p);
    return DevicePtr{p};
  }

  void release(DevicePtr p) override {
    if (p == 0 || !allocations_.count(p)) return;
    if (capturing_) {  // not capturable: freed once the capture ends
      released_in_capture_.push_back(p);
      return;
    }
    allocations_.erase(p);
    if (!bind().ok()) return;
    // Launches still queued may use the block; cuMemFree's own implicit synchronisation is not
    // documented for non-blocking streams.
    cu_.cuStreamSynchronize(stream_);
    cu_.cuMemFree(p);
  }

  // Small uploads (the token id and position of every decode step) are copied into a pinned
  // staging slot, and from there by the stream without waiting for it: the caller's bytes are
  // read before returning, and a slot is reused only once the event recorded after its copy has
  // completed (eight slots: the wait is for a copy eight uploads ago). Larger uploads (weights,
  // K/V edits) copy from the caller's pageable memory, which cuMemcpyHtoDAsync may still be
  // reading when it returns, so they wait for the stream (all the work queued before as well).
  Status upload(DevicePtr dst, const void* src, int64_t bytes) override {
    BITNET_RETURN_IF_ERROR(check_size("upload", bytes));
    if (bytes == 0) return Status::success();
    BITNET_RETURN_IF_ERROR(outside_capture("upload"));
    BITNET_RETURN_IF_ERROR(bind());
    const auto n = static_cast<size_t>(bytes);
    if (bytes <= kStagingSlotBytes && !staging_.empty()) {
      StagingSlot& slot = staging_[next_slot_];
      next_slot_ = (next_slot_ + 1) % staging_.size();
      if (slot.in_flight) {
        if (CUresult rc = cu_.cuEventSynchronize(slot.copied); rc != kSuccess) {
          return fail(rc, "cuEventSynchronize (an upload's staging slot; an earlier launch or copy may have failed)");
        }
        slot.in_flight = false;
      }
      std::memcpy(slot.host, src, n);
      if (CUresult rc = cu_.cuMemcpyHtoDAsync(dst, slot.host, n, stream_); rc != kSuccess) {
        return fail(rc, fmt::format("cuMemcpyHtoDAsync({} bytes)", bytes));
      }
      if (CUresult rc = cu_.cuEventRecord(slot.copied, stream_); rc != kSuccess) {
        cu_.cuStreamSynchronize(stream_);  // no event to wait for: the copy must be over before reuse
        return fail(rc, "cuEventRecord (after an upload)");
      }
      slot.in_flight = true;
      return Status::success();
    }
    if (CUresult rc = cu_.cuMemcpyHtoDAsync(dst, src, n, stream_); rc != kSuccess) {
      return fail(rc, fmt::format("cuMemcpyHtoDAsync({} bytes)", bytes));
    }
    return sync(fmt::format("an upload of {} bytes", bytes));
  }

  Status download(void* dst, DevicePtr src, int64_t bytes) override {
    BITNET_RETURN_IF_ERROR(check_size("download", bytes));
    if (bytes == 0) return Status::success();
    BITNET_RETURN_IF_ERROR(outside_capture("download"));
    BITNET_RETURN_IF_ERROR(bind());
    if (CUresult rc = cu_.cuMemcpyDtoHAsync(dst, src, static_cast<size_t>(bytes), stream_); rc != kSuccess) {
      return fail(rc, fmt::format("cuMemcpyDtoHAsync({} bytes)", bytes));
    }
    return sync(fmt::format("a download of {} bytes", bytes));
  }

  Status fill_zero(DevicePtr dst, int64_t bytes) override {
    BITNET_RETURN_IF_ERROR(check_size("fill_zero", bytes));
    if (bytes == 0) return Status::success();
    BITNET_RETURN_IF_ERROR(bind());
    if (CUresult rc = cu_.cuMemsetD8Async(dst, 0, static_cast<size_t>(bytes), stream_); rc != kSuccess) {
      return fail(rc, fmt::format("cuMemsetD8Async({} bytes)", bytes));
    }
    return Status::success();
  }

  Status copy(DevicePtr dst, DevicePtr src, int64_t bytes) override {
    BITNET_RETURN_IF_ERROR(check_size("copy", bytes));
    if (bytes == 0) return Status::success();
    BITNET_RETURN_IF_ERROR(bind());
    if (CUresult rc = cu_.cuMemcpyDtoDAsync(dst, src, static_cast<size_t>(bytes), stream_); rc != kSuccess) {
      return fail(rc, fmt::format("cuMemcpyDtoDAsync({} bytes)", bytes));
    }
    return Status::success();
  }

  Status copy_2d(DevicePtr dst, int64_t dst_pitch, DevicePtr src, int64_t src_pitch, int64_t width,
                 int64_t rows) override {
    if (width < 0 || rows < 0 || dst_pitch < 0 || src_pitch < 0) {
      return make_error("copy_2d: negative size (width {}, rows {}, pitches {} and {})", width, rows, dst_pitch,
                        src_pitch);
    }
    if (width == 0 || rows == 0) return Status::success();
    if (rows == 1) return copy(dst, src, width);  // the pitches do not matter (and may be 0)
    if (dst_pitch < width || src_pitch < width) {
      return make_error("copy_2d: rows of {} bytes do not fit pitches of {} and {} bytes", width, dst_pitch, src_pitch);
    }
    BITNET_RETURN_IF_ERROR(bind());
    Memcpy2D c{};
    c.srcMemoryType = kMemoryTypeDevice;
    c.srcDevice = src;
    c.srcPitch = static_cast<size_t>(src_pitch);
    c.dstMemoryType = kMemoryTypeDevice;
    c.dstDevice = dst;
    c.dstPitch = static_cast<size_t>(dst_pitch);
    c.WidthInBytes = static_cast<size_t>(width);
    c.Height = static_cast<size_t>(rows);
    if (CUresult rc = cu_.cuMemcpy2DAsync(&c, stream_); rc != kSuccess) {
      return fail(rc, fmt::format("cuMemcpy2DAsync({} rows of {} bytes)", rows, width));
    }
    return Status::success();
  }

  // The CUBIN where it was built for this device's SM; else the PTX, which the driver compiles
  // for this device (any SM at least the PTX's target); else a CUBIN of an older SM of the same
  // major version (binary compatible, unless built for an "a" target: then the driver says no).
  Expected<int> load_module(const ModuleImage& image) override {
    BITNET_RETURN_IF_ERROR(outside_capture("load_module"));
    BITNET_RETURN_IF_ERROR(bind());
    const int target = ptx_target(image.ptx);
    const int built_for = image.sm != 0 ? image.sm : target;
    const bool cubin_compatible = image.sm / 10 == info_.sm / 10 && image.sm < info_.sm;
    CUmodule handle = nullptr;
    std::vector<std::string> errors;  // of the forms tried
    auto try_cubin = [&] {
      // A copy: the image's bytes may sit at any offset of a plan file; the driver reads an ELF.
      std::vector<uint64_t> aligned((image.cubin.size() + 7) / 8);
      std::memcpy(aligned.data(), image.cubin.data(), image.cubin.size());
      auto m = load_image(aligned.data(), fmt::format("CUBIN for sm_{}", image.sm));
      if (m.ok()) {
        handle = *m;
      } else {
        errors.push_back(m.error().message);
      }
    };
    if (!image.cubin.empty() && image.sm == info_.sm) try_cubin();
    if (!handle && !image.ptx.empty() && target <= info_.sm) {
      const std::string ptx(image.ptx);  // the driver reads a NUL-terminated string
      auto m = load_image(ptx.c_str(), fmt::format("PTX for sm_{}", target));
      if (m.ok()) {
        handle = *m;
      } else {
        errors.push_back(m.error().message);
      }
    }
    if (!handle && !image.cubin.empty() && cubin_compatible) try_cubin();
    if (!handle) {
      if (!errors.empty()) return make_error("{}", fmt::join(errors, "; "));
      if (image.cubin.empty() && image.ptx.empty()) {
        return make_error("the module has neither a CUBIN nor PTX for the CUDA driver to load");
      }
      return make_error("the plan was compiled for sm_{} and the device is sm_{} ({}){}", built_for, info_.sm,
                        info_.name, image.ptx.empty() ? ", and it has no PTX" : "");
    }
    Module module{handle, {}, image.kernels};
    for (const std::string& name : image.kernels) {
      CUfunction f = nullptr;
      if (CUresult rc = cu_.cuModuleGetFunction(&f, handle, name.c_str()); rc != kSuccess) {
        cu_.cuModuleUnload(handle);
        return fail(rc, fmt::format("cuModuleGetFunction: the module has no kernel '{}'", name));
      }
      module.functions.push_back(f);
    }
    modules_.push_back(std::move(module));
    return static_cast<int>(modules_.size() - 1);
  }

  Status launch(int module, int kernel, Dim3 grid, int threads, std::span<const KernelArg> args,
                bool programmatic) override {
    if (module < 0 || static_cast<size_t>(module) >= modules_.size()) return make_error("launch: no module {}", module);
    const Module& m = modules_[static_cast<size_t>(module)];
    if (kernel < 0 || static_cast<size_t>(kernel) >= m.functions.size()) {
      return make_error("launch: module {} has no kernel {}", module, kernel);
    }
    if (threads < 1 || threads > 1024 || grid.x < 1 || grid.y < 1 || grid.z < 1) {
      return make_error("launch of {}: bad shape (grid {}x{}x{}, {} threads)", m.names[static_cast<size_t>(kernel)],
                        grid.x, grid.y, grid.z, threads);
    }
    BITNET_RETURN_IF_ERROR(bind());
    // kernelParams: a pointer to each argument's value; the driver copies the values at launch.
    arg_values_.assign(args.size(), 0);
    arg_pointers_.resize(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].is_int) {
        std::memcpy(&arg_values_[i], &args[i].value, sizeof(int32_t));
      } else {
        arg_values_[i] = args[i].pointer;
      }
      arg_pointers_[i] = &arg_values_[i];
    }
    void** params = args.empty() ? nullptr : arg_pointers_.data();
    CUfunction f = m.functions[static_cast<size_t>(kernel)];
    const auto block = static_cast<unsigned>(threads);
    CUresult rc = kSuccess;
    const bool with_attribute = programmatic && info_.programmatic_launch;
    if (with_attribute) {
      // Programmatic stream serialization: the kernel may start before the previous one in the
      // stream has finished (it waits with griddepcontrol.wait); captured as a programmatic edge.
      LaunchAttribute attribute{};
      attribute.id = kLaunchAttributeProgrammaticStreamSerialization;
      attribute.value.programmaticStreamSerializationAllowed = 1;
      LaunchConfig config{};
      config.gridDimX = grid.x;
      config.gridDimY = grid.y;
      config.gridDimZ = grid.z;
      config.blockDimX = block;
      config.blockDimY = 1;
      config.blockDimZ = 1;
      config.sharedMemBytes = 0;  // the kernels use static shared memory only
      config.hStream = stream_;
      config.attrs = &attribute;
      config.numAttrs = 1;
      rc = cu_.cuLaunchKernelEx(&config, f, params, nullptr);
    } else {
      rc = cu_.cuLaunchKernel(f, grid.x, grid.y, grid.z, block, 1, 1, 0, stream_, params, nullptr);
    }
    if (rc != kSuccess) {
      return fail(rc, fmt::format("{}(module {}, kernel {} '{}', grid {}x{}x{}, {} threads)",
                                  with_attribute ? "cuLaunchKernelEx" : "cuLaunchKernel", module, kernel,
                                  m.names[static_cast<size_t>(kernel)], grid.x, grid.y, grid.z, threads));
    }
    return Status::success();
  }

  // Thread-local capture mode: while this thread captures, the driver rejects its calls that
  // cannot be captured (cuMemAlloc, synchronisation, ...), so a mistake in `record` fails instead
  // of running outside the graph; other threads, which may use other devices, are not restricted
  // (the global mode would fail their calls too, the relaxed one would let ours through).
  Expected<int> capture(const std::function<Status()>& record) override {
    if (!info_.graphs) return make_error("capture: this CUDA driver cannot capture graphs");
    BITNET_RETURN_IF_ERROR(outside_capture("capture"));
    BITNET_RETURN_IF_ERROR(bind());
    if (CUresult rc = cu_.cuStreamBeginCapture(stream_, kCaptureModeThreadLocal); rc != kSuccess) {
      return fail(rc, "cuStreamBeginCapture");
    }
    capturing_ = true;
    const Status recorded = record();
    capturing_ = false;
    // Always ended, whatever `record` did: the stream stays capturing until then.
    CUgraph graph = nullptr;
    const CUresult ended = cu_.cuStreamEndCapture(stream_, &graph);
    for (DevicePtr p : released_in_capture_) release(p);
    released_in_capture_.clear();
    if (!recorded.ok()) {
      if (graph) cu_.cuGraphDestroy(graph);
      return recorded.error();
    }
    if (ended != kSuccess) {
      if (graph) cu_.cuGraphDestroy(graph);
      return fail(ended, "cuStreamEndCapture (the captured function made a call that cannot be captured)");
    }
    CUgraphExec exec = nullptr;
    const CUresult instantiated = cu_.instantiate(&exec, graph);
    cu_.cuGraphDestroy(graph);  // the executable graph does not need it
    if (instantiated != kSuccess) return fail(instantiated, "cuGraphInstantiate");
    const int id = next_graph_++;
    graphs_[id] = exec;
    return id;
  }

  Status replay(int graph) override {
    auto it = graphs_.find(graph);
    if (it == graphs_.end()) return make_error("replay: no graph {}", graph);
    BITNET_RETURN_IF_ERROR(outside_capture("replay"));
    BITNET_RETURN_IF_ERROR(bind());
    if (CUresult rc = cu_.cuGraphLaunch(it->second, stream_); rc != kSuccess) {
      return fail(rc, fmt::format("cuGraphLaunch(graph {})", graph));
    }
    return Status::success();
  }

  void destroy_graph(int graph) override {
    auto it = graphs_.find(graph);
    if (it == graphs_.end()) return;
    if (bind().ok()) cu_.cuGraphExecDestroy(it->second);  // freed once a replay still running ends
    graphs_.erase(it);
  }

  Status synchronize() override {
    BITNET_RETURN_IF_ERROR(outside_capture("synchronize"));
    BITNET_RETURN_IF_ERROR(bind());
    return sync("synchronize");
  }

 private:
  static constexpr size_t kStagingSlots = 8;
  static constexpr int64_t kStagingSlotBytes = 64 << 10;

  struct Module {
    CUmodule handle = nullptr;
    std::vector<CUfunction> functions;  // by kernel index
    std::vector<std::string> names;
  };
  struct StagingSlot {
    void* host = nullptr;      // pinned
    CUevent copied = nullptr;  // recorded after the slot's last copy
    bool in_flight = false;    // recorded and not yet waited for
  };

  Error fail(CUresult rc, std::string_view call) const { return make_error("{}: {}", call, cu_.describe(rc)); }

  // Every call may come from another thread than the last: the context must be current on it
  // (during a capture it is: capture() bound it, and `record` runs on its thread).
  Status bind() {
    if (capturing_) return Status::success();
    if (CUresult rc = cu_.cuCtxSetCurrent(context_); rc != kSuccess) return fail(rc, "cuCtxSetCurrent");
    return Status::success();
  }

  Status sync(std::string_view after) {
    if (CUresult rc = cu_.cuStreamSynchronize(stream_); rc != kSuccess) {
      return fail(rc, fmt::format("cuStreamSynchronize ({}; an earlier launch or copy may have failed)", after));
    }
    return Status::success();
  }

  static Status check_size(std::string_view what, int64_t bytes) {
    if (bytes < 0) return make_error("{}: negative size {}", what, bytes);
    return Status::success();
  }

  Status outside_capture(std::string_view what) const {
    if (capturing_) return make_error("{} inside capture(): only launches, copies and fills can be captured", what);
    return Status::success();
  }

  // An empty capture: the driver can capture this stream.
  bool capture_works() {
    if (cu_.cuStreamBeginCapture(stream_, kCaptureModeThreadLocal) != kSuccess) return false;
    CUgraph graph = nullptr;
    const CUresult rc = cu_.cuStreamEndCapture(stream_, &graph);
    if (graph) cu_.cuGraphDestroy(graph);
    return rc == kSuccess;
  }

  // cuModuleLoadDataEx with the JIT's error log (what is wrong with PTX, or a CUBIN's SM).
  Expected<CUmodule> load_image(const void* data, std::string_view what) {
    char log[4096] = {};
    int options[] = {kJitErrorLogBufferSizeBytes, kJitErrorLogBuffer};
    void* values[] = {reinterpret_cast<void*>(uintptr_t{sizeof log - 1}), log};
    CUmodule m = nullptr;
    if (CUresult rc = cu_.cuModuleLoadDataEx(&m, data, 2, options, values); rc != kSuccess) {
      std::string text(log, strnlen(log, sizeof log));
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      return make_error("cuModuleLoadDataEx({}): {}{}{}", what, cu_.describe(rc), text.empty() ? "" : ": ", text);
    }
    return m;
  }

  // The SM of PTX text's ".target sm_80"; 0 where it names none.
  static int ptx_target(std::string_view ptx) {
    size_t at = ptx.find(".target");
    if (at == std::string_view::npos) return 0;
    at += 7;
    while (at < ptx.size() && (ptx[at] == ' ' || ptx[at] == '\t')) ++at;
    if (ptx.substr(at, 3) != "sm_") return 0;
    int sm = 0;
    for (at += 3; at < ptx.size() && ptx[at] >= '0' && ptx[at] <= '9'; ++at) sm = sm * 10 + (ptx[at] - '0');
    return sm;
  }

  const Driver& cu_;
  CUdevice device_;
  DeviceInfo info_;
  CUcontext context_ = nullptr;
  CUstream stream_ = nullptr;
  std::vector<Module> modules_;  // by id; unloaded at destruction
  std::map<int, CUgraphExec> graphs_;
  int next_graph_ = 0;
  std::unordered_set<DevicePtr> allocations_;  // what release() has not freed
  std::vector<DevicePtr> released_in_capture_;
  std::vector<StagingSlot> staging_;
  size_t next_slot_ = 0;
  bool capturing_ = false;
  std::vector<uint64_t> arg_values_;  // launch()'s, reused
  std::vector<void*> arg_pointers_;
};

}  // namespace

Expected<std::unique_ptr<Device>> open_cuda_device_from(const std::string& library, int ordinal) {
  BITNET_ASSIGN_OR_RETURN(const Driver* cu, init_driver(library));
  int count = 0;
  if (CUresult rc = cu->cuDeviceGetCount(&count); rc != kSuccess) {
    return make_error("cuDeviceGetCount: {}", cu->describe(rc));
  }
  if (ordinal < 0 || ordinal >= count) {
    return make_error("CUDA device {} does not exist: the driver sees {} device{} (CUDA_VISIBLE_DEVICES applies)",
                      ordinal, count, count == 1 ? "" : "s");
  }
  CUdevice device = 0;
  if (CUresult rc = cu->cuDeviceGet(&device, ordinal); rc != kSuccess) {
    return make_error("cuDeviceGet({}): {}", ordinal, cu->describe(rc));
  }
  BITNET_ASSIGN_OR_RETURN(DeviceInfo info, describe_device(*cu, device));
  if (info.sm < 80) {
    return make_error("the CUDA backend needs compute capability 8.0 or newer (sm_80); device {} is sm_{} ({})",
                      ordinal, info.sm, info.name);
  }
  auto d = std::make_unique<DriverDevice>(*cu, device, std::move(info));
  BITNET_RETURN_IF_ERROR(d->start());
  return std::unique_ptr<Device>(std::move(d));
}

Expected<std::unique_ptr<Device>> open_cuda_device(int ordinal) {
  return open_cuda_device_from("libcuda.so.1", ordinal);
}

std::string cuda_driver_status_from(const std::string& library) {
  std::string reason;
  auto loaded = load_driver(library, &reason);
  if (!loaded.ok()) return fmt::format("no CUDA driver ({})", reason);
  const Driver& cu = **loaded;
  const std::string version = version_text(cu);
  if (!cu.missing.empty()) return fmt::format("{}, too old (lacks {})", version, fmt::join(cu.missing, ", "));
  if (CUresult rc = cu.cuInit(0); rc != kSuccess) {
    return fmt::format("{}, no usable device (cuInit: {})", version, cu.describe(rc));
  }
  int count = 0;
  if (CUresult rc = cu.cuDeviceGetCount(&count); rc != kSuccess) {
    return fmt::format("{}, no usable device (cuDeviceGetCount: {})", version, cu.describe(rc));
  }
  if (count == 0) return fmt::format("{}, no device", version);
  std::string line = fmt::format("{}, {} device{}:", version, count, count == 1 ? "" : "s");
  for (int i = 0; i < count; ++i) {
    line += i == 0 ? " " : ", ";
    CUdevice device = 0;
    if (cu.cuDeviceGet(&device, i) != kSuccess) {
      line += fmt::format("device {} (unreadable)", i);
      continue;
    }
    auto info = describe_device(cu, device);
    if (!info.ok()) {
      line += fmt::format("device {} (unreadable)", i);
      continue;
    }
    const int64_t gib = (info->memory + (int64_t{1} << 29)) >> 30;
    line += fmt::format("{} (sm_{}, {} GiB{})", info->name, info->sm, gib, info->sm < 80 ? ", below sm_80" : "");
  }
  return line;
}

std::string cuda_driver_status() {
  return cuda_driver_status_from("libcuda.so.1");
}

std::vector<std::pair<std::string, size_t>> cuda_driver_abi_layout() {
  return {
      {"sizeof(CUDA_MEMCPY2D)", sizeof(Memcpy2D)},
      {"offsetof(CUDA_MEMCPY2D, srcMemoryType)", offsetof(Memcpy2D, srcMemoryType)},
      {"offsetof(CUDA_MEMCPY2D, srcHost)", offsetof(Memcpy2D, srcHost)},
      {"offsetof(CUDA_MEMCPY2D, srcDevice)", offsetof(Memcpy2D, srcDevice)},
      {"offsetof(CUDA_MEMCPY2D, srcPitch)", offsetof(Memcpy2D, srcPitch)},
      {"offsetof(CUDA_MEMCPY2D, dstXInBytes)", offsetof(Memcpy2D, dstXInBytes)},
      {"offsetof(CUDA_MEMCPY2D, dstMemoryType)", offsetof(Memcpy2D, dstMemoryType)},
      {"offsetof(CUDA_MEMCPY2D, dstDevice)", offsetof(Memcpy2D, dstDevice)},
      {"offsetof(CUDA_MEMCPY2D, dstPitch)", offsetof(Memcpy2D, dstPitch)},
      {"offsetof(CUDA_MEMCPY2D, WidthInBytes)", offsetof(Memcpy2D, WidthInBytes)},
      {"offsetof(CUDA_MEMCPY2D, Height)", offsetof(Memcpy2D, Height)},
      {"sizeof(CUlaunchAttributeValue)", sizeof(LaunchAttributeValue)},
      {"sizeof(CUlaunchAttribute)", sizeof(LaunchAttribute)},
      {"offsetof(CUlaunchAttribute, value)", offsetof(LaunchAttribute, value)},
      {"sizeof(CUlaunchConfig)", sizeof(LaunchConfig)},
      {"offsetof(CUlaunchConfig, sharedMemBytes)", offsetof(LaunchConfig, sharedMemBytes)},
      {"offsetof(CUlaunchConfig, hStream)", offsetof(LaunchConfig, hStream)},
      {"offsetof(CUlaunchConfig, attrs)", offsetof(LaunchConfig, attrs)},
      {"offsetof(CUlaunchConfig, numAttrs)", offsetof(LaunchConfig, numAttrs)},
  };
}

}  // namespace bitnet::runtime::cuda
