// Models and vocabularies of the public API (see bitnet/model.h): thin wrappers over the
// runtime's plans and tokenizers and, in the full library, the compiler (model_loader.h).
#include "api/log_sink.h"
#include "api/model_impl.h"
#include "api/model_loader.h"
#include "ir/graph_properties.h"
#include "runtime/cuda/cuda_plan.h"
#include "runtime/decode_bytes.h"
#include "runtime/plan_cache.h"
#include "runtime/plan_model.h"
#include "runtime/plan_reader.h"

#include <fmt/format.h>

#include <fstream>

namespace bitnet {

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

namespace {

Expected<std::unique_ptr<runtime::Model>> load_plan(const std::string& path, const ModelParams& params) {
  // Model hashes are memoised in the cache directory when it is usable (plan_files.h).
  std::string memo;
  auto dir = params.cache_dir.empty() ? runtime::default_cache_dir() : Expected<std::string>(params.cache_dir);
  if (dir.ok()) {
    const runtime::PlanCache cache(*dir);
    if (cache.prepare().ok()) memo = cache.hashes_dir();
  }
  // A CUDA plan runs with the CUDA backend (the driver's device 0), whatever backend was asked.
  auto plan = runtime::read_plan(params.plan_path);
  if (plan.ok() && (*plan)->cuda) {
    return runtime::cuda::load_cuda_model_from_plan(
        params.plan_path, {.model_path = path, .memo_dir = memo, .model = {.tokenizer_path = params.tokenizer_path}},
        nullptr);
  }
  runtime::PlanLoadTimes times;
  auto model = runtime::load_model_from_plan(
      params.plan_path, {.model_path = path, .memo_dir = memo, .model = {.tokenizer_path = params.tokenizer_path}},
      &times);
  if (model.ok() && params.verbose) {
    api::log(LogLevel::kInfo,
             fmt::format("plan: {} bytes; read+verify {:.1f} ms, checks {:.1f} ms, code {:.1f} ms, model {:.1f} ms",
                         times.plan_bytes, times.read_ms, times.checks_ms, times.code_ms, times.model_ms));
  }
  return model;
}

}  // namespace

std::vector<std::string> compiler_pass_names() {
  return api::pass_names();
}

Result<std::shared_ptr<const Model>> Model::load(const std::string& path, const ModelParams& params) {
  if (params.plan_path.empty() && path.empty()) return Error{"no model path given"};
  if (!params.plan_path.empty() && params.lm_head != "f16") {
    return Error{
        fmt::format("lm_head {} does not apply to a plan: its LM head was fixed when it was compiled", params.lm_head)};
  }
  auto model = params.plan_path.empty() ? api::load_gguf_model(path, params) : load_plan(path, params);
  if (!model.ok()) return Error{model.error().message};
  auto impl = std::make_unique<Impl>();
  impl->model = std::move(*model);
  if (!params.plan_path.empty()) api::after_load(*impl->model);
  impl->backend = !params.plan_path.empty()                ? "plan"
                  : !impl->model->device_backend().empty() ? impl->model->device_backend()
                  : params.backend == "auto"               ? "jit"
                                                           : params.backend;
  impl->vocab_impl.tokenizer = &impl->model->tokenizer();
  return std::shared_ptr<const Model>(new Model(std::move(impl)));
}

std::string Model::architecture() const {
  return impl_->model->file().architecture();
}

std::string Model::description() const {
  const auto& c = impl_->model->config();
  const double billions = static_cast<double>(n_params()) / 1e9;
  return fmt::format("{} {:.2f}B params, {} layers, {} embd", architecture(), billions, c.n_layer, c.n_embd);
}

int64_t Model::n_vocab() const {
  return static_cast<int64_t>(impl_->model->config().n_vocab);
}
int64_t Model::n_embd() const {
  return static_cast<int64_t>(impl_->model->config().n_embd);
}
int64_t Model::n_layer() const {
  return static_cast<int64_t>(impl_->model->config().n_layer);
}
int64_t Model::n_head() const {
  return static_cast<int64_t>(impl_->model->config().n_head);
}
int64_t Model::n_head_kv() const {
  return static_cast<int64_t>(impl_->model->config().n_head_kv);
}
int64_t Model::n_ctx_train() const {
  return static_cast<int64_t>(impl_->model->config().n_ctx_train);
}

int64_t Model::n_params() const {
  int64_t n = 0;
  for (const auto& t : impl_->model->file().tensors()) {
    int64_t elems = 1;
    for (uint64_t d : t.ne) elems *= static_cast<int64_t>(d);
    n += elems;
  }
  return n;
}

int64_t Model::size() const {
  int64_t n = 0;
  for (const auto& t : impl_->model->file().tensors()) n += static_cast<int64_t>(t.nbytes);
  return n;
}

std::optional<std::string> Model::meta(std::string_view key) const {
  const gguf::GgufFile& f = impl_->model->file();
  if (const std::string* s = f.get_string(key)) return *s;
  const gguf::Value* v = f.find(key);
  if (v == nullptr) return std::nullopt;
  return v->to_display();
}

std::vector<std::string> Model::meta_keys() const {
  std::vector<std::string> keys;
  for (const auto& kv : impl_->model->file().metadata()) keys.push_back(kv.key);
  return keys;
}

std::string Model::chat_template() const {
  const std::string* t = impl_->model->file().get_string("tokenizer.chat_template");
  return t ? *t : std::string();
}

std::string Model::path() const {
  return impl_->model->file().path();
}
int64_t Model::file_size() const {
  return static_cast<int64_t>(impl_->model->file().file_size());
}
std::string Model::lm_head_type() const {
  // The graphs record a retargeted head's dtype.
  for (const auto& [key, value] : impl_->model->graph(false).properties()) {
    if (key == ir::kLmHeadProperty) return value;
  }
  return {};
}
int64_t Model::decode_bytes_per_token() const {
  return runtime::decode_bytes_per_token(*impl_->model);
}

std::string Model::backend() const {
  return impl_->backend;
}

const Vocab& Model::vocab() const {
  return impl_->vocab;
}

int64_t Vocab::n_tokens() const {
  return static_cast<int64_t>(impl_->tokenizer->vocab_size());
}
Token Vocab::bos() const {
  return impl_->tokenizer->bos();
}
Token Vocab::eos() const {
  return impl_->tokenizer->eos();
}
bool Vocab::is_bpe() const {
  return impl_->tokenizer->facts().byte_level_bpe;
}
Token Vocab::eot() const {
  return impl_->tokenizer->facts().eot;
}
Token Vocab::pad() const {
  return impl_->tokenizer->facts().pad;
}
Token Vocab::sep() const {
  return impl_->tokenizer->facts().sep;
}
Token Vocab::newline() const {
  return impl_->tokenizer->facts().newline;
}
bool Vocab::adds_bos() const {
  return impl_->tokenizer->adds_bos();
}
bool Vocab::adds_eos() const {
  return impl_->tokenizer->facts().adds_eos;
}
bool Vocab::is_control(Token id) const {
  constexpr uint32_t kControl = 1u << 3;  // LLAMA_TOKEN_ATTR_CONTROL
  return (attributes(id) & kControl) != 0;
}
float Vocab::score(Token id) const {
  return impl_->tokenizer->token_score(id);
}
uint32_t Vocab::attributes(Token id) const {
  return impl_->tokenizer->token_attributes(id);
}
bool Vocab::is_eog(Token id) const {
  return id >= 0 && id < n_tokens() && impl_->tokenizer->is_end_of_generation(id);
}
std::string Vocab::text(Token id) const {
  if (id < 0 || id >= n_tokens()) return {};
  return std::string(impl_->tokenizer->token_text(id));
}
namespace {

// A tokenizer.json by name, or by content when the name says nothing.
bool looks_like_json(const std::string& path) {
  if (path.ends_with(".json")) return true;
  std::ifstream in(path, std::ios::binary);
  char c = 0;
  while (in.get(c)) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return c == '{';
  }
  return false;
}

// A Vocab that owns its tokenizer (Vocab::load).
struct StandaloneVocab {
  std::unique_ptr<runtime::Tokenizer> tokenizer;
  Vocab::Impl impl;
  Vocab vocab{&impl};
};

}  // namespace

Result<std::shared_ptr<const Vocab>> Vocab::load(const std::string& path) {
  Expected<std::unique_ptr<runtime::Tokenizer>> tokenizer = make_error("no tokenizer");
  if (looks_like_json(path)) {
    tokenizer = runtime::Tokenizer::from_hf_json(path);
  } else {
    auto file = gguf::GgufFile::open(path);
    if (!file.ok()) return Error{file.error().message};
    tokenizer = runtime::Tokenizer::from_gguf_file(*file);
    if (!tokenizer.ok()) return Error{fmt::format("{}: {}", path, tokenizer.error().message)};
  }
  if (!tokenizer.ok()) return Error{tokenizer.error().message};
  auto owner = std::make_shared<StandaloneVocab>();
  owner->tokenizer = std::move(*tokenizer);
  owner->impl.tokenizer = owner->tokenizer.get();
  return std::shared_ptr<const Vocab>(owner, &owner->vocab);
}

std::vector<Token> Vocab::tokenize(std::string_view text, bool add_special, bool parse_special) const {
  return impl_->tokenizer->encode(text, {.add_bos = add_special, .parse_special = parse_special});
}
std::string Vocab::token_to_piece(Token id, bool render_special) const {
  if (id < 0 || id >= n_tokens()) return {};
  return impl_->tokenizer->token_to_piece(id, render_special);
}
Result<std::string> Vocab::detokenize(std::span<const Token> ids, bool render_special) const {
  if (auto s = impl_->tokenizer->check_ids(ids); !s.ok()) return Error{s.error().message};
  return impl_->tokenizer->decode(ids, render_special);
}

}  // namespace bitnet
