// Model loading (see model.h).
#include "runtime/model.h"

#include "frontend_gguf/compat.h"
#include "frontend_gguf/tokenizer_data.h"
#include "runtime/nonfinite.h"

namespace bitnet::runtime {
namespace {

Expected<std::unique_ptr<Tokenizer>> load_tokenizer(const gguf::GgufFile& model, const std::string& path) {
  if (path.empty()) {
    BITNET_ASSIGN_OR_RETURN(auto data, gguf::read_tokenizer_data(model));
    return Tokenizer::from_gguf(data);
  }
  if (path.ends_with(".json")) return Tokenizer::from_hf_json(path);
  BITNET_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::open(path));
  BITNET_ASSIGN_OR_RETURN(auto data, gguf::read_tokenizer_data(file));
  return Tokenizer::from_gguf(data);
}

}  // namespace

Expected<std::unique_ptr<Model>> Model::open(const std::string& path, const ModelOptions& options) {
  auto opened = gguf::GgufFile::open(path);
  if (!opened.ok()) {
    // Misaligned tensor data fails the strict parse; name it as compat-check does (compat-fix repairs it).
    gguf::ParseOptions lenient;
    lenient.allow_misaligned_tensors = true;
    if (auto relaxed = gguf::GgufFile::open(path, lenient); relaxed.ok() && relaxed->misaligned_tensor_count() > 0) {
      if (auto s = gguf::check_loadable(*relaxed, options.tokenizer_path.empty()); !s.ok()) {
        return make_error("{}: {}", path, s.error().message);
      }
    }
    return opened.error();
  }
  std::unique_ptr<Model> m(new Model(std::move(*opened)));
  // compat-check's error checks, with bounded data checks (see gguf::check_loadable): a model
  // compat-check calls broken is refused here with the same finding, on every path (plans too).
  if (auto s = gguf::check_loadable(m->file_, options.tokenizer_path.empty()); !s.ok()) {
    return make_error("{}: {}", path, s.error().message);
  }
  auto config = gguf::read_model_config(m->file_);
  if (!config.ok()) return make_error("{}: {}", path, config.error().message);
  m->config_ = *config;
  auto tokenizer = load_tokenizer(m->file_, options.tokenizer_path);
  if (!tokenizer.ok()) return make_error("{}: tokenizer: {}", path, tokenizer.error().message);
  m->tokenizer_ = std::move(*tokenizer);
  if (m->tokenizer_->vocab_size() != m->config_.n_vocab) {
    return make_error("{}: the tokenizer has {} tokens but the model's embedding has {} rows", path,
                      m->tokenizer_->vocab_size(), m->config_.n_vocab);
  }
  return m;
}

Expected<std::unique_ptr<Session>> Model::new_session(const SessionOptions& options) const {
  SessionOptions o = options;
  if (o.n_ctx <= 0) o.n_ctx = static_cast<int64_t>(std::min<uint64_t>(config_.n_ctx_train, 4096));
  if (o.threads <= 0) return make_error("thread count must be positive, got {}", o.threads);
  if (o.n_seq_max <= 0 || o.n_seq_max > o.n_ctx) {
    return make_error("cannot hold {} sequences in a context of {} cells", o.n_seq_max, o.n_ctx);
  }
  if (!factory_) return make_error("{}: the model has no backend to run it", file_.path());
  BITNET_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, factory_(o));
  // Remembers the tokens fed, so non-finite logits can be traced to the node that made them.
  return diagnosable_session(std::move(session), *this);
}

}  // namespace bitnet::runtime
