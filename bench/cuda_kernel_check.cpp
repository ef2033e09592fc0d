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

void enqueue(const std::vector<Node>& nodes, CUstream stream) {
  std::vector<void*> ptrs;
  for (const Node& n : nodes) {
    ptrs.clear();
    for (const uint64_t& slot : n.slots) ptrs.push_back(const_cast<uint64_t*>(&slot));
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
    std::map<std::string, BestGemv> best;
    for (const auto& m : check_matmuls()) add(run_matmul(module, m, iters, &decode_us, &best));
    add(run_lm_head(module, iters, &head_us));
    // The first slice's per-kernel sum (baseline tilings, one launch at a time): kept as it was.
    body += "\n],\"decode_layer_gemv_us\":" + num(decode_us) +
            ",\"decode_30_layers_plus_head_us\":" + num(30 * decode_us + head_us);
    body += ",\n\"decode_step\":" + run_decode_step(module, iters, best);
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
