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
  kState,    // the KV cache: one region per sequence (contiguous, sequence s at s * bytes), kept across steps
  kScratch,  // written before it is read within a step
  kInput,    // token ids, positions, sequences, output rows: ints written before each step
  kOutput,   // the logits: float [max_tokens][n_vocab]
};

struct CudaBuffer {
  std::string name;  // "blk.3.qkv", "blk.3.k_cache", "logits", ...
  BufferKind kind = BufferKind::kScratch;
  int64_t bytes = 0;
  // kWeight: the GGUF tensor whose bytes, as stored, fill it ("" for repacked weights). A plan
  // reads such a weight from the model file instead of its sidecar.
  std::string tensor;
};

// What a launch's token count is: 1 (the decode step), the tokens of a batched step, or those
// of its tokens whose logits are wanted.
enum class LaunchTokens : int8_t { kOne, kBatch, kOutputs };

struct CudaLaunch {
  int kernel = 0;  // index into CudaProgram::image.kernels
  Dim3 grid;       // for one token tile; see launch_grid()
  int threads = 0;
  std::vector<int> args;      // buffer indices in signature order; -1: a null pointer
  bool n_tokens_arg = false;  // then the int n, the launch's token count
  std::string label;          // "blk.3.qkv": for errors
  LaunchTokens tokens = LaunchTokens::kOne;
  int token_axis = 0;  // kBatch / kOutputs: the grid axis (0 x, 1 y, 2 z) with ceil(n / token_tile) blocks
  int token_tile = 1;
};

// The grid of `launch` for n tokens.
Dim3 launch_grid(const CudaLaunch& launch, int64_t n);

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
  std::vector<CudaLaunch> launches;  // one token
  // A step of 1..max_tokens tokens of any sequences (codegen_cuda::DecodeProgram::batch_launches);
  // empty when max_tokens is 1. Inputs: token_buffer, pos_buffer and seq_buffer hold one int per
  // token, rows_buffer the indices of the tokens whose logits are wanted (ascending); the logits
  // come back in that order.
  std::vector<CudaLaunch> batch_launches;
  int max_tokens = 1;
  int token_buffer = -1;
  int pos_buffer = -1;
  int seq_buffer = -1;
  int rows_buffer = -1;
  // One int per token: 1 where the token's sequence has two or more tokens in the call (the
  // attention's prompt mode, as the CPU engines run them), else 0. -1: a program without it
  // (plans before it), whose batched steps run every token in decode mode.
  int prompt_buffer = -1;
  // One int per wanted row of a step: 1 where its sequence has two or more wanted rows in the
  // call (the F16 LM head's prompt mode), else 0. -1: a program without it.
  int head_prompt_buffer = -1;
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
