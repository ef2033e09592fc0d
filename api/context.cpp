// Contexts of the public API (see bitnet/context.h): a runtime session of the model's backend.
#include "bitnet/context.h"
#include "api/context_impl.h"
#include "api/conversions.h"

#include <algorithm>
#include <thread>

namespace bitnet {

Context::Context(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Context::~Context() = default;

Result<std::unique_ptr<Context>> Context::create(std::shared_ptr<const Model> model, const ContextParams& params) {
  if (!model) return Error{"no model"};
  if (params.threads < 0 || params.threads > 1024) return Error{"threads must be in [0, 1024]"};
  if (params.n_ctx < 0) return Error{"n_ctx must not be negative"};
  auto impl = std::make_unique<Impl>();
  impl->threads = api::resolve_threads(params.threads);
  auto session = model->impl().model->new_session({.all_logits = params.all_logits,
                                                   .n_ctx = params.n_ctx,
                                                   .threads = impl->threads,
                                                   .n_seq_max = params.n_seq_max});
  if (!session.ok()) return Error{session.error().message};
  impl->session = std::move(*session);
  impl->model = std::move(model);
  return std::unique_ptr<Context>(new Context(std::move(impl)));
}

Status Context::decode(const Batch& batch) {
  impl_->logits = nullptr;
  if (auto s = impl_->session->decode_into(batch, impl_->outputs); !s.ok()) return s;
  auto it = impl_->outputs.find("logits");
  if (it != impl_->outputs.end()) impl_->logits = &it->second;
  return {};
}

std::span<const float> Context::logits(int32_t i) const {
  if (impl_->logits == nullptr) return {};
  const runtime::Matrix& m = *impl_->logits;
  const int64_t row = i < 0 ? m.rows + i : i;
  if (row < 0 || row >= m.rows) return {};
  return m.row(row);
}

int32_t Context::n_outputs() const {
  return impl_->logits ? static_cast<int32_t>(impl_->logits->rows) : 0;
}

void Context::memory_clear() {
  impl_->session->clear();
}
bool Context::seq_rm(int32_t seq, int64_t p0, int64_t p1) {
  return impl_->session->seq_rm(seq, p0, p1);
}
Status Context::seq_cp(int32_t src, int32_t dst, int64_t p0, int64_t p1) {
  if (auto s = impl_->session->seq_cp(src, dst, p0, p1); !s.ok()) return Error{s.error().message};
  return {};
}
Status Context::seq_keep(int32_t seq) {
  if (auto s = impl_->session->seq_keep(seq); !s.ok()) return Error{s.error().message};
  return {};
}
Status Context::seq_add(int32_t seq, int64_t p0, int64_t p1, int64_t delta) {
  if (auto s = impl_->session->seq_add(seq, p0, p1, delta); !s.ok()) return Error{s.error().message};
  return {};
}
int64_t Context::seq_pos_min(int32_t seq) const {
  return impl_->session->seq_pos_min(seq);
}
int64_t Context::seq_pos_max(int32_t seq) const {
  return impl_->session->seq_pos_max(seq);
}
int64_t Context::n_ctx() const {
  return impl_->session->n_ctx();
}
int64_t Context::n_ctx_seq() const {
  return impl_->session->n_ctx_seq();
}
int32_t Context::n_seq_max() const {
  return impl_->session->n_seq_max();
}
int64_t Context::n_batch() const {
  return impl_->session->max_batch();
}
int Context::threads() const {
  return impl_->threads;
}
const Model& Context::model() const {
  return *impl_->model;
}
std::string Context::backend() const {
  return std::string(impl_->session->backend());
}

}  // namespace bitnet
