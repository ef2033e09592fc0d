// Standalone device check of the CUDA kernels (codegen_cuda): on a machine with an NVIDIA GPU,
// runs every kernel of cuda_check_shapes.h on random data, compares the results with the CPU
// reference kernels by the same criteria as tests/codegen_cuda (bit for bit), times the 2B4T
// decode GEMVs and the LM head against the H200's 4.8 TB/s, and prints one JSON object.
// Built here with the kernels embedded (CUBIN sm_90 + PTX) and only glibc + libcuda.so.1
// (dlopen'ed) needed there. Exit codes: 0 all parity checks passed; 1 a parity check failed;
// 2 no usable GPU or driver; 3 a CUDA error while running; 4 bad usage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/cuda_check_shapes.h"
#include "bench/cuda_driver.h"
#include "codegen_cuda/repack.h"
#include "reference/kernels.h"

extern const unsigned char kBitnetCheckCubinSm90[];
extern const unsigned long kBitnetCheckCubinSm90_size;
extern const unsigned char kBitnetCheckPtxSm90[];
extern const char kBitnetCheckNvrtcVersion[];

namespace bitnet::bench {
namespace {

constexpr double kPeakGbps = 4800.0;  // H200 HBM3e
enum ExitCode { kOk = 0, kParityFailed = 1, kNoGpu = 2, kCudaError = 3, kUsage = 4 };

CudaDriver cu;

void check(CUresult rc, const char* what) {
  if (rc != CUDA_SUCCESS) throw std::runtime_error(std::string(what) + ": " + cu.error_string(rc));
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

std::string num(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6g", v);
  return buffer;
}

// Device memory freed on scope exit.
struct DeviceBuffer {
  CUdeviceptr ptr = 0;
  explicit DeviceBuffer(size_t bytes) { check(cu.cuMemAlloc(&ptr, bytes ? bytes : 1), "cuMemAlloc"); }
  DeviceBuffer(const void* host, size_t bytes) : DeviceBuffer(bytes) { upload(host, bytes); }
  ~DeviceBuffer() {
    if (ptr) cu.cuMemFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(const void* host, size_t bytes) { check(cu.cuMemcpyHtoD(ptr, host, bytes), "cuMemcpyHtoD"); }
  void download(void* host, size_t bytes) const { check(cu.cuMemcpyDtoH(host, ptr, bytes), "cuMemcpyDtoH"); }
};

struct Launch {
  CUfunction fn;
  codegen_cuda::Dim3 grid;
  int threads;
  void run(std::vector<void*> args) const {
    check(cu.cuLaunchKernel(fn, grid.x, grid.y, grid.z, static_cast<unsigned>(threads), 1, 1, 0, nullptr, args.data(),
                            nullptr),
          "cuLaunchKernel");
  }
};

// Mean microseconds per call of `body(i)` over `iters` calls after a warm-up, by CUDA events.
template <class F>
double time_us(int iters, F&& body) {
  for (int i = 0; i < 5; ++i) body(i);
  CUevent start, stop;
  check(cu.cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
  check(cu.cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  check(cu.cuEventRecord(start, nullptr), "cuEventRecord");
  for (int i = 0; i < iters; ++i) body(i);
  check(cu.cuEventRecord(stop, nullptr), "cuEventRecord");
  check(cu.cuEventSynchronize(stop), "cuEventSynchronize");
  float ms = 0;
  check(cu.cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
  return 1000.0 * ms / iters;
}

std::vector<float> random_normal(size_t n, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<uint8_t> random_i2s(int64_t rows, int64_t cols, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> data(static_cast<size_t>(rows * cols / 4 + 32), 0);
  for (int64_t j = 0; j < rows * cols; ++j) {
    data[j / 128 * 32 + j % 32] |= static_cast<uint8_t>((rng() % 3) << (6 - 2 * (j % 128 / 32)));
  }
  std::memcpy(data.data() + rows * cols / 4, &scale, 4);
  return data;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

struct Result {
  std::string json;
  bool parity = true;
};

std::string result_json(const std::string& kind, const std::string& name, const std::string& shape, bool parity,
                        int64_t mismatches, int64_t checked, double us, double bytes, const std::string& extra) {
  const double gbps = bytes / (us * 1e-6) / 1e9;
  return "{\"kind\":\"" + kind + "\",\"kernel\":\"" + name + "\",\"shape\":\"" + shape +
         "\",\"parity\":" + (parity ? "true" : "false") + ",\"mismatches\":" + std::to_string(mismatches) +
         ",\"checked\":" + std::to_string(checked) + ",\"time_us\":" + num(us) + ",\"bytes\":" + num(bytes) +
         ",\"gbps\":" + num(gbps) + ",\"fraction_of_peak\":" + num(gbps / kPeakGbps) + extra + "}";
}

Result run_norm(CUmodule module, const codegen_cuda::RmsNormQuantShape& shape, int iters) {
  const auto k = codegen_cuda::emit_rmsnorm_quant(shape);
  CUfunction fn;
  check(cu.cuModuleGetFunction(&fn, module, k.name.c_str()), k.name.c_str());
  const int tokens = 4;
  const int64_t n = shape.n;
  std::vector<float> x = random_normal(static_cast<size_t>(n * tokens), 11, 3.0f);
  const std::vector<float> gain = random_normal(static_cast<size_t>(n), 12, 1.0f);
  DeviceBuffer dx(x.data(), x.size() * 4), dg(gain.data(), gain.size() * 4), dq(x.size()), ds(tokens * 4),
      dsum(tokens * 4), dy(x.size() * 4);
  int n_tokens = tokens;
  std::vector<void*> args = {&dx.ptr, &dg.ptr, &dq.ptr, &ds.ptr, &dsum.ptr, &dy.ptr, &n_tokens};
  const Launch launch{fn, codegen_cuda::rmsnorm_quant_grid(tokens), k.threads};
  launch.run(args);
  check(cu.cuCtxSynchronize(), "norm kernel");
  std::vector<int8_t> q(x.size());
  std::vector<float> scale(tokens), normed(x.size());
  std::vector<int32_t> sum(tokens);
  dq.download(q.data(), q.size());
  ds.download(scale.data(), tokens * 4);
  dsum.download(sum.data(), tokens * 4);
  dy.download(normed.data(), normed.size() * 4);
  int64_t mismatches = 0;
  std::vector<float> y(static_cast<size_t>(n));
  std::vector<int8_t> q_ref(static_cast<size_t>(n));
  for (int t = 0; t < tokens; ++t) {
    ref::rms_norm(x.data() + t * n, n, shape.eps, y.data());
    for (int64_t i = 0; i < n; ++i) y[i] = y[i] * gain[i];
    const ref::I8Row row = ref::quantize_row_i8(y.data(), n, q_ref.data());
    mismatches += bits(scale[t]) != bits(row.scale);
    mismatches += sum[t] != row.sum;
    for (int64_t i = 0; i < n; ++i) {
      mismatches += q[t * n + i] != q_ref[i];
      if (shape.write_normed) mismatches += bits(normed[t * n + i]) != bits(y[i]);
    }
  }
  n_tokens = 1;
  const double us = time_us(iters, [&](int) { launch.run(args); });
  const double bytes = n * 4.0 * 2 + n + (shape.write_normed ? n * 4.0 : 0);
  Result r;
  r.parity = mismatches == 0;
  r.json = result_json("rmsnorm_quant", k.name, "n=" + std::to_string(n) + " T=1", r.parity, mismatches,
                       tokens * (n + 2), us, bytes, "");
  return r;
}

Result run_matmul(CUmodule module, const NamedMatmul& m, int iters, double* decode_us) {
  const auto k = codegen_cuda::emit_matmul_i2s(m.shape);
  CUfunction fn;
  check(cu.cuModuleGetFunction(&fn, module, k.name.c_str()), k.name.c_str());
  const int64_t K = m.shape.k, M = m.shape.m;
  const int T = m.n_tokens;
  const float w_scale = 0.0421f;
  const std::vector<uint8_t> data = random_i2s(M, K, w_scale, static_cast<uint32_t>(K + M));
  const auto packed = codegen_cuda::repack_i2s(data.data(), M, K);
  if (!packed) throw std::runtime_error(packed.error().message);
  const std::vector<float> x = random_normal(static_cast<size_t>(K * T), 21, 2.0f);
  std::vector<int8_t> q(x.size());
  std::vector<ref::I8Row> rows(T);
  std::vector<float> act_scale(T);
  std::vector<int32_t> act_sum(T);
  for (int t = 0; t < T; ++t) {
    rows[t] = ref::quantize_row_i8(x.data() + t * K, K, q.data() + t * K);
    act_scale[t] = rows[t].scale;
    act_sum[t] = rows[t].sum;
  }
  const size_t weight_bytes = packed->size() * 4;
  // Enough copies of the weights that cycling through them misses the 50 MB L2, as a decode
  // step that streams every layer's weights once does.
  const size_t copies = std::min<size_t>(256, (size_t{256} << 20) / weight_bytes + 1);
  DeviceBuffer dw(weight_bytes * copies);
  for (size_t c = 0; c < copies; ++c)
    check(cu.cuMemcpyHtoD(dw.ptr + c * weight_bytes, packed->data(), weight_bytes), "upload");
  DeviceBuffer dq(q.data(), q.size()), ds(act_scale.data(), T * 4), dsum(act_sum.data(), T * 4), dy(M * T * 4);
  CUdeviceptr w_ptr = dw.ptr;
  float scale_arg = w_scale;
  int n_tokens = T;
  std::vector<void*> args = {&w_ptr, &scale_arg, &dq.ptr, &ds.ptr, &dsum.ptr, &dy.ptr, &n_tokens};
  const Launch launch{fn, codegen_cuda::matmul_i2s_grid(m.shape, T), k.threads};
  launch.run(args);
  check(cu.cuCtxSynchronize(), "matmul kernel");
  std::vector<float> y(static_cast<size_t>(M * T)), expect(y.size());
  dy.download(y.data(), y.size() * 4);
  const ref::WeightView w{gguf::GgmlType::I2_S, data.data(), M, K};
  ref::matmul_i8q_rows(q.data(), rows.data(), T, w, 0, M, expect.data());
  int64_t mismatches = 0;
  for (size_t i = 0; i < y.size(); ++i) mismatches += bits(y[i]) != bits(expect[i]);

  const double us = time_us(iters, [&](int i) {
    w_ptr = dw.ptr + static_cast<size_t>(i) % copies * weight_bytes;
    launch.run(args);
  });
  w_ptr = dw.ptr;
  const double hot_us = time_us(iters, [&](int) { launch.run(args); });
  // The decode layer streams q, k, v, o (two of each shape), gate, up (two) and down (one).
  if (T == 1) *decode_us += us * (m.role == "down" ? 1 : 2);
  const double bytes = static_cast<double>(weight_bytes) + K * T + M * T * 4.0;
  Result r;
  r.parity = mismatches == 0;
  r.json = result_json("matmul_i2s", k.name,
                       m.role + ": " + std::to_string(K) + "->" + std::to_string(M) + " T=" + std::to_string(T),
                       r.parity, mismatches, M * T, us, bytes,
                       ",\"weight_copies\":" + std::to_string(copies) + ",\"l2_hot_time_us\":" + num(hot_us));
  return r;
}

Result run_lm_head(CUmodule module, int iters, double* head_us) {
  const auto shape = check_lm_head();
  const auto k = codegen_cuda::emit_lm_head_f16(shape);
  CUfunction fn;
  check(cu.cuModuleGetFunction(&fn, module, k.name.c_str()), k.name.c_str());
  const int64_t K = shape.k, M = shape.m;
  std::vector<uint16_t> w(static_cast<size_t>(K * M));
  {
    std::mt19937 rng(31);
    std::normal_distribution<float> dist(0.0f, 0.05f);
    for (uint16_t& h : w) h = ref::fp32_to_fp16(dist(rng));
  }
  const std::vector<uint16_t> packed = codegen_cuda::repack_f16(w.data(), M, K);
  const std::vector<float> x = random_normal(static_cast<size_t>(K), 32, 1.5f);
  DeviceBuffer dw(packed.data(), packed.size() * 2), dx(x.data(), x.size() * 4), dy(M * 4);
  int n_tokens = 1;
  std::vector<void*> args = {&dw.ptr, &dx.ptr, &dy.ptr, &n_tokens};
  const Launch launch{fn, codegen_cuda::lm_head_f16_grid(shape, 1), k.threads};
  launch.run(args);
  check(cu.cuCtxSynchronize(), "lm head kernel");
  std::vector<float> y(static_cast<size_t>(M));
  dy.download(y.data(), y.size() * 4);
  std::vector<uint16_t> x16(static_cast<size_t>(K));
  for (int64_t i = 0; i < K; ++i) x16[i] = ref::fp32_to_fp16(x[i]);
  int64_t mismatches = 0;
  double max_rel = 0;
  for (int64_t r = 0; r < M; ++r) {
    const float expect = ref::vec_dot_f16(w.data() + r * K, x16.data(), K);
    mismatches += bits(y[r]) != bits(expect);
    if (expect != 0) max_rel = std::max(max_rel, std::fabs((static_cast<double>(y[r]) - expect) / expect));
  }
  const double us = time_us(iters, [&](int) { launch.run(args); });
  *head_us = us;
  const double bytes = static_cast<double>(packed.size()) * 2 + K * 4.0 + M * 4.0;
  Result r;
  r.parity = mismatches == 0;
  r.json = result_json("lm_head_f16", k.name, std::to_string(K) + "->" + std::to_string(M) + " T=1", r.parity,
                       mismatches, M, us, bytes, ",\"max_relative_difference\":" + num(max_rel));
  return r;
}

int finish(const std::string& status, int code, const std::string& body) {
  std::printf("{\"status\":\"%s\",\"exit_code\":%d%s}\n", status.c_str(), code, body.c_str());
  return code;
}

int run(int iters) {
  std::string why;
  if (!cu.load(&why)) return finish("no_gpu", kNoGpu, ",\"reason\":\"no CUDA driver: " + escape(why) + "\"");
  if (CUresult rc = cu.cuInit(0); rc != CUDA_SUCCESS) {
    return finish("no_gpu", kNoGpu, ",\"reason\":\"cuInit failed: " + escape(cu.error_string(rc)) + "\"");
  }
  int count = 0;
  if (cu.cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) {
    return finish("no_gpu", kNoGpu, ",\"reason\":\"no CUDA device\"");
  }
  std::string device;  // kept for the error report
  std::string body;
  try {
    CUdevice dev;
    check(cu.cuDeviceGet(&dev, 0), "cuDeviceGet");
    char name[256] = {};
    check(cu.cuDeviceGetName(name, sizeof name, dev), "cuDeviceGetName");
    int major = 0, minor = 0, sms = 0, driver = 0;
    cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    cu.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
    cu.cuDriverGetVersion(&driver);
    CUcontext ctx;
    check(cu.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
    check(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
    // The CUBIN runs on sm_90 only; other GPUs JIT the PTX (compute capability >= 9.0).
    const bool use_cubin = major == 9 && minor == 0;
    CUmodule module;
    char jit_log[8192] = {};
    CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void* values[] = {jit_log, reinterpret_cast<void*>(sizeof jit_log)};
    const void* image = use_cubin ? static_cast<const void*>(kBitnetCheckCubinSm90) : kBitnetCheckPtxSm90;
    if (CUresult rc = cu.cuModuleLoadDataEx(&module, image, 2, options, values); rc != CUDA_SUCCESS) {
      throw std::runtime_error("cuModuleLoadDataEx: " + cu.error_string(rc) + " " + jit_log);
    }
    device = ",\"device\":{\"name\":\"" + escape(name) + "\",\"compute_capability\":\"" + std::to_string(major) + "." +
             std::to_string(minor) + "\",\"sms\":" + std::to_string(sms) + ",\"driver\":" + std::to_string(driver) +
             "}";
    body = device + ",\"module\":\"" + (use_cubin ? "cubin sm_90" : "ptx (JIT)") + "\",\"nvrtc\":\"" +
           kBitnetCheckNvrtcVersion + "\",\"iters\":" + std::to_string(iters) + ",\"peak_gbps\":" + num(kPeakGbps) +
           ",\"kernels\":[";
    bool all_pass = true;
    bool first = true;
    auto add = [&](const Result& r) {
      body += (first ? "\n  " : ",\n  ") + r.json;
      first = false;
      all_pass = all_pass && r.parity;
    };
    for (const auto& n : check_norms()) add(run_norm(module, n, iters));
    double decode_us = 0, head_us = 0;
    for (const auto& m : check_matmuls()) add(run_matmul(module, m, iters, &decode_us));
    add(run_lm_head(module, iters, &head_us));
    body += "\n],\"decode_layer_gemv_us\":" + num(decode_us) +
            ",\"decode_30_layers_plus_head_us\":" + num(30 * decode_us + head_us);
    return all_pass ? finish("ok", kOk, body) : finish("parity_failed", kParityFailed, body);
  } catch (const std::exception& e) {
    return finish("cuda_error", kCudaError, device + ",\"reason\":\"" + escape(e.what()) + "\"");
  }
}

}  // namespace
}  // namespace bitnet::bench

int main(int argc, char** argv) {
  int iters = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--iters" && i + 1 < argc) {
      iters = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: cuda_kernel_check [--iters N]\n"
                   "exit codes: 0 ok, 1 parity failed, 2 no GPU/driver, 3 CUDA error, 4 usage\n");
      return bitnet::bench::kUsage;
    }
  }
  if (iters < 1) return bitnet::bench::kUsage;
  return bitnet::bench::run(iters);
}
