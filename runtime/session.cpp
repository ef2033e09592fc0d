// Batch checks shared by the backends (see session.h).
#include "runtime/session.h"

namespace bitnet::runtime {

Status check_batch(std::span<const int32_t> tokens, int64_t pos, int64_t n_ctx, int64_t n_vocab) {
  if (tokens.empty()) return make_error("empty batch: nothing to evaluate");
  const auto n = static_cast<int64_t>(tokens.size());
  if (pos + n > n_ctx) {
    return make_error("context is full: {} tokens in the cache + {} new exceed the context size {}", pos, n, n_ctx);
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= n_vocab) return make_error("token id {} is outside the vocabulary [0, {})", id, n_vocab);
  }
  return Status::success();
}

}  // namespace bitnet::runtime
