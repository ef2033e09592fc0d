// The CUDA driver Device (runtime/cuda/cuda_driver_device.h). Runs on every machine: with a GPU
// the device checks run on it; without one, opening it must say why (and the test prints that);
// where the toolkit's cuda.h is installed the same checks run on a fake libcuda built from it
// (fake_libcuda.cpp: host memory, stream work deferred until waited for), and the driver structs
// the Device declares itself are compared with cuda.h's.
#include "runtime/cuda/cuda_driver_device.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#if __has_include(<cuda.h>)
#include <cuda.h>
#define BITNET_TEST_HAVE_CUDA_H 1
#endif

namespace bitnet::runtime::cuda {
namespace {

// ---- The struct layouts -------------------------------------------------------------------------

// What CUDA 13.0's cuda.h says on LP64 (unchanged since CUDA 11.8 at least).
#define BITNET_CUDA_LAYOUT(X)                     \
  X(sizeof(CUDA_MEMCPY2D), 128)                   \
  X(offsetof(CUDA_MEMCPY2D, srcMemoryType), 16)   \
  X(offsetof(CUDA_MEMCPY2D, srcHost), 24)         \
  X(offsetof(CUDA_MEMCPY2D, srcDevice), 32)       \
  X(offsetof(CUDA_MEMCPY2D, srcPitch), 48)        \
  X(offsetof(CUDA_MEMCPY2D, dstXInBytes), 56)     \
  X(offsetof(CUDA_MEMCPY2D, dstMemoryType), 72)   \
  X(offsetof(CUDA_MEMCPY2D, dstDevice), 88)       \
  X(offsetof(CUDA_MEMCPY2D, dstPitch), 104)       \
  X(offsetof(CUDA_MEMCPY2D, WidthInBytes), 112)   \
  X(offsetof(CUDA_MEMCPY2D, Height), 120)         \
  X(sizeof(CUlaunchAttributeValue), 64)           \
  X(sizeof(CUlaunchAttribute), 72)                \
  X(offsetof(CUlaunchAttribute, value), 8)        \
  X(sizeof(CUlaunchConfig), 56)                   \
  X(offsetof(CUlaunchConfig, sharedMemBytes), 24) \
  X(offsetof(CUlaunchConfig, hStream), 32)        \
  X(offsetof(CUlaunchConfig, attrs), 40)          \
  X(offsetof(CUlaunchConfig, numAttrs), 48)

#ifdef BITNET_TEST_HAVE_CUDA_H
#define BITNET_CHECK_LAYOUT(expr, bytes) static_assert((expr) == (bytes), #expr);
BITNET_CUDA_LAYOUT(BITNET_CHECK_LAYOUT)
#undef BITNET_CHECK_LAYOUT
#endif

TEST(CudaDriverAbi, StructLayoutsAreCudaHs) {
#define BITNET_LAYOUT_ENTRY(expr, bytes) {#expr, bytes},
  const std::map<std::string, size_t> expected = {BITNET_CUDA_LAYOUT(BITNET_LAYOUT_ENTRY)};
#undef BITNET_LAYOUT_ENTRY
#ifdef BITNET_TEST_HAVE_CUDA_H
  std::printf("the expected layout is static_asserted against cuda.h (CUDA_VERSION %d)\n", CUDA_VERSION);
#else
  std::printf("no cuda.h here: compared with CUDA 13.0's sizes only\n");
#endif
  const auto layout = cuda_driver_abi_layout();
  EXPECT_EQ(layout.size(), expected.size());
  for (const auto& [name, value] : layout) {
    auto it = expected.find(name);
    ASSERT_NE(it, expected.end()) << name;
    EXPECT_EQ(value, it->second) << name;
  }
}

// ---- The device checks (on a GPU, and on the fake driver) ------------------------------------

// Two kernels by hand: store_index(int* out, int v): out[i] = v + i; add_int(int* p, int v):
// p[i] += v (i = blockIdx.x * blockDim.x + threadIdx.x). PTX 7.0 for sm_80: any GPU the backend
// takes JIT-compiles it.
constexpr char kPtx[] = R"(.version 7.0
.target sm_80
.address_size 64

.visible .entry store_index(
	.param .u64 store_index_param_0,
	.param .u32 store_index_param_1
)
{
	.reg .b32 %r<7>;
	.reg .b64 %rd<5>;

	ld.param.u64 %rd1, [store_index_param_0];
	ld.param.u32 %r1, [store_index_param_1];
	cvta.to.global.u64 %rd2, %rd1;
	mov.u32 %r2, %ctaid.x;
	mov.u32 %r3, %ntid.x;
	mov.u32 %r4, %tid.x;
	mad.lo.s32 %r5, %r2, %r3, %r4;
	add.s32 %r6, %r1, %r5;
	mul.wide.s32 %rd3, %r5, 4;
	add.s64 %rd4, %rd2, %rd3;
	st.global.u32 [%rd4], %r6;
	ret;
}

.visible .entry add_int(
	.param .u64 add_int_param_0,
	.param .u32 add_int_param_1
)
{
	.reg .b32 %r<8>;
	.reg .b64 %rd<5>;

	ld.param.u64 %rd1, [add_int_param_0];
	ld.param.u32 %r1, [add_int_param_1];
	cvta.to.global.u64 %rd2, %rd1;
	mov.u32 %r2, %ctaid.x;
	mov.u32 %r3, %ntid.x;
	mov.u32 %r4, %tid.x;
	mad.lo.s32 %r5, %r2, %r3, %r4;
	mul.wide.s32 %rd3, %r5, 4;
	add.s64 %rd4, %rd2, %rd3;
	ld.global.u32 %r6, [%rd4];
	add.s32 %r7, %r6, %r1;
	st.global.u32 [%rd4], %r7;
	ret;
}
)";

ModuleImage test_module() {
  ModuleImage image;
  image.kernels = {"store_index", "add_int"};
  image.ptx = kPtx;
  image.sm = 0;  // PTX only
  return image;
}

#define EXPECT_OK(expr)                                                        \
  do {                                                                         \
    const auto& bitnet_s_ = (expr);                                            \
    EXPECT_TRUE(bitnet_s_.ok()) << #expr << ": " << bitnet_s_.error().message; \
  } while (0)
#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    const auto& bitnet_s_ = (expr);                                            \
    ASSERT_TRUE(bitnet_s_.ok()) << #expr << ": " << bitnet_s_.error().message; \
  } while (0)

template <class T>
std::vector<T> read(Device& d, DevicePtr p, size_t n) {
  std::vector<T> out(n);
  const Status s = d.download(out.data(), p, static_cast<int64_t>(n * sizeof(T)));
  EXPECT_TRUE(s.ok()) << s.error().message;
  return out;
}

void check_memory(Device& d) {
  // A large upload (1 MiB: copied from the caller's memory), overwritten as soon as it returns.
  constexpr int64_t kBig = 1 << 20;
  std::vector<uint8_t> expected(kBig);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<uint8_t>(i * 7 + 3);
  auto big = d.alloc(kBig);
  ASSERT_OK(big);
  EXPECT_EQ(*big % 256, 0u);
  std::vector<uint8_t> host = expected;
  ASSERT_OK(d.upload(*big, host.data(), kBig));
  std::fill(host.begin(), host.end(), uint8_t{0xEE});
  EXPECT_EQ(read<uint8_t>(d, *big, kBig), expected);

  // Small uploads (through the staging slots, more of them than slots), each from a variable
  // overwritten right after.
  constexpr int kSmall = 20;
  auto small = d.alloc(kSmall * 4);
  ASSERT_OK(small);
  for (int i = 0; i < kSmall; ++i) {
    int32_t v = 1000 + i;
    ASSERT_OK(d.upload(*small + 4 * static_cast<DevicePtr>(i), &v, 4));
    v = -1;
  }
  const auto smalls = read<int32_t>(d, *small, kSmall);
  for (int i = 0; i < kSmall; ++i) EXPECT_EQ(smalls[static_cast<size_t>(i)], 1000 + i) << i;

  // fill_zero, copy, copy_2d (8 rows of 16 bytes, from a pitch of 64 to one of 32), after each
  // other in the stream.
  ASSERT_OK(d.fill_zero(*big + 100, 50));
  std::fill(expected.begin() + 100, expected.begin() + 150, uint8_t{0});
  auto other = d.alloc(4096);
  ASSERT_OK(other);
  ASSERT_OK(d.copy(*other, *big, 4096));
  EXPECT_EQ(read<uint8_t>(d, *other, 4096), std::vector<uint8_t>(expected.begin(), expected.begin() + 4096));
  ASSERT_OK(d.fill_zero(*other, 4096));
  ASSERT_OK(d.copy_2d(*other, 32, *big + 1000, 64, 16, 8));
  const auto rows = read<uint8_t>(d, *other, 4096);
  for (size_t r = 0; r < 8; ++r) {
    for (size_t c = 0; c < 32; ++c) {
      EXPECT_EQ(rows[r * 32 + c], c < 16 ? expected[1000 + r * 64 + c] : 0) << r << "," << c;
    }
  }
  EXPECT_EQ(rows[8 * 32], 0);
  // One row: a plain copy, whatever the pitches.
  ASSERT_OK(d.copy_2d(*other, 0, *big, 0, 8, 1));
  EXPECT_EQ(read<uint8_t>(d, *other, 8), std::vector<uint8_t>(expected.begin(), expected.begin() + 8));

  // Sizes: 0 is nothing, negative an error.
  auto empty = d.alloc(0);
  ASSERT_OK(empty);
  EXPECT_NE(*empty, 0u);
  EXPECT_OK(d.upload(*empty, host.data(), 0));
  EXPECT_FALSE(d.upload(*big, host.data(), -1).ok());
  EXPECT_FALSE(d.alloc(-5).ok());
  EXPECT_FALSE(d.copy_2d(*other, 8, *big, 64, 16, 2).ok());  // rows wider than the pitch
  d.release(*empty);
  d.release(*other);
  d.release(*small);
  d.release(*big);
  d.release(0);
}

void check_kernels(Device& d) {
  auto module = d.load_module(test_module());
  ASSERT_OK(module);
  constexpr size_t kN = 256;
  auto out = d.alloc(kN * 4);
  ASSERT_OK(out);
  const std::vector<KernelArg> store7 = {KernelArg::ptr(*out), KernelArg::int32(7)};
  ASSERT_OK(d.launch(*module, 0, {4, 1, 1}, 64, store7, false));
  auto v = read<int32_t>(d, *out, kN);
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(v[i], 7 + static_cast<int>(i)) << i;

  // With programmatic stream serialization where the device has it (nothing before it in the
  // stream: these kernels do not wait for their predecessor with griddepcontrol.wait).
  ASSERT_OK(d.synchronize());
  const std::vector<KernelArg> store_minus5 = {KernelArg::ptr(*out), KernelArg::int32(-5)};
  ASSERT_OK(d.launch(*module, 0, {2, 1, 1}, 128, store_minus5, true));
  v = read<int32_t>(d, *out, kN);
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(v[i], -5 + static_cast<int>(i)) << i;

  if (d.info().graphs) {
    // Captured launches do not run until replayed; each replay runs them again.
    const std::vector<KernelArg> add100 = {KernelArg::ptr(*out), KernelArg::int32(100)};
    auto graph = d.capture([&] { return d.launch(*module, 1, {4, 1, 1}, 64, add100, false); });
    ASSERT_OK(graph);
    v = read<int32_t>(d, *out, kN);
    for (size_t i = 0; i < kN; ++i) ASSERT_EQ(v[i], -5 + static_cast<int>(i)) << i;
    ASSERT_OK(d.replay(*graph));
    ASSERT_OK(d.replay(*graph));
    v = read<int32_t>(d, *out, kN);
    for (size_t i = 0; i < kN; ++i) ASSERT_EQ(v[i], 195 + static_cast<int>(i)) << i;
    d.destroy_graph(*graph);
    EXPECT_FALSE(d.replay(*graph).ok());

    // A failing `record`: its error; the capture is ended and the device still works.
    auto failed = d.capture([] { return Status(make_error("record failed on purpose")); });
    ASSERT_FALSE(failed.ok());
    EXPECT_NE(failed.error().message.find("record failed on purpose"), std::string::npos);
    // What cannot be captured is refused.
    int32_t one = 1;
    auto refused = d.capture([&] { return d.upload(*out, &one, 4); });
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message.find("inside capture"), std::string::npos) << refused.error().message;
    ASSERT_OK(d.launch(*module, 1, {4, 1, 1}, 64, add100, false));
    v = read<int32_t>(d, *out, kN);
    for (size_t i = 0; i < kN; ++i) ASSERT_EQ(v[i], 295 + static_cast<int>(i)) << i;
  } else {
    std::printf("this driver cannot capture graphs: capture() and replay() not checked\n");
  }

  // Errors name what failed.
  auto bad_kernel = d.launch(*module, 5, {1, 1, 1}, 32, store7, false);
  ASSERT_FALSE(bad_kernel.ok());
  EXPECT_NE(bad_kernel.error().message.find("no kernel 5"), std::string::npos) << bad_kernel.error().message;
  EXPECT_FALSE(d.launch(*module + 100, 0, {1, 1, 1}, 32, store7, false).ok());
  EXPECT_FALSE(d.launch(*module, 0, {1, 1, 1}, 0, store7, false).ok());

  ModuleImage missing = test_module();
  missing.kernels.push_back("no_such_kernel");
  auto no_kernel = d.load_module(missing);
  ASSERT_FALSE(no_kernel.ok());
  EXPECT_NE(no_kernel.error().message.find("no_such_kernel"), std::string::npos) << no_kernel.error().message;

  // A CUBIN for another SM and no PTX; PTX for a newer SM than the device's.
  const uint8_t elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
  ModuleImage other_sm;
  other_sm.kernels = {"store_index"};
  other_sm.cubin = elf;
  other_sm.sm = 50;
  auto wrong_sm = d.load_module(other_sm);
  ASSERT_FALSE(wrong_sm.ok());
  const std::string device_sm = "sm_" + std::to_string(d.info().sm);
  EXPECT_NE(wrong_sm.error().message.find("compiled for sm_50"), std::string::npos) << wrong_sm.error().message;
  EXPECT_NE(wrong_sm.error().message.find(device_sm), std::string::npos) << wrong_sm.error().message;
  ModuleImage newer;
  newer.kernels = {"store_index"};
  newer.ptx = ".version 9.0\n.target sm_990\n.address_size 64\n";
  auto too_new = d.load_module(newer);
  ASSERT_FALSE(too_new.ok());
  EXPECT_NE(too_new.error().message.find("sm_990"), std::string::npos) << too_new.error().message;
  EXPECT_FALSE(d.load_module(ModuleImage{}).ok());

  // `out` is left for the destructor to free.
}

void check_device(Device& d) {
  const DeviceInfo& info = d.info();
  std::printf("device: %s, sm_%d, %.1f GiB, graphs %s, programmatic launch %s\n", info.name.c_str(), info.sm,
              static_cast<double>(info.memory) / (1 << 30), info.graphs ? "yes" : "no",
              info.programmatic_launch ? "yes" : "no");
  EXPECT_FALSE(info.name.empty());
  EXPECT_GE(info.sm, 80);
  EXPECT_GT(info.memory, 0);
  EXPECT_TRUE(!info.programmatic_launch || info.sm >= 90);
  check_memory(d);
  check_kernels(d);
}

// The message of a failed open: says what is missing.
void check_open_error(const Error& e) {
  EXPECT_FALSE(e.message.empty());
  const std::string& m = e.message;
  EXPECT_TRUE(m.find("libcuda") != std::string::npos || m.find("CUDA") != std::string::npos ||
              m.find("device") != std::string::npos)
      << m;
}

TEST(CudaDriverDevice, OpensTheGpuOrSaysWhy) {
  std::printf("cuda_driver_status(): %s\n", cuda_driver_status().c_str());
  auto device = open_cuda_device();
  if (!device.ok()) {
    std::printf("no GPU checks: open_cuda_device() failed: %s\n", device.error().message.c_str());
    check_open_error(device.error());
    return;
  }
  check_device(**device);
}

TEST(CudaDriverDevice, StatusIsOneLine) {
  const std::string status = cuda_driver_status();
  EXPECT_FALSE(status.empty());
  EXPECT_EQ(status.find('\n'), std::string::npos) << status;
  EXPECT_NE(status.find("CUDA"), std::string::npos) << status;
}

TEST(CudaDriverDevice, NoSuchDevice) {
  auto device = open_cuda_device(9999);
  ASSERT_FALSE(device.ok());
  std::printf("open_cuda_device(9999): %s\n", device.error().message.c_str());
  check_open_error(device.error());
  EXPECT_FALSE(open_cuda_device(-1).ok());
}

TEST(CudaDriverDevice, NoLibrary) {
  auto device = open_cuda_device_from("/nonexistent/libcuda.so.1");
  ASSERT_FALSE(device.ok());
  EXPECT_NE(device.error().message.find("no NVIDIA driver: /nonexistent/libcuda.so.1 could not be loaded ("),
            std::string::npos)
      << device.error().message;
  const std::string status = cuda_driver_status_from("/nonexistent/libcuda.so.1");
  EXPECT_EQ(status.rfind("no CUDA driver (/nonexistent/libcuda.so.1: ", 0), 0u) << status;
}

// What LD_LIBRARY_PATH=/usr/local/cuda/lib64/stubs makes dlopen("libcuda.so.1") find.
TEST(CudaDriverDevice, ToolkitStubIsNamed) {
  const std::string stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (!std::filesystem::exists(stub)) GTEST_SKIP() << stub << " is absent (no CUDA toolkit here)";
  const std::string status = cuda_driver_status();
  auto device = open_cuda_device_from(stub);
  ASSERT_FALSE(device.ok());
  std::printf("%s\n", device.error().message.c_str());
  EXPECT_NE(device.error().message.find(stub + " is the CUDA toolkit's stub, not a driver"), std::string::npos)
      << device.error().message;
  EXPECT_EQ(cuda_driver_status_from(stub), "no CUDA driver (" + stub + " is the CUDA toolkit's stub, not a driver)");
  // Unloaded again: dlopen("libcuda.so.1") does not now find the stub by its soname.
  EXPECT_EQ(cuda_driver_status(), status);
}

// ---- The fake driver ---------------------------------------------------------------------------

#ifdef BITNET_FAKE_LIBCUDA

constexpr char kFake[] = BITNET_FAKE_LIBCUDA;

long long stat(const char* name) {
  void* library = dlopen(kFake, RTLD_NOW | RTLD_NOLOAD);
  if (!library) return -1;
  auto fn = reinterpret_cast<long long (*)(const char*)>(dlsym(library, "fake_cuda_stat"));
  dlclose(library);  // the NOLOAD reference only
  return fn ? fn(name) : -1;
}

// Sets an environment variable of the fake driver for one scope.
class FakeSetting {
 public:
  FakeSetting(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~FakeSetting() { unsetenv(name_); }

 private:
  const char* name_;
};

TEST(CudaDriverFake, RunsTheDeviceChecks) {
  auto device = open_cuda_device_from(kFake);
  ASSERT_OK(device);
  const DeviceInfo& info = (*device)->info();
  EXPECT_EQ(info.name, "Fake GPU 0");
  EXPECT_EQ(info.sm, 90);
  EXPECT_EQ(info.memory, int64_t{80} << 30);
  EXPECT_TRUE(info.graphs);
  EXPECT_TRUE(info.programmatic_launch);
  EXPECT_EQ(stat("stream_flags"), 1);  // CU_STREAM_NON_BLOCKING
  const long long programmatic = stat("programmatic_launches");
  check_device(**device);
  EXPECT_EQ(stat("programmatic_launches"), programmatic + 1);
  EXPECT_EQ(stat("capture_mode"), 1);  // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
  EXPECT_GE(stat("ptx_loads"), 1);

  // The destructor frees everything: memory left allocated, modules, graphs, the stream, the
  // staging slots, the context reference.
  device->reset();
  for (const char* what : {"context_refs", "device_blocks", "host_blocks", "streams", "events", "modules", "graphs",
                           "graph_execs", "pending_ops"}) {
    EXPECT_EQ(stat(what), 0) << what;
  }
}

// Token ids and positions: small uploads queue their copy and return without waiting.
TEST(CudaDriverFake, SmallUploadsDoNotWait) {
  auto device = open_cuda_device_from(kFake);
  ASSERT_OK(device);
  Device& d = **device;
  auto p = d.alloc(16);
  ASSERT_OK(p);
  const long long syncs = stat("stream_syncs");
  for (int32_t i = 0; i < 4; ++i) ASSERT_OK(d.upload(*p + 4 * static_cast<DevicePtr>(i), &i, 4));
  EXPECT_EQ(stat("stream_syncs"), syncs);
  EXPECT_EQ(stat("pending_ops"), 8);  // a copy and an event each
  EXPECT_EQ(read<int32_t>(d, *p, 4), (std::vector<int32_t>{0, 1, 2, 3}));
  // A large one waits.
  std::vector<uint8_t> big(1 << 20, 1);
  auto q = d.alloc(static_cast<int64_t>(big.size()));
  ASSERT_OK(q);
  ASSERT_OK(d.upload(*q, big.data(), static_cast<int64_t>(big.size())));
  EXPECT_EQ(stat("pending_ops"), 0);
}

TEST(CudaDriverFake, CubinForTheDeviceSmIsPreferred) {
  auto device = open_cuda_device_from(kFake);
  ASSERT_OK(device);
  const uint8_t elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
  ModuleImage image = test_module();
  image.cubin = elf;
  image.sm = 90;
  const long long cubins = stat("cubin_loads"), ptxs = stat("ptx_loads");
  ASSERT_OK((*device)->load_module(image));
  EXPECT_EQ(stat("cubin_loads"), cubins + 1);
  EXPECT_EQ(stat("ptx_loads"), ptxs);
  image.sm = 80;  // another SM: the PTX
  ASSERT_OK((*device)->load_module(image));
  EXPECT_EQ(stat("cubin_loads"), cubins + 1);
  EXPECT_EQ(stat("ptx_loads"), ptxs + 1);
  image.ptx = {};  // no PTX, a CUBIN of another major version: nothing to load
  image.sm = 89;
  EXPECT_FALSE((*device)->load_module(image).ok());

  // On an sm_86 device, an sm_80 CUBIN (same major version) where there is no PTX.
  FakeSetting sm("FAKE_CUDA_SM", "86");
  auto sm86 = open_cuda_device_from(kFake);
  ASSERT_OK(sm86);
  image.sm = 80;
  ASSERT_OK((*sm86)->load_module(image));
  EXPECT_EQ(stat("cubin_loads"), cubins + 2);
}

TEST(CudaDriverFake, PtxErrorsCarryTheJitLog) {
  auto device = open_cuda_device_from(kFake);
  ASSERT_OK(device);
  ModuleImage image;
  image.kernels = {"store_index"};
  image.ptx = ".version 7.0\n.target sm_80\n.visible .entry store_index() { syntax error }\n";
  auto m = (*device)->load_module(image);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("CUDA_ERROR_INVALID_PTX"), std::string::npos) << m.error().message;
  EXPECT_NE(m.error().message.find("fake ptxas: syntax error in line 1"), std::string::npos) << m.error().message;
  std::printf("%s\n", m.error().message.c_str());
}

TEST(CudaDriverFake, SaysWhyItCannotOpen) {
  {
    FakeSetting sm("FAKE_CUDA_SM", "75");
    auto device = open_cuda_device_from(kFake);
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.error().message,
              "the CUDA backend needs compute capability 8.0 or newer (sm_80); device 0 is sm_75 (Fake GPU 0)");
    EXPECT_EQ(cuda_driver_status_from(kFake), "CUDA driver 12.8, 1 device: Fake GPU 0 (sm_75, 80 GiB, below sm_80)");
  }
  {
    FakeSetting init("FAKE_CUDA_INIT_RESULT", "100");
    auto device = open_cuda_device_from(kFake);
    ASSERT_FALSE(device.ok());
    EXPECT_NE(device.error().message.find("cuInit: CUDA_ERROR_NO_DEVICE (100)"), std::string::npos)
        << device.error().message;
    EXPECT_NE(cuda_driver_status_from(kFake).find("CUDA driver 12.8, no usable device (cuInit: CUDA_ERROR_NO_DEVICE"),
              std::string::npos)
        << cuda_driver_status_from(kFake);
  }
  {
    FakeSetting two("FAKE_CUDA_DEVICES", "2");
    auto device = open_cuda_device_from(kFake, 2);
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.error().message,
              "CUDA device 2 does not exist: the driver sees 2 devices (CUDA_VISIBLE_DEVICES applies)");
    EXPECT_EQ(cuda_driver_status_from(kFake),
              "CUDA driver 12.8, 2 devices: Fake GPU 0 (sm_90, 80 GiB), Fake GPU 1 (sm_90, 80 GiB)");
    ASSERT_OK(open_cuda_device_from(kFake, 1));
  }
  EXPECT_EQ(cuda_driver_status_from(kFake), "CUDA driver 12.8, 1 device: Fake GPU 0 (sm_90, 80 GiB)");
  EXPECT_EQ(stat("context_refs"), 0);
}

#else

TEST(CudaDriverFake, NotBuilt) {
  std::printf("the fake libcuda is not built (no CUDA toolkit headers): the device checks ran only where a GPU is\n");
}

#endif

}  // namespace
}  // namespace bitnet::runtime::cuda
