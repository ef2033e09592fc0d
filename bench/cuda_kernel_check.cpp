// Standalone device check of the CUDA kernels (codegen_cuda): on a machine with an NVIDIA GPU,
// runs every kernel of cuda_check_shapes.h on random data, compares the results with the CPU
// reference kernels by the same criteria as tests/codegen_cuda (bit for bit), times the 2B4T
// decode GEMVs (several tilings each) and the LM head against the H200's 4.8 TB/s, times one
// decode token's existing kernels for 30 layers as a CUDA graph ("decode_step"; attention, RoPE
// and the embedding are not included), and prints one JSON object.
// Built here with the kernels embedded (CUBIN sm_90 + PTX) and only glibc + libcuda.so.1
// (dlopen'ed) needed there. Exit codes: 0 all parity checks passed; 1 a parity check failed;
// 2 no usable GPU or driver; 3 a CUDA error while running; 4 bad usage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bench/cuda_check_shapes.h"
#include "bench/cuda_driver.h"
#include "bench/cuda_reference_decode.h"
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
// Programmatic dependent launch: compute capability >= 9.0 and a driver with cuLaunchKernelEx.
bool pdl_supported = false;

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
  void run(std::vector<void*> args, CUstream stream = nullptr) const {
    check(cu.cuLaunchKernel(fn, grid.x, grid.y, grid.z, static_cast<unsigned>(threads), 1, 1, 0, stream, args.data(),
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
  cu.cuEventDestroy(start);
  cu.cuEventDestroy(stop);
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

// Host data of one I2_S matmul shape, shared by its tilings (and the decode-step graph).
struct MatmulData {
  std::vector<uint8_t> data;     // GGUF I2_S bytes
  std::vector<uint32_t> packed;  // repack_i2s()
  std::vector<int8_t> q;
  std::vector<ref::I8Row> rows;
  std::vector<float> act_scale;
  std::vector<int32_t> act_sum;
  std::vector<float> expect;  // ref::matmul_i8q_rows
};
constexpr float kWeightScale = 0.0421f;

const MatmulData& matmul_data(int64_t K, int64_t M, int T) {
  static std::map<std::tuple<int64_t, int64_t, int>, MatmulData> cache;
  auto [it, fresh] = cache.try_emplace({K, M, T});
  MatmulData& d = it->second;
  if (!fresh) return d;
  d.data = random_i2s(M, K, kWeightScale, static_cast<uint32_t>(K + M));
  auto packed = codegen_cuda::repack_i2s(d.data.data(), M, K);
  if (!packed) throw std::runtime_error(packed.error().message);
  d.packed = std::move(*packed);
  const std::vector<float> x = random_normal(static_cast<size_t>(K * T), 21, 2.0f);
  d.q.resize(x.size());
  d.rows.resize(T);
  for (int t = 0; t < T; ++t) {
    d.rows[t] = ref::quantize_row_i8(x.data() + t * K, K, d.q.data() + t * K);
    d.act_scale.push_back(d.rows[t].scale);
    d.act_sum.push_back(d.rows[t].sum);
  }
  d.expect.resize(static_cast<size_t>(M * T));
  const ref::WeightView w{gguf::GgmlType::I2_S, d.data.data(), M, K};
  ref::matmul_i8q_rows(d.q.data(), d.rows.data(), T, w, 0, M, d.expect.data());
  return d;
}

// The fastest tiling measured per decode role (cold weights), for the decode-step graph.
struct BestGemv {
  std::string variant;
  codegen_cuda::MatmulI2sShape shape;
  double us = 1e30;
};

Result run_matmul(CUmodule module, const NamedMatmul& m, int iters, double* decode_us,
                  std::map<std::string, BestGemv>* best) {
  const auto k = codegen_cuda::emit_matmul_i2s(m.shape);
  CUfunction fn;
  check(cu.cuModuleGetFunction(&fn, module, k.name.c_str()), k.name.c_str());
  const int64_t K = m.shape.k, M = m.shape.m;
  const int T = m.n_tokens;
  const MatmulData& d = matmul_data(K, M, T);
  const size_t weight_bytes = d.packed.size() * 4;
  // Enough copies of the weights that cycling through them misses the 50 MB L2, as a decode
  // step that streams every layer's weights once does.
  const size_t copies = std::min<size_t>(256, (size_t{256} << 20) / weight_bytes + 1);
  DeviceBuffer dw(weight_bytes * copies);
  for (size_t c = 0; c < copies; ++c)
    check(cu.cuMemcpyHtoD(dw.ptr + c * weight_bytes, d.packed.data(), weight_bytes), "upload");
  DeviceBuffer dq(d.q.data(), d.q.size()), ds(d.act_scale.data(), T * 4), dsum(d.act_sum.data(), T * 4), dy(M * T * 4);
  CUdeviceptr w_ptr = dw.ptr;
  float scale_arg = kWeightScale;
  int n_tokens = T;
  std::vector<void*> args = {&w_ptr, &scale_arg, &dq.ptr, &ds.ptr, &dsum.ptr, &dy.ptr, &n_tokens};
  const codegen_cuda::Dim3 grid = codegen_cuda::matmul_i2s_grid(m.shape, T);
  const Launch launch{fn, grid, k.threads};
  check(cu.cuMemsetD8(dy.ptr, 0xff, M * T * 4), "cuMemsetD8");
  launch.run(args);
  check(cu.cuCtxSynchronize(), "matmul kernel");
  std::vector<float> y(static_cast<size_t>(M * T));
  dy.download(y.data(), y.size() * 4);
  int64_t mismatches = 0;
  for (size_t i = 0; i < y.size(); ++i) mismatches += bits(y[i]) != bits(d.expect[i]);

  const double us = time_us(iters, [&](int i) {
    w_ptr = dw.ptr + static_cast<size_t>(i) % copies * weight_bytes;
    launch.run(args);
  });
  w_ptr = dw.ptr;
  const double hot_us = time_us(iters, [&](int) { launch.run(args); });
  // The decode layer streams q, k, v, o (two of each shape), gate, up (two) and down (one).
  if (T == 1 && m.variant == "baseline") *decode_us += us * (m.role == "down" ? 1 : 2);
  if (T == 1 && mismatches == 0) {
    BestGemv& b = (*best)[m.role];
    if (us < b.us) b = {m.variant, m.shape, us};
  }
  const double bytes = static_cast<double>(weight_bytes) + K * T + M * T * 4.0;
  Result r;
  r.parity = mismatches == 0;
  r.json = result_json("matmul_i2s", k.name,
                       m.role + ": " + std::to_string(K) + "->" + std::to_string(M) + " T=" + std::to_string(T),
                       r.parity, mismatches, M * T, us, bytes,
                       ",\"variant\":\"" + m.variant + "\",\"grid\":" + std::to_string(grid.x * grid.y) +
                           ",\"threads\":" + std::to_string(k.threads) +
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

// ---- decode step ---------------------------------------------------------------------------------
// One decode token's kernels of the 2B4T shape as they exist today, for 30 layers on 30 distinct
// layers' weights (522 MB of I2_S + the 657 MB LM head: nothing stays in L2 between tokens):
// per layer rmsnorm_quant (attn_norm), q, k, v, rmsnorm_quant (attn_sub_norm), o, rmsnorm_quant
// (ffn_norm), gate, up, rmsnorm_quant (ffn_sub_norm, 6912), down; then the final norm and the
// LM head. NOT included: embedding lookup, RoPE, attention (QK^T, softmax, V, KV-cache writes),
// residual adds and relu^2(gate) * up - the norms read the previous GEMV's output instead. Norm
// gains are shared across layers (10 KB each).
constexpr int kLayers = 30;

// A kernel launch with its argument values (pointers, floats and ints each in an 8-byte slot).
struct Node {
  CUfunction fn;
  codegen_cuda::Dim3 grid;
  int threads;
  std::vector<uint64_t> slots;
};

template <class... A>
Node make_node(CUfunction fn, codegen_cuda::Dim3 grid, int threads, A... args) {
  Node n{fn, grid, threads, {}};
  auto put = [&](auto v) {
    uint64_t slot = 0;
    std::memcpy(&slot, &v, sizeof v);
    n.slots.push_back(slot);
  };
  (put(args), ...);
  return n;
}

// `programmatic`: each launch may start before the previous kernel in the stream has finished
// (programmatic dependent launch, sm_90+; the kernels wait with griddepcontrol.wait); stream capture
// records it as a programmatic graph edge (CUDA 12.3+).
void enqueue(const std::vector<Node>& nodes, CUstream stream, bool programmatic = false) {
  std::vector<void*> ptrs;
  for (const Node& n : nodes) {
    ptrs.clear();
    for (const uint64_t& slot : n.slots) ptrs.push_back(const_cast<uint64_t*>(&slot));
    if (programmatic) {
      CUlaunchAttribute attribute{};
      attribute.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
      attribute.value.programmaticStreamSerializationAllowed = 1;
      CUlaunchConfig config{};
      config.gridDimX = n.grid.x;
      config.gridDimY = n.grid.y;
      config.gridDimZ = n.grid.z;
      config.blockDimX = static_cast<unsigned>(n.threads);
      config.blockDimY = config.blockDimZ = 1;
      config.hStream = stream;
      config.attrs = &attribute;
      config.numAttrs = 1;
      check(cu.cuLaunchKernelEx(&config, n.fn, ptrs.data(), nullptr), "cuLaunchKernelEx (programmatic)");
      continue;
    }
    check(cu.cuLaunchKernel(n.fn, n.grid.x, n.grid.y, n.grid.z, static_cast<unsigned>(n.threads), 1, 1, 0, stream,
                            ptrs.data(), nullptr),
          "cuLaunchKernel (decode step)");
  }
}

struct DecodeBuffers {
  // Per layer, in this order and contiguous: q, k, v (so that q|k|v is one 3840-row matrix),
  // o, gate, up (gate|up: 13824 rows), down.
  std::unique_ptr<DeviceBuffer> layers, head, gain2560, gain6912, x, q8, scale, sum, y_qkv, y_o, y_gu, normed, logits;
  size_t layer_bytes = 0;
  size_t off_q = 0, off_k = 0, off_v = 0, off_o = 0, off_gate = 0, off_up = 0, off_down = 0;
  double weight_bytes_per_token = 0;
};

DecodeBuffers make_decode_buffers() {
  DecodeBuffers b;
  const MatmulData& qo = matmul_data(2560, 2560, 1);
  const MatmulData& kv = matmul_data(2560, 640, 1);
  const MatmulData& gu = matmul_data(2560, 6912, 1);
  const MatmulData& dn = matmul_data(6912, 2560, 1);
  const size_t s_qo = qo.packed.size() * 4, s_kv = kv.packed.size() * 4, s_gu = gu.packed.size() * 4,
               s_dn = dn.packed.size() * 4;
  b.off_q = 0;
  b.off_k = b.off_q + s_qo;
  b.off_v = b.off_k + s_kv;
  b.off_o = b.off_v + s_kv;
  b.off_gate = b.off_o + s_qo;
  b.off_up = b.off_gate + s_gu;
  b.off_down = b.off_up + s_gu;
  b.layer_bytes = b.off_down + s_dn;
  b.layers = std::make_unique<DeviceBuffer>(b.layer_bytes * kLayers);
  for (int l = 0; l < kLayers; ++l) {
    const CUdeviceptr base = b.layers->ptr + l * b.layer_bytes;
    check(cu.cuMemcpyHtoD(base + b.off_q, qo.packed.data(), s_qo), "upload");
    check(cu.cuMemcpyHtoD(base + b.off_k, kv.packed.data(), s_kv), "upload");
    check(cu.cuMemcpyHtoD(base + b.off_v, kv.packed.data(), s_kv), "upload");
    check(cu.cuMemcpyHtoD(base + b.off_o, qo.packed.data(), s_qo), "upload");
    check(cu.cuMemcpyHtoD(base + b.off_gate, gu.packed.data(), s_gu), "upload");
    check(cu.cuMemcpyHtoD(base + b.off_up, gu.packed.data(), s_gu), "upload");
    check(cu.cuMemcpyHtoD(base + b.off_down, dn.packed.data(), s_dn), "upload");
  }
  const auto head_shape = check_lm_head();
  const size_t head_bytes = static_cast<size_t>(head_shape.m * codegen_cuda::f16_row_stride(head_shape.k)) * 2;
  b.head = std::make_unique<DeviceBuffer>(head_bytes);
  check(cu.cuMemsetD8(b.head->ptr, 0x2c, head_bytes), "cuMemsetD8");  // F16 0x2c2c ~ 0.065 everywhere
  const std::vector<float> g2560 = random_normal(2560, 41, 1.0f), g6912 = random_normal(6912, 42, 1.0f),
                           x = random_normal(2560, 43, 1.0f);
  b.gain2560 = std::make_unique<DeviceBuffer>(g2560.data(), g2560.size() * 4);
  b.gain6912 = std::make_unique<DeviceBuffer>(g6912.data(), g6912.size() * 4);
  b.x = std::make_unique<DeviceBuffer>(x.data(), x.size() * 4);
  b.q8 = std::make_unique<DeviceBuffer>(6912);
  b.scale = std::make_unique<DeviceBuffer>(4);
  b.sum = std::make_unique<DeviceBuffer>(4);
  b.y_qkv = std::make_unique<DeviceBuffer>(3840 * 4);
  b.y_o = std::make_unique<DeviceBuffer>(2560 * 4);
  b.y_gu = std::make_unique<DeviceBuffer>(13824 * 4);
  b.normed = std::make_unique<DeviceBuffer>(6912 * 4);
  b.logits = std::make_unique<DeviceBuffer>(static_cast<size_t>(head_shape.m) * 4);
  b.weight_bytes_per_token = static_cast<double>(b.layer_bytes) * kLayers + static_cast<double>(head_bytes);
  return b;
}

// The decode step's launches with the given GEMV tilings; `fused`: q|k|v and gate|up as one
// launch each (the fused-proxy shapes).
std::vector<Node> decode_nodes(CUmodule module, const DecodeBuffers& b,
                               const std::map<std::string, codegen_cuda::MatmulI2sShape>& tiling, bool fused) {
  auto fn_of = [&](const std::string& name) {
    CUfunction fn;
    check(cu.cuModuleGetFunction(&fn, module, name.c_str()), name.c_str());
    return fn;
  };
  const auto norms = check_norms();  // 2560, 6912, 2560 with the float output
  std::vector<Node> nodes;
  auto norm = [&](const codegen_cuda::RmsNormQuantShape& shape, CUdeviceptr x, CUdeviceptr gain) {
    const auto k = codegen_cuda::emit_rmsnorm_quant(shape);
    nodes.push_back(make_node(fn_of(k.name), codegen_cuda::rmsnorm_quant_grid(1), k.threads, x, gain, b.q8->ptr,
                              b.scale->ptr, b.sum->ptr, b.normed->ptr, 1));
  };
  auto gemv = [&](const codegen_cuda::MatmulI2sShape& shape, CUdeviceptr w, CUdeviceptr y) {
    const auto k = codegen_cuda::emit_matmul_i2s(shape);
    nodes.push_back(make_node(fn_of(k.name), codegen_cuda::matmul_i2s_grid(shape, 1), k.threads, w, kWeightScale,
                              b.q8->ptr, b.scale->ptr, b.sum->ptr, y, 1));
  };
  const auto fused_shapes = fused_proxies();
  for (int l = 0; l < kLayers; ++l) {
    const CUdeviceptr base = b.layers->ptr + l * b.layer_bytes;
    norm(norms[0], b.x->ptr, b.gain2560->ptr);
    if (fused) {
      gemv(fused_shapes[0].shape, base + b.off_q, b.y_qkv->ptr);
    } else {
      gemv(tiling.at("q/o"), base + b.off_q, b.y_qkv->ptr);
      gemv(tiling.at("k/v"), base + b.off_k, b.y_qkv->ptr + 2560 * 4);
      gemv(tiling.at("k/v"), base + b.off_v, b.y_qkv->ptr + 3200 * 4);
    }
    norm(norms[0], b.y_qkv->ptr, b.gain2560->ptr);  // stands in for attn_sub_norm(attention output)
    gemv(tiling.at("q/o"), base + b.off_o, b.y_o->ptr);
    norm(norms[0], b.y_o->ptr, b.gain2560->ptr);  // stands in for ffn_norm(residual)
    if (fused) {
      gemv(fused_shapes[1].shape, base + b.off_gate, b.y_gu->ptr);
    } else {
      gemv(tiling.at("gate/up"), base + b.off_gate, b.y_gu->ptr);
      gemv(tiling.at("gate/up"), base + b.off_up, b.y_gu->ptr + 6912 * 4);
    }
    norm(norms[1], b.y_gu->ptr, b.gain6912->ptr);  // stands in for ffn_sub_norm(relu^2(gate) * up)
    gemv(tiling.at("down"), base + b.off_down, b.x->ptr);
  }
  norm(norms[2], b.x->ptr, b.gain2560->ptr);
  const auto head = codegen_cuda::emit_lm_head_f16(check_lm_head());
  nodes.push_back(make_node(fn_of(head.name), codegen_cuda::lm_head_f16_grid(check_lm_head(), 1), head.threads,
                            b.head->ptr, b.normed->ptr, b.logits->ptr, 1));
  return nodes;
}

// Microseconds per token: the sequence replayed as one CUDA graph, and (with_stream) launched
// kernel by kernel into the same stream.
std::string time_decode(const std::string& name, const std::vector<Node>& nodes, const DecodeBuffers& b, int reps,
                        bool with_stream) {
  CUstream stream;
  check(cu.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  CUevent start, stop;
  check(cu.cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
  check(cu.cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  auto elapsed_us = [&] {
    check(cu.cuEventSynchronize(stop), "cuEventSynchronize");
    float ms = 0;
    check(cu.cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
    return 1000.0 * ms / reps;
  };
  double stream_us = 0;
  if (with_stream) {
    enqueue(nodes, stream);
    check(cu.cuStreamSynchronize(stream), "decode step (stream)");
    check(cu.cuEventRecord(start, stream), "cuEventRecord");
    for (int i = 0; i < reps; ++i) enqueue(nodes, stream);
    check(cu.cuEventRecord(stop, stream), "cuEventRecord");
    stream_us = elapsed_us();
  }
  CUgraph graph;
  CUgraphExec exec;
  check(cu.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
  enqueue(nodes, stream);
  check(cu.cuStreamEndCapture(stream, &graph), "cuStreamEndCapture");
  check(cu.cuGraphInstantiate(&exec, graph, 0), "cuGraphInstantiate");
  for (int i = 0; i < 3; ++i) check(cu.cuGraphLaunch(exec, stream), "cuGraphLaunch");
  check(cu.cuStreamSynchronize(stream), "decode step (graph)");
  check(cu.cuEventRecord(start, stream), "cuEventRecord");
  for (int i = 0; i < reps; ++i) check(cu.cuGraphLaunch(exec, stream), "cuGraphLaunch");
  check(cu.cuEventRecord(stop, stream), "cuEventRecord");
  const double graph_us = elapsed_us();
  // The logits are finite (the chain of norms keeps every activation bounded).
  std::vector<float> logits(static_cast<size_t>(check_lm_head().m));
  b.logits->download(logits.data(), logits.size() * 4);
  int64_t non_finite = 0;
  for (float v : logits) non_finite += !std::isfinite(v);
  cu.cuGraphExecDestroy(exec);
  cu.cuGraphDestroy(graph);
  cu.cuEventDestroy(start);
  cu.cuEventDestroy(stop);
  cu.cuStreamDestroy(stream);
  const double gbps = b.weight_bytes_per_token / (graph_us * 1e-6) / 1e9;
  return "{\"tilings\":\"" + name + "\",\"kernels_per_token\":" + std::to_string(nodes.size()) +
         ",\"graph_us_per_token\":" + num(graph_us) + ",\"tokens_per_s\":" + num(1e6 / graph_us) +
         ",\"weight_gbps\":" + num(gbps) + ",\"fraction_of_hbm_roofline\":" + num(gbps / kPeakGbps) +
         (with_stream ? ",\"stream_us_per_token\":" + num(stream_us) : std::string()) +
         ",\"non_finite_logits\":" + std::to_string(non_finite) + "}";
}

std::string run_decode_step(CUmodule module, int reps, const std::map<std::string, BestGemv>& best) {
  const DecodeBuffers b = make_decode_buffers();
  std::map<std::string, codegen_cuda::MatmulI2sShape> baseline, decode, fastest;
  std::string chosen;
  for (const DecodeRole& r : decode_roles()) {
    baseline[r.role] = {r.k, r.m, 1};
    decode[r.role] = codegen_cuda::decode_gemv_shape(r.k, r.m);
    const auto it = best.find(r.role);
    fastest[r.role] = it != best.end() ? it->second.shape : decode[r.role];
    chosen += std::string(chosen.empty() ? "" : ",") + "\"" + r.role + "\":\"" +
              (it != best.end() ? it->second.variant : "decode") + "\"";
  }
  std::string out = "{\"layers\":" + std::to_string(kLayers) +
                    ",\"weight_bytes_per_token\":" + num(b.weight_bytes_per_token) +
                    ",\"reps\":" + std::to_string(reps) +
                    ",\"not_included\":\"embedding, RoPE, attention (QK^T, softmax, V, KV cache), residual adds, "
                    "relu^2(gate)*up: only the rmsnorm_quant, I2_S GEMV and F16 LM head kernels that exist\"" +
                    ",\"fastest_variant_per_role\":{" + chosen + "},\"runs\":[";
  out +=
      "\n  " + time_decode("baseline (first slice's tilings)", decode_nodes(module, b, baseline, false), b, reps, true);
  out += ",\n  " + time_decode("decode_gemv_shape", decode_nodes(module, b, decode, false), b, reps, true);
  out += ",\n  " + time_decode("fastest per role", decode_nodes(module, b, fastest, false), b, reps, false);
  out += ",\n  " + time_decode("fastest per role + qkv and gate|up as one launch each (timing proxy)",
                               decode_nodes(module, b, fastest, true), b, reps, false);
  return out + "\n]}";
}

// ---- whole-model decode steps (codegen_cuda/decode_program.h) -------------------------------------
// The shared tiny models: several decode steps launched one kernel at a time, logits against the
// CPU reference decode (bench/cuda_reference_decode, itself checked against the interpreter in
// codegen_cuda_tests) computed here; then every case's step captured once as a CUDA graph and
// replayed at a few context lengths (the position is read from device memory, so the same graph
// serves every position). Bytes per token: the weights one step reads plus the K and V cells
// attention reads (2 x layers x (pos + 1) x n_embd_kv x 2 bytes).

// The program's buffers on the device.
struct ProgramBuffers {
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  std::vector<CUfunction> functions;
  explicit ProgramBuffers(CUmodule module, const codegen_cuda::DecodeProgram& p) {
    for (const codegen_cuda::DecodeBuffer& b : p.buffers) {
      buffers.push_back(std::make_unique<DeviceBuffer>(static_cast<size_t>(b.bytes)));
      check(cu.cuMemsetD8(buffers.back()->ptr, 0, static_cast<size_t>(b.bytes)), "cuMemsetD8");
    }
    for (const codegen_cuda::KernelSource& k : p.kernels) {
      CUfunction fn;
      check(cu.cuModuleGetFunction(&fn, module, k.name.c_str()), ("cuModuleGetFunction " + k.name).c_str());
      functions.push_back(fn);
    }
  }
  void set_int(int buffer, int32_t value) { buffers[static_cast<size_t>(buffer)]->upload(&value, 4); }
};

std::vector<Node> program_nodes(const codegen_cuda::DecodeProgram& p, const ProgramBuffers& d) {
  std::vector<Node> nodes;
  for (const codegen_cuda::DecodeLaunch& l : p.launches) {
    Node n{d.functions[static_cast<size_t>(l.kernel)], l.grid, l.threads, {}};
    for (int index : l.args) n.slots.push_back(index < 0 ? 0 : d.buffers[static_cast<size_t>(index)]->ptr);
    if (l.n_tokens_arg) n.slots.push_back(1);  // int 1 in the low bytes of the slot (little endian)
    nodes.push_back(std::move(n));
  }
  return nodes;
}

// Random weights in every weight buffer: I2_S codes 0..2, scales 0.01, gains 1, F16 in [-1, 1],
// the real RoPE tables. One random block is reused for all buffers of a kind (only timing uses it).
void fill_random_weights(const codegen_cuda::DecodeProgram& p, ProgramBuffers& d) {
  using codegen_cuda::WeightLayout;
  int64_t i2s_bytes = 0, f16_bytes = 0;
  for (const auto& b : p.buffers) {
    if (b.layout == WeightLayout::kI2sRows || b.layout == WeightLayout::kI2sPairs)
      i2s_bytes = std::max(i2s_bytes, b.bytes);
    if (b.layout == WeightLayout::kF16 || b.layout == WeightLayout::kF16LmHead || b.layout == WeightLayout::kQ8_0 ||
        b.layout == WeightLayout::kQ8_0LmHead)
      f16_bytes = std::max(f16_bytes, b.bytes);
  }
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<uint32_t>(state >> 16);
  };
  std::vector<uint32_t> codes(static_cast<size_t>(i2s_bytes / 4 + 1)), halves(static_cast<size_t>(f16_bytes / 4 + 1));
  for (uint32_t& w : codes) {
    const uint32_t r = next();
    w = r & ~(((r & 0xAAAAAAAAu) >> 1) & r & 0x55555555u);  // no code 3
  }
  for (uint32_t& w : halves) {
    const uint32_t r = next();
    const auto h0 = ref::fp32_to_fp16(static_cast<float>(static_cast<int32_t>(r & 0xffff) - 32768) / 32768.0f);
    const auto h1 = ref::fp32_to_fp16(static_cast<float>(static_cast<int32_t>(r >> 16) - 32768) / 32768.0f);
    w = h0 | (static_cast<uint32_t>(h1) << 16);
  }
  for (size_t i = 0; i < p.buffers.size(); ++i) {
    const codegen_cuda::DecodeBuffer& b = p.buffers[i];
    if (b.kind != codegen_cuda::BufferKind::kWeight) continue;
    DeviceBuffer& dst = *d.buffers[i];
    switch (b.layout) {
      case codegen_cuda::WeightLayout::kI2sRows:
      case codegen_cuda::WeightLayout::kI2sPairs:
        dst.upload(codes.data(), static_cast<size_t>(b.bytes));
        break;
      case codegen_cuda::WeightLayout::kF16:
      case codegen_cuda::WeightLayout::kF16LmHead:
        dst.upload(halves.data(), static_cast<size_t>(b.bytes));
        break;
      case codegen_cuda::WeightLayout::kI2sScales: {
        const std::vector<float> v(static_cast<size_t>(b.bytes / 4), 0.01f);
        dst.upload(v.data(), static_cast<size_t>(b.bytes));
        break;
      }
      case codegen_cuda::WeightLayout::kQ8_0:
      case codegen_cuda::WeightLayout::kQ8_0LmHead: {
        // Blocks of scale 1/128 (0x2000 as F16) and the random bytes as int8 values.
        std::vector<uint8_t> v(static_cast<size_t>(b.bytes));
        std::memcpy(v.data(), halves.data(), std::min(v.size(), halves.size() * 4));
        for (size_t at = 0; at + 34 <= v.size(); at += 34) v[at] = 0x00, v[at + 1] = 0x20;
        dst.upload(v.data(), v.size());
        break;
      }
      case codegen_cuda::WeightLayout::kF32: {
        const std::vector<float> v(static_cast<size_t>(b.bytes / 4), 1.0f);
        dst.upload(v.data(), static_cast<size_t>(b.bytes));
        break;
      }
      case codegen_cuda::WeightLayout::kRopeCos:
      case codegen_cuda::WeightLayout::kRopeSin: {
        auto bytes = codegen_cuda::decode_weight_bytes(
            p, static_cast<int>(i), [](const std::string&) { return static_cast<const uint8_t*>(nullptr); });
        if (!bytes) throw std::runtime_error(bytes.error().message);
        dst.upload(bytes->data(), bytes->size());
        break;
      }
    }
  }
}

// Timed graph replays of the step at each position of `positions`.
std::string time_program(const codegen_cuda::DecodeProgram& p, ProgramBuffers& d, const std::vector<int32_t>& positions,
                         int reps) {
  const std::vector<Node> nodes = program_nodes(p, d);
  CUstream stream;
  check(cu.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  CUgraph graph;
  CUgraphExec exec;
  check(cu.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
  enqueue(nodes, stream, p.programmatic_launch);
  check(cu.cuStreamEndCapture(stream, &graph), "cuStreamEndCapture");
  check(cu.cuGraphInstantiate(&exec, graph, 0), "cuGraphInstantiate");
  CUevent start, stop;
  check(cu.cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
  check(cu.cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  const codegen_cuda::DecodeModelConfig& c = p.config;
  const int64_t n_embd_kv = c.n_embd / c.n_head * c.n_head_kv;
  std::string out;
  for (int32_t pos : positions) {
    d.set_int(p.token_buffer, 1);
    d.set_int(p.pos_buffer, pos);
    for (int i = 0; i < 3; ++i) check(cu.cuGraphLaunch(exec, stream), "cuGraphLaunch");
    check(cu.cuStreamSynchronize(stream), "decode program (graph)");
    check(cu.cuEventRecord(start, stream), "cuEventRecord");
    for (int i = 0; i < reps; ++i) check(cu.cuGraphLaunch(exec, stream), "cuGraphLaunch");
    check(cu.cuEventRecord(stop, stream), "cuEventRecord");
    check(cu.cuEventSynchronize(stop), "cuEventSynchronize");
    float ms = 0;
    check(cu.cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
    const double us = 1000.0 * ms / reps;
    std::vector<float> logits(static_cast<size_t>(c.n_vocab));
    d.buffers[static_cast<size_t>(p.logits_buffer)]->download(logits.data(), logits.size() * 4);
    int64_t non_finite = 0;
    for (float v : logits) non_finite += !std::isfinite(v);
    const double kv_bytes = 2.0 * static_cast<double>(c.n_layer) * (pos + 1) * static_cast<double>(n_embd_kv) * 2.0;
    const double bytes = static_cast<double>(p.weight_bytes_read_per_token()) + kv_bytes;
    const double roofline_us = bytes / (kPeakGbps * 1e3);
    out += std::string(out.empty() ? "" : ",") + "{\"context\":" + std::to_string(pos + 1) +
           ",\"graph_us_per_token\":" + num(us) + ",\"tokens_per_s\":" + num(1e6 / us) +
           ",\"bytes_per_token\":" + num(bytes) + ",\"roofline_us\":" + num(roofline_us) +
           ",\"roofline_tokens_per_s\":" + num(1e6 / roofline_us) +
           ",\"fraction_of_hbm_roofline\":" + num(roofline_us / us) +
           ",\"non_finite_logits\":" + std::to_string(non_finite) + "}";
  }
  cu.cuEventDestroy(start);
  cu.cuEventDestroy(stop);
  cu.cuGraphExecDestroy(exec);
  cu.cuGraphDestroy(graph);
  cu.cuStreamDestroy(stream);
  return out;
}

// Where one step's time goes: every launch of a step bracketed by events in one stream (so each
// figure includes a launch's own overhead but not the graph's savings), summed per role (the label
// without its "blk.N." prefix), at position `pos`.
std::string profile_program(const codegen_cuda::DecodeProgram& p, ProgramBuffers& d, int32_t pos) {
  const std::vector<Node> nodes = program_nodes(p, d);
  d.set_int(p.token_buffer, 1);
  d.set_int(p.pos_buffer, pos);
  enqueue(nodes, nullptr);
  check(cu.cuCtxSynchronize(), "decode program (profile warm-up)");
  std::vector<CUevent> events(nodes.size() + 1);
  for (CUevent& e : events) check(cu.cuEventCreate(&e, CU_EVENT_DEFAULT), "cuEventCreate");
  check(cu.cuEventRecord(events[0], nullptr), "cuEventRecord");
  for (size_t i = 0; i < nodes.size(); ++i) {
    enqueue({nodes[i]}, nullptr);
    check(cu.cuEventRecord(events[i + 1], nullptr), "cuEventRecord");
  }
  check(cu.cuEventSynchronize(events.back()), "cuEventSynchronize");
  std::map<std::string, std::pair<double, int>> roles;
  std::vector<std::string> order;
  for (size_t i = 0; i < nodes.size(); ++i) {
    float ms = 0;
    check(cu.cuEventElapsedTime(&ms, events[i], events[i + 1]), "cuEventElapsedTime");
    std::string role = p.launches[i].label;
    if (role.rfind("blk.", 0) == 0) role = role.substr(role.find('.', 4) + 1);
    if (!roles.count(role)) order.push_back(role);
    roles[role].first += 1000.0 * ms;
    roles[role].second += 1;
  }
  for (CUevent& e : events) cu.cuEventDestroy(e);
  std::string out;
  for (const std::string& role : order) {
    out += std::string(out.empty() ? "" : ",") + "\"" + role +
           "\":{\"launches\":" + std::to_string(roles[role].second) + ",\"us\":" + num(roles[role].first) + "}";
  }
  return "{\"context\":" + std::to_string(pos + 1) + "," + out + "}";
}

// Logits of `steps` decode tokens against the CPU reference; greedy ids compared where the
// reference's top-2 margin exceeds 1e-3.
std::string check_program_parity(const codegen_cuda::DecodeProgram& p, ProgramBuffers& d, const GgufModel& model,
                                 bool* parity) {
  const std::vector<int32_t> tokens = {1, 450, 4996, 17354, 1701, 29916, 432, 17204};
  ReferenceDecoder reference(p.config, [&](const std::string& name) { return model.data(name); });
  const std::vector<Node> nodes = program_nodes(p, d);
  int64_t differing = 0, total = 0, greedy_checked = 0, greedy_equal = 0;
  double max_rel = 0;
  // The steps launched kernel by kernel in a stream, then (after the reference logits of every
  // step are known) the same steps again as replays of one captured graph: rewriting cells 0..7
  // with the same tokens gives the same cache, so both passes must give the reference's logits.
  CUstream stream;
  check(cu.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  CUgraph graph;
  CUgraphExec exec;
  check(cu.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
  enqueue(nodes, stream, p.programmatic_launch);
  check(cu.cuStreamEndCapture(stream, &graph), "cuStreamEndCapture");
  check(cu.cuGraphInstantiate(&exec, graph, 0), "cuGraphInstantiate");
  std::vector<std::vector<float>> wants;
  for (size_t pass_pos = 0; pass_pos < 2 * tokens.size(); ++pass_pos) {
    const bool replay = pass_pos >= tokens.size();
    const size_t pos = pass_pos % tokens.size();
    d.set_int(p.token_buffer, tokens[pos]);
    d.set_int(p.pos_buffer, static_cast<int32_t>(pos));
    if (replay) {
      check(cu.cuGraphLaunch(exec, stream), "cuGraphLaunch (parity)");
    } else {
      enqueue(nodes, stream, p.programmatic_launch);
    }
    check(cu.cuStreamSynchronize(stream), "decode program step");
    std::vector<float> got(static_cast<size_t>(p.config.n_vocab));
    d.buffers[static_cast<size_t>(p.logits_buffer)]->download(got.data(), got.size() * 4);
    if (!replay) wants.push_back(reference.step(tokens[pos], static_cast<int64_t>(pos)));
    const std::vector<float>& want = wants[pos];
    float scale = 0;
    for (float v : want) scale = std::max(scale, std::fabs(v));
    for (size_t i = 0; i < want.size(); ++i) {
      differing += bits(got[i]) != bits(want[i]);
      max_rel = std::max(max_rel, std::fabs(static_cast<double>(got[i]) - want[i]) / scale);
    }
    total += static_cast<int64_t>(want.size());
    std::vector<float> sorted = want;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
    if (sorted[0] - sorted[1] > 1e-3f) {
      ++greedy_checked;
      greedy_equal += std::max_element(got.begin(), got.end()) - got.begin() ==
                      std::max_element(want.begin(), want.end()) - want.begin();
    }
  }
  cu.cuGraphExecDestroy(exec);
  cu.cuGraphDestroy(graph);
  cu.cuStreamDestroy(stream);
  const bool ok = max_rel < 1e-4 && greedy_equal == greedy_checked;
  *parity = *parity && ok;
  return "\"steps\":" + std::to_string(tokens.size()) +
         ",\"passes\":\"stream + graph replay\",\"logits_checked\":" + std::to_string(total) +
         ",\"logits_not_bit_identical\":" + std::to_string(differing) +
         ",\"max_abs_diff_over_max_abs_logit\":" + num(max_rel) +
         ",\"greedy_checked\":" + std::to_string(greedy_checked) + ",\"greedy_equal\":" + std::to_string(greedy_equal) +
         ",\"parity\":" + (ok ? "true" : "false");
}

std::string run_decode_programs(CUmodule module, const std::string& models_dir, int reps, bool* parity) {
  std::string out = "[";
  bool first = true;
  for (const DecodeProgramCase& c : decode_program_cases()) {
    std::string entry = "{\"model\":\"" + escape(c.name) + "\"";
    auto program = codegen_cuda::plan_decode_program(c.config, c.options);
    if (!program) throw std::runtime_error(program.error().message);
    // Below compute capability 9.0 the PDL kernels run with plain launches (their waits do nothing).
    program->programmatic_launch = program->programmatic_launch && pdl_supported;
    entry += std::string(",\"programmatic_launch\":") + (program->programmatic_launch ? "true" : "false") +
             ",\"launches_per_token\":" + std::to_string(program->launches.size()) +
             ",\"n_ctx\":" + std::to_string(c.config.n_ctx) +
             ",\"weight_bytes_read_per_token\":" + num(static_cast<double>(program->weight_bytes_read_per_token()));
    ProgramBuffers d(module, *program);
    std::vector<int32_t> positions;
    if (c.gguf.empty()) {
      fill_random_weights(*program, d);
      positions = {127, 1023, 4095};
    } else {
      auto model = read_gguf(models_dir + "/" + c.gguf);
      if (!model) {
        entry += ",\"skipped\":\"" + escape(model.error().message) + "\"}";
        out += (first ? "\n  " : ",\n  ") + entry;
        first = false;
        *parity = false;  // a model that was asked for and is missing is a failed check
        continue;
      }
      auto config = decode_config(*model, c.config.n_ctx);
      if (!config) throw std::runtime_error(c.gguf + ": " + config.error().message);
      const codegen_cuda::DecodeModelConfig& g = *config;
      if (g.n_embd != c.config.n_embd || g.n_ff != c.config.n_ff || g.n_head != c.config.n_head ||
          g.n_head_kv != c.config.n_head_kv || g.n_layer != c.config.n_layer || g.n_vocab != c.config.n_vocab ||
          g.eps != c.config.eps || g.freq_base != c.config.freq_base || g.freq_scale != c.config.freq_scale ||
          g.act != c.config.act || g.lm_head_tensor != c.config.lm_head_tensor) {
        throw std::runtime_error(c.gguf + ": configuration differs from the compiled-in kernels'");
      }
      for (size_t i = 0; i < program->buffers.size(); ++i) {
        if (program->buffers[i].kind != codegen_cuda::BufferKind::kWeight) continue;
        auto bytes = codegen_cuda::decode_weight_bytes(*program, static_cast<int>(i),
                                                       [&](const std::string& name) { return model->data(name); });
        if (!bytes) throw std::runtime_error(bytes.error().message);
        d.buffers[i]->upload(bytes->data(), bytes->size());
      }
      entry += "," + check_program_parity(*program, d, *model, parity);
      positions = {127, 511};
    }
    entry += ",\"timing\":[" + time_program(*program, d, positions, reps) + "]";
    // (Each launch of the breakdown is bracketed by events, which serialise it anyway: PDL cases skip it.)
    if (!program->programmatic_launch) {
      entry += ",\"per_role_stream_us\":[" + profile_program(*program, d, positions.front()) + "," +
               profile_program(*program, d, positions.back()) + "]";
    }
    entry += "}";
    out += (first ? "\n  " : ",\n  ") + entry;
    first = false;
  }
  return out + "\n]";
}

int finish(const std::string& status, int code, const std::string& body) {
  std::printf("{\"status\":\"%s\",\"exit_code\":%d%s}\n", status.c_str(), code, body.c_str());
  return code;
}

int run(int iters, bool decode_only, const std::string& models_dir) {
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
    pdl_supported = major >= 9 && cu.cuLaunchKernelEx != nullptr;
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
    if (!decode_only) {
      for (const auto& n : check_norms()) add(run_norm(module, n, iters));
      double decode_us = 0, head_us = 0;
      std::map<std::string, BestGemv> best;
      for (const auto& m : check_matmuls()) add(run_matmul(module, m, iters, &decode_us, &best));
      add(run_lm_head(module, iters, &head_us));
      // The first slice's per-kernel sum (baseline tilings, one launch at a time): kept as it was.
      body += "\n],\"decode_layer_gemv_us\":" + num(decode_us) +
              ",\"decode_30_layers_plus_head_us\":" + num(30 * decode_us + head_us);
      body += ",\n\"decode_step\":" + run_decode_step(module, iters, best);
    } else {
      body += "]";
    }
    bool programs_pass = true;
    body += ",\n\"decode_programs\":" + run_decode_programs(module, models_dir, iters, &programs_pass);
    all_pass = all_pass && programs_pass;
    return all_pass ? finish("ok", kOk, body) : finish("parity_failed", kParityFailed, body);
  } catch (const std::exception& e) {
    return finish("cuda_error", kCudaError, device + ",\"reason\":\"" + escape(e.what()) + "\"");
  }
}

}  // namespace
}  // namespace bitnet::bench

int main(int argc, char** argv) {
  int iters = 200;
  bool decode_only = false;
  std::string models_dir = "models";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--iters" && i + 1 < argc) {
      iters = std::atoi(argv[++i]);
    } else if (arg == "--decode-only") {
      decode_only = true;
    } else if (arg == "--models" && i + 1 < argc) {
      models_dir = argv[++i];
    } else {
      std::fprintf(
          stderr,
          "usage: cuda_kernel_check [--iters N] [--decode-only] [--models DIR]\n"
          "  --decode-only: only the whole-model decode steps (decode_programs)\n"
          "  --models DIR: where bitnet-tiny-mha.i2_s.gguf and b158-tiny-gqa.i2_s.gguf are (default ./models)\n"
          "exit codes: 0 ok, 1 parity failed, 2 no GPU/driver, 3 CUDA error, 4 usage\n");
      return bitnet::bench::kUsage;
    }
  }
  if (iters < 1) return bitnet::bench::kUsage;
  return bitnet::bench::run(iters, decode_only, models_dir);
}
