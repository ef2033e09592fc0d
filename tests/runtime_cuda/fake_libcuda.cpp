// A fake libcuda for runtime_cuda_driver_test: the part of the driver API the CUDA driver Device
// uses, on host memory, so that its code runs where there is no GPU. Compiled against the
// toolkit's cuda.h: its entry points get the names cuda.h maps each call to (cuMemAlloc ->
// cuMemAlloc_v2, ...) and cuda.h's signatures, and it reads the structs the Device passes
// (CUDA_MEMCPY2D, CUlaunchConfig, CUlaunchAttribute) with cuda.h's layouts.
//
// A stream's work is queued and runs only when something waits for it (a stream or an event
// synchronisation): a copy from host memory reads it then, as a real copy may, so an upload that
// returned before its bytes were read, or a staging buffer reused too early, gives wrong results.
// Device memory is host memory, device pointers its addresses. The kernels are two, known by
// name: store_index(int* out, int v): out[i] = v + i, and add_int(int* p, int v): p[i] += v, for
// i < grid.x * block.x. Settings (read at each call): FAKE_CUDA_INIT_RESULT (what cuInit
// returns), FAKE_CUDA_SM (default 90), FAKE_CUDA_DEVICES (default 1). fake_cuda_stat(name) counts.
#include <cuda.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <set>
#include <string>
#include <vector>

using Op = std::function<void()>;

struct CUctx_st {
  int unused = 0;
};
struct CUstream_st {
  std::deque<Op> queue;
};
struct CUevent_st {
  bool pending = false;  // recorded, and the stream has not reached it
};
struct CUmod_st {
  std::string text;  // PTX; empty for a CUBIN (which has every kernel)
};
struct CUfunc_st {
  const char* name;
};
struct CUgraph_st {
  std::vector<Op> ops;
};
struct CUgraphExec_st {
  std::vector<Op> ops;
};

namespace {

CUfunc_st store_index{"store_index"};
CUfunc_st add_int{"add_int"};

struct Fake {
  CUctx_st context;
  long long context_refs = 0;
  std::set<void*> device_blocks, host_blocks;
  std::set<CUstream> streams;
  std::set<CUevent> events;
  std::set<CUmodule> modules;
  std::set<CUgraph> graphs;
  std::set<CUgraphExec> graph_execs;
  CUstream capturing = nullptr;
  CUgraph capture = nullptr;
  int capture_mode = -1;
  bool capture_invalidated = false;
  long long launches = 0, programmatic_launches = 0, ptx_loads = 0, cubin_loads = 0, stream_syncs = 0;
  long long stream_flags = -1;
} fake;

int setting(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::atoi(value) : fallback;
}

void drain_all() {
  for (CUstream s : fake.streams) {
    while (!s->queue.empty()) {
      Op op = std::move(s->queue.front());
      s->queue.pop_front();
      op();
    }
  }
}

// Queued on the stream, or recorded into the graph it is capturing.
CUresult enqueue(CUstream stream, Op op) {
  if (!fake.streams.count(stream)) return CUDA_ERROR_INVALID_HANDLE;
  if (stream == fake.capturing) {
    fake.capture->ops.push_back(std::move(op));
  } else {
    stream->queue.push_back(std::move(op));
  }
  return CUDA_SUCCESS;
}

// A call that cannot be captured, made while capturing: fails and invalidates the capture.
bool refused_in_capture() {
  if (!fake.capturing || fake.capture_mode == CU_STREAM_CAPTURE_MODE_RELAXED) return false;
  fake.capture_invalidated = true;
  return true;
}

bool is_device(CUdeviceptr p, size_t bytes) {
  // Inside some block: the fake does not track sizes, a block's start is enough for the tests.
  auto it = fake.device_blocks.upper_bound(reinterpret_cast<void*>(p));
  (void)bytes;
  return it != fake.device_blocks.begin();
}

CUresult launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                unsigned shared, CUstream stream, void** params, void** extra) {
  if (f != &store_index && f != &add_int) return CUDA_ERROR_INVALID_HANDLE;
  if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || bx > 1024 || by != 1 || bz != 1 || shared != 0 || extra) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (!params) return CUDA_ERROR_INVALID_VALUE;
  // The values are read at the launch, as the driver does.
  const CUdeviceptr out = *static_cast<CUdeviceptr*>(params[0]);
  const int value = *static_cast<int*>(params[1]);
  const size_t n = size_t{gx} * gy * gz * bx;
  if (!is_device(out, n * 4)) return CUDA_ERROR_INVALID_VALUE;
  const bool add = f == &add_int;
  ++fake.launches;
  return enqueue(stream, [=] {
    int* p = reinterpret_cast<int*>(out);
    for (size_t i = 0; i < n; ++i) p[i] = add ? p[i] + value : value + static_cast<int>(i);
  });
}

}  // namespace

extern "C" long long fake_cuda_stat(const char* name) {
  const std::string n = name;
  long long pending = 0;
  for (CUstream s : fake.streams) pending += static_cast<long long>(s->queue.size());
  if (n == "context_refs") return fake.context_refs;
  if (n == "device_blocks") return static_cast<long long>(fake.device_blocks.size());
  if (n == "host_blocks") return static_cast<long long>(fake.host_blocks.size());
  if (n == "streams") return static_cast<long long>(fake.streams.size());
  if (n == "events") return static_cast<long long>(fake.events.size());
  if (n == "modules") return static_cast<long long>(fake.modules.size());
  if (n == "graphs") return static_cast<long long>(fake.graphs.size());
  if (n == "graph_execs") return static_cast<long long>(fake.graph_execs.size());
  if (n == "launches") return fake.launches;
  if (n == "programmatic_launches") return fake.programmatic_launches;
  if (n == "ptx_loads") return fake.ptx_loads;
  if (n == "cubin_loads") return fake.cubin_loads;
  if (n == "stream_syncs") return fake.stream_syncs;
  if (n == "capture_mode") return fake.capture_mode;
  if (n == "stream_flags") return fake.stream_flags;
  if (n == "pending_ops") return pending;
  std::fprintf(stderr, "fake_cuda_stat: no stat %s\n", name);
  std::abort();
}

// ---- Errors, driver, devices, contexts ----

CUresult CUDAAPI cuGetErrorName(CUresult error, const char** name) {
  switch (error) {
    case CUDA_SUCCESS:
      *name = "CUDA_SUCCESS";
      return CUDA_SUCCESS;
    case CUDA_ERROR_INVALID_VALUE:
      *name = "CUDA_ERROR_INVALID_VALUE";
      return CUDA_SUCCESS;
    case CUDA_ERROR_NO_DEVICE:
      *name = "CUDA_ERROR_NO_DEVICE";
      return CUDA_SUCCESS;
    case CUDA_ERROR_INVALID_DEVICE:
      *name = "CUDA_ERROR_INVALID_DEVICE";
      return CUDA_SUCCESS;
    case CUDA_ERROR_INVALID_PTX:
      *name = "CUDA_ERROR_INVALID_PTX";
      return CUDA_SUCCESS;
    case CUDA_ERROR_INVALID_HANDLE:
      *name = "CUDA_ERROR_INVALID_HANDLE";
      return CUDA_SUCCESS;
    case CUDA_ERROR_NOT_FOUND:
      *name = "CUDA_ERROR_NOT_FOUND";
      return CUDA_SUCCESS;
    case CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED:
      *name = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED";
      return CUDA_SUCCESS;
    case CUDA_ERROR_STREAM_CAPTURE_INVALIDATED:
      *name = "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED";
      return CUDA_SUCCESS;
    default:
      *name = nullptr;
      return CUDA_ERROR_INVALID_VALUE;
  }
}

CUresult CUDAAPI cuGetErrorString(CUresult error, const char** text) {
  const char* name = nullptr;
  if (cuGetErrorName(error, &name) != CUDA_SUCCESS) return CUDA_ERROR_INVALID_VALUE;
  *text = "fake error text";
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuInit(unsigned int flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  return static_cast<CUresult>(setting("FAKE_CUDA_INIT_RESULT", CUDA_SUCCESS));
}

CUresult CUDAAPI cuDriverGetVersion(int* version) {
  *version = 12080;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetCount(int* count) {
  *count = setting("FAKE_CUDA_DEVICES", 1);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGet(CUdevice* device, int ordinal) {
  if (ordinal < 0 || ordinal >= setting("FAKE_CUDA_DEVICES", 1)) return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetName(char* name, int length, CUdevice device) {
  std::snprintf(name, static_cast<size_t>(length), "Fake GPU %d", device);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetAttribute(int* value, CUdevice_attribute attribute, CUdevice) {
  const int sm = setting("FAKE_CUDA_SM", 90);
  if (attribute == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR) {
    *value = sm / 10;
  } else if (attribute == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR) {
    *value = sm % 10;
  } else {
    return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceTotalMem(size_t* bytes, CUdevice) {
  *bytes = size_t{80} << 30;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext* context, CUdevice) {
  ++fake.context_refs;
  *context = &fake.context;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice) {
  if (fake.context_refs == 0) return CUDA_ERROR_INVALID_CONTEXT;
  --fake.context_refs;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetCurrent(CUcontext context) {
  return context == &fake.context && fake.context_refs > 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

// ---- Streams and events ----

CUresult CUDAAPI cuStreamCreate(CUstream* stream, unsigned int flags) {
  *stream = new CUstream_st;
  fake.streams.insert(*stream);
  fake.stream_flags = flags;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamDestroy(CUstream stream) {
  if (!fake.streams.count(stream)) return CUDA_ERROR_INVALID_HANDLE;
  drain_all();
  fake.streams.erase(stream);
  delete stream;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamSynchronize(CUstream stream) {
  if (!fake.streams.count(stream)) return CUDA_ERROR_INVALID_HANDLE;
  if (refused_in_capture()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  ++fake.stream_syncs;
  drain_all();
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventCreate(CUevent* event, unsigned int) {
  *event = new CUevent_st;
  fake.events.insert(*event);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventRecord(CUevent event, CUstream stream) {
  if (!fake.events.count(event)) return CUDA_ERROR_INVALID_HANDLE;
  if (stream == fake.capturing) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;  // not needed by the Device
  event->pending = true;
  return enqueue(stream, [event] { event->pending = false; });
}

CUresult CUDAAPI cuEventSynchronize(CUevent event) {
  if (!fake.events.count(event)) return CUDA_ERROR_INVALID_HANDLE;
  if (refused_in_capture()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  if (event->pending) drain_all();
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventDestroy(CUevent event) {
  if (!fake.events.erase(event)) return CUDA_ERROR_INVALID_HANDLE;
  delete event;
  return CUDA_SUCCESS;
}

// ---- Memory ----

CUresult CUDAAPI cuMemAlloc(CUdeviceptr* pointer, size_t bytes) {
  if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  if (refused_in_capture()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
  std::memset(p, 0xA5, bytes);  // "contents undefined"
  fake.device_blocks.insert(p);
  *pointer = reinterpret_cast<CUdeviceptr>(p);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemFree(CUdeviceptr pointer) {
  void* p = reinterpret_cast<void*>(pointer);
  if (refused_in_capture()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  if (!fake.device_blocks.erase(p)) return CUDA_ERROR_INVALID_VALUE;
  std::free(p);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemHostAlloc(void** pointer, size_t bytes, unsigned int) {
  *pointer = std::malloc(bytes);
  fake.host_blocks.insert(*pointer);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemFreeHost(void* pointer) {
  if (!fake.host_blocks.erase(pointer)) return CUDA_ERROR_INVALID_VALUE;
  std::free(pointer);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemcpyHtoDAsync(CUdeviceptr dst, const void* src, size_t bytes, CUstream stream) {
  if (!is_device(dst, bytes)) return CUDA_ERROR_INVALID_VALUE;
  if (stream == fake.capturing) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;  // from pageable memory
  return enqueue(stream, [=] { std::memcpy(reinterpret_cast<void*>(dst), src, bytes); });
}

CUresult CUDAAPI cuMemcpyDtoHAsync(void* dst, CUdeviceptr src, size_t bytes, CUstream stream) {
  if (!is_device(src, bytes)) return CUDA_ERROR_INVALID_VALUE;
  if (stream == fake.capturing) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  return enqueue(stream, [=] { std::memcpy(dst, reinterpret_cast<const void*>(src), bytes); });
}

CUresult CUDAAPI cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream) {
  if (!is_device(dst, bytes) || !is_device(src, bytes)) return CUDA_ERROR_INVALID_VALUE;
  return enqueue(stream,
                 [=] { std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes); });
}

CUresult CUDAAPI cuMemcpy2DAsync(const CUDA_MEMCPY2D* copy, CUstream stream) {
  const CUDA_MEMCPY2D c = *copy;
  if (c.srcMemoryType != CU_MEMORYTYPE_DEVICE || c.dstMemoryType != CU_MEMORYTYPE_DEVICE || c.srcXInBytes || c.srcY ||
      c.dstXInBytes || c.dstY || c.srcHost || c.dstHost || c.srcArray || c.dstArray || c.srcPitch < c.WidthInBytes ||
      c.dstPitch < c.WidthInBytes || !is_device(c.srcDevice, 0) || !is_device(c.dstDevice, 0)) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  return enqueue(stream, [c] {
    for (size_t row = 0; row < c.Height; ++row) {
      std::memmove(reinterpret_cast<void*>(c.dstDevice + row * c.dstPitch),
                   reinterpret_cast<const void*>(c.srcDevice + row * c.srcPitch), c.WidthInBytes);
    }
  });
}

CUresult CUDAAPI cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t count, CUstream stream) {
  if (!is_device(dst, count)) return CUDA_ERROR_INVALID_VALUE;
  return enqueue(stream, [=] { std::memset(reinterpret_cast<void*>(dst), value, count); });
}

// ---- Modules and launches ----

CUresult CUDAAPI cuModuleLoadDataEx(CUmodule* module, const void* image, unsigned int n_options, CUjit_option* options,
                                    void** values) {
  char* log = nullptr;
  size_t log_bytes = 0;
  for (unsigned i = 0; i < n_options; ++i) {
    if (options[i] == CU_JIT_ERROR_LOG_BUFFER) log = static_cast<char*>(values[i]);
    if (options[i] == CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) {
      log_bytes = static_cast<unsigned>(reinterpret_cast<uintptr_t>(values[i]));
    }
  }
  const char* bytes = static_cast<const char*>(image);
  if (std::memcmp(bytes,
                  "\x7f"
                  "ELF",
                  4) == 0) {
    ++fake.cubin_loads;
    *module = new CUmod_st;
  } else {
    const std::string text = bytes;  // PTX: NUL-terminated
    if (text.find(".entry") == std::string::npos || text.find("syntax error") != std::string::npos) {
      if (log && log_bytes) std::snprintf(log, log_bytes, "fake ptxas: syntax error in line 1\n");
      return CUDA_ERROR_INVALID_PTX;
    }
    ++fake.ptx_loads;
    *module = new CUmod_st{text};
  }
  fake.modules.insert(*module);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleGetFunction(CUfunction* function, CUmodule module, const char* name) {
  if (!fake.modules.count(module)) return CUDA_ERROR_INVALID_HANDLE;
  for (CUfunction f : {&store_index, &add_int}) {
    const bool in_module =
        module->text.empty() || module->text.find(std::string(".entry ") + f->name + "(") != std::string::npos;
    if (in_module && std::strcmp(name, f->name) == 0) {
      *function = f;
      return CUDA_SUCCESS;
    }
  }
  return CUDA_ERROR_NOT_FOUND;
}

CUresult CUDAAPI cuModuleUnload(CUmodule module) {
  if (!fake.modules.erase(module)) return CUDA_ERROR_INVALID_HANDLE;
  delete module;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuLaunchKernel(CUfunction f, unsigned int grid_x, unsigned int grid_y, unsigned int grid_z,
                                unsigned int block_x, unsigned int block_y, unsigned int block_z,
                                unsigned int shared_bytes, CUstream stream, void** params, void** extra) {
  return launch(f, grid_x, grid_y, grid_z, block_x, block_y, block_z, shared_bytes, stream, params, extra);
}

CUresult CUDAAPI cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction f, void** params, void** extra) {
  bool programmatic = false;
  for (unsigned i = 0; i < config->numAttrs; ++i) {
    const CUlaunchAttribute& a = config->attrs[i];
    if (a.id != CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION) return CUDA_ERROR_INVALID_VALUE;
    if (a.value.programmaticStreamSerializationAllowed != 1) return CUDA_ERROR_INVALID_VALUE;
    programmatic = true;
  }
  const CUresult rc =
      launch(f, config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX, config->blockDimY,
             config->blockDimZ, config->sharedMemBytes, config->hStream, params, extra);
  if (rc == CUDA_SUCCESS && programmatic) ++fake.programmatic_launches;
  return rc;
}

// ---- Graphs ----

CUresult CUDAAPI cuStreamBeginCapture(CUstream stream, CUstreamCaptureMode mode) {
  if (!fake.streams.count(stream)) return CUDA_ERROR_INVALID_HANDLE;
  if (fake.capturing) return CUDA_ERROR_ILLEGAL_STATE;
  fake.capturing = stream;
  fake.capture = new CUgraph_st;
  fake.capture_mode = mode;
  fake.capture_invalidated = false;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamEndCapture(CUstream stream, CUgraph* graph) {
  if (stream != fake.capturing) return CUDA_ERROR_ILLEGAL_STATE;
  fake.capturing = nullptr;
  if (fake.capture_invalidated) {
    delete fake.capture;
    *graph = nullptr;
    return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
  }
  *graph = fake.capture;
  fake.graphs.insert(*graph);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphInstantiate(CUgraphExec* exec, CUgraph graph, unsigned long long flags) {
  if (!fake.graphs.count(graph) || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  *exec = new CUgraphExec_st{graph->ops};
  fake.graph_execs.insert(*exec);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphLaunch(CUgraphExec exec, CUstream stream) {
  if (!fake.graph_execs.count(exec)) return CUDA_ERROR_INVALID_HANDLE;
  for (const Op& op : exec->ops) {
    if (CUresult rc = enqueue(stream, op); rc != CUDA_SUCCESS) return rc;
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphExecDestroy(CUgraphExec exec) {
  if (!fake.graph_execs.erase(exec)) return CUDA_ERROR_INVALID_HANDLE;
  delete exec;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphDestroy(CUgraph graph) {
  if (!fake.graphs.erase(graph)) return CUDA_ERROR_INVALID_HANDLE;
  delete graph;
  return CUDA_SUCCESS;
}
