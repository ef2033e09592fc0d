// Checks of a CudaProgram (see cuda_program.h).
#include "runtime/cuda/cuda_program.h"

namespace bitnet::runtime::cuda {

int64_t CudaProgram::weight_bytes_total() const {
  int64_t n = 0;
  for (const CudaBuffer& b : buffers) n += b.kind == BufferKind::kWeight ? b.bytes : 0;
  return n;
}

Dim3 launch_grid(const CudaLaunch& launch, int64_t n) {
  Dim3 grid = launch.grid;
  if (launch.tokens == LaunchTokens::kOne) return grid;
  const auto blocks = static_cast<uint32_t>((n + launch.token_tile - 1) / launch.token_tile);
  (launch.token_axis == 0 ? grid.x : launch.token_axis == 1 ? grid.y : grid.z) = blocks;
  return grid;
}

Status CudaProgram::check() const {
  const auto n_buffers = static_cast<int>(buffers.size());
  auto is = [&](int index, BufferKind kind, int64_t min_bytes) {
    return index >= 0 && index < n_buffers && buffers[static_cast<size_t>(index)].kind == kind &&
           buffers[static_cast<size_t>(index)].bytes >= min_bytes;
  };
  if (kernels.empty()) return make_error("CUDA program: no kernels");
  if (cubin.empty() && ptx.empty() && source.empty()) return make_error("CUDA program: no code");
  if (n_vocab <= 0 || n_ctx <= 0 || n_embd_kv <= 0 || head_dim <= 0 || n_embd_kv % head_dim != 0) {
    return make_error("CUDA program: bad shape (n_vocab {}, n_ctx {}, n_embd_kv {}, head_dim {})", n_vocab, n_ctx,
                      n_embd_kv, head_dim);
  }
  if (max_tokens < 1 || max_tokens > 4096 || (max_tokens > 1) != !batch_launches.empty()) {
    return make_error("CUDA program: {} tokens per step with {} batched launches", max_tokens, batch_launches.size());
  }
  const int64_t ints = int64_t{4} * max_tokens;
  if (!is(token_buffer, BufferKind::kInput, ints) || !is(pos_buffer, BufferKind::kInput, ints)) {
    return make_error("CUDA program: the token and position inputs are not one-int input buffers");
  }
  if (max_tokens > 1 && (!is(seq_buffer, BufferKind::kInput, ints) || !is(rows_buffer, BufferKind::kInput, ints))) {
    return make_error("CUDA program: the sequence and row inputs are not input buffers of {} ints", max_tokens);
  }
  for (int b : {prompt_buffer, head_prompt_buffer}) {
    if (b != -1 && (max_tokens == 1 || !is(b, BufferKind::kInput, ints))) {
      return make_error("CUDA program: a prompt-mode input is not an input buffer of {} ints", max_tokens);
    }
  }
  if (!is(logits_buffer, BufferKind::kOutput, n_vocab * 4 * max_tokens)) {
    return make_error("CUDA program: the logits buffer is not an output of n_vocab floats");
  }
  for (const CudaBuffer& b : buffers) {
    if (b.bytes <= 0) return make_error("CUDA program: buffer {} has {} bytes", b.name, b.bytes);
  }
  for (const CudaKvLayer& layer : kv) {
    const int64_t bytes = n_ctx * n_embd_kv * 2;
    if (!is(layer.k_buffer, BufferKind::kState, bytes) || !is(layer.v_buffer, BufferKind::kState, bytes)) {
      return make_error("CUDA program: a layer's K/V cache is not a state buffer of {} bytes", bytes);
    }
    // The batched kernels step from one sequence's region to the next by exactly n_ctx cells.
    auto exact = [&](int index) { return buffers[static_cast<size_t>(index)].bytes == bytes; };
    if (max_tokens > 1 && (!exact(layer.k_buffer) || !exact(layer.v_buffer))) {
      return make_error("CUDA program: a layer's K/V region is not {} bytes (n_ctx cells)", bytes);
    }
  }
  for (const auto* list : {&launches, &batch_launches}) {
    for (const CudaLaunch& l : *list) {
      if (l.kernel < 0 || l.kernel >= static_cast<int>(kernels.size())) {
        return make_error("CUDA program: launch {} names kernel {} of {}", l.label, l.kernel, kernels.size());
      }
      if (l.threads <= 0 || l.threads > 1024 || l.grid.x == 0 || l.grid.y == 0 || l.grid.z == 0) {
        return make_error("CUDA program: launch {} has an empty grid or {} threads", l.label, l.threads);
      }
      if (l.grid.y > 65535 || l.grid.z > 65535) {  // CUDA's limits (a token axis has at most 4096 blocks)
        return make_error("CUDA program: launch {} has a grid of {} x {} x {} blocks", l.label, l.grid.x, l.grid.y,
                          l.grid.z);
      }
      const bool one = l.tokens == LaunchTokens::kOne;
      if ((one == (list == &batch_launches)) || l.token_axis < 0 || l.token_axis > 2 || l.token_tile < 1) {
        return make_error("CUDA program: launch {} has a bad token count, axis or tile", l.label);
      }
      for (int a : l.args) {
        if (a < -1 || a >= n_buffers) return make_error("CUDA program: launch {} names buffer {}", l.label, a);
      }
    }
  }
  if (launches.empty()) return make_error("CUDA program: no launches");
  if (!weight_bytes) return make_error("CUDA program: no weight source");
  return Status::success();
}

}  // namespace bitnet::runtime::cuda
