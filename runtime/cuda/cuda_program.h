// One decode token of a model on a CUDA device, as the runtime executes it: kernels (one module),
// buffers and launches in order. The compiler makes it (compiler/cuda_model.h, from
// codegen_cuda's decode program and NVRTC); the runtime runs it as stored and never re-derives
// it. The token id and position are read by the kernels from two one-int buffers, so the
// launches of a step can be captured once and replayed at every position.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ir/support/expected.h"
#include "runtime/cuda/device.h"

namespace bitnet::runtime::cuda {

enum class BufferKind {
  kWeight,   // constant: its bytes come from CudaProgram::weight_bytes, uploaded once per model
  kState,    // the KV cache: one copy per sequence, kept across steps
  kScratch,  // written before it is read within a step
  kInput,    // the token id or its position: one int written before each step
  kOutput,   // the logits: float [n_vocab]
};

struct CudaBuffer {
  std::string name;  // "blk.3.qkv", "blk.3.k_cache", "logits", ...
  BufferKind kind = BufferKind::kScratch;
  int64_t bytes = 0;
  // kWeight: the GGUF tensor whose bytes, as stored, fill it ("" for repacked weights). A plan
  // reads such a weight from the model file instead of its sidecar.
  std::string tensor;
};

struct CudaLaunch {
  int kernel = 0;  // index into CudaProgram::image.kernels
  Dim3 grid;
  int threads = 0;
  std::vector<int> args;      // buffer indices in signature order; -1: a null pointer
  bool n_tokens_arg = false;  // then the int 1 (one token per step)
  std::string label;          // "blk.3.qkv": for errors
};

// Where a layer's cached keys and values are: K [cells][n_embd_kv] and V [n_embd_kv][cells],
// F16 (ref::KvLayerView), `cells` = CudaProgram::n_ctx.
struct CudaKvLayer {
  int k_buffer = -1;
  int v_buffer = -1;
};

struct CudaProgram {
  std::vector<std::string> kernels;  // entry points, launch order of first use
  std::vector<uint8_t> cubin;        // for sm (empty: PTX or source only)
  std::string ptx;
  std::string source;  // the CUDA C++ of every kernel (one translation unit)
  int sm = 0;
  std::vector<CudaBuffer> buffers;
  std::vector<CudaLaunch> launches;
  int token_buffer = -1;
  int pos_buffer = -1;
  int logits_buffer = -1;
  bool programmatic_launch = false;  // launch with programmatic stream serialization where allowed
  int64_t n_vocab = 0;
  int64_t n_ctx = 0;  // KV cells per sequence the kernels are specialised to
  int64_t n_embd_kv = 0;
  int64_t head_dim = 0;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;
  std::vector<CudaKvLayer> kv;
  // The host bytes of weight buffer `index` (kWeight), made when the model's weights are
  // uploaded (a repacked copy, freed once on the device).
  std::function<Expected<std::vector<uint8_t>>(int index)> weight_bytes;

  ModuleImage image() const { return {kernels, cubin, ptx, source, sm}; }
  int64_t weight_bytes_total() const;
  // Checks what the executor relies on: buffer indices and kinds, launch kernels, KV buffers.
  Status check() const;
};

}  // namespace bitnet::runtime::cuda
