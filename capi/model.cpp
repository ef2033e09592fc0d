// llama.h's models and vocabularies: loading (NULL on failure), metadata, tokenization.
#include "capi/handles.h"

#include <algorithm>
#include <climits>
#include <cstring>

namespace {

// The vocabulary handle over `vocab`, with the token texts llama_vocab_get_text points into.
void bind_vocab(llama_model& m, const bitnet::Vocab& vocab) {
  m.vocab.vocab = &vocab;
  m.vocab.texts.resize(static_cast<size_t>(vocab.n_tokens()));
  for (int64_t id = 0; id < vocab.n_tokens(); ++id) m.vocab.texts[static_cast<size_t>(id)] = vocab.text(id);
}

void read_metadata(llama_model& m) {
  const std::string named_template = "tokenizer.chat_template.";
  for (const std::string& key : m.model->meta_keys()) {
    m.meta_keys.push_back(key);
    m.meta_values.push_back(m.model->meta(key).value_or(""));
    if (key == "tokenizer.chat_template") m.chat_templates[""] = m.meta_values.back();
    if (key.starts_with(named_template)) m.chat_templates[key.substr(named_template.size())] = m.meta_values.back();
  }
}

// What llama_model_params asks that the engine cannot honour; "" when nothing.
std::string unsupported(const llama_model_params& params) {
  if (params.kv_overrides != nullptr && params.kv_overrides[0].key[0] != '\0') {
    return "metadata overrides (kv_overrides) are not supported";
  }
  return "";
}

llama_model* load(const char* path, const llama_model_params& params) {
  capi::connect_library_log();
  if (path == nullptr) {
    capi::log_error("llama_model_load_from_file: NULL path");
    return nullptr;
  }
  if (std::string why = unsupported(params); !why.empty()) {
    capi::log_error("llama_model_load_from_file: {}", why);
    return nullptr;
  }
  if (params.progress_callback != nullptr && !params.progress_callback(0.0f, params.progress_callback_user_data)) {
    capi::log_error("llama_model_load_from_file: cancelled by the progress callback");
    return nullptr;
  }
  const auto start = std::chrono::steady_clock::now();
  auto m = std::make_unique<llama_model>();
  if (params.vocab_only) {
    auto vocab = bitnet::Vocab::load(path);
    if (!vocab.ok()) {
      capi::log_error("llama_model_load_from_file: {}", vocab.error().message);
      return nullptr;
    }
    m->vocab_owner = std::move(*vocab);
    bind_vocab(*m, *m->vocab_owner);
  } else {
    auto model = bitnet::Model::load(path);
    if (!model.ok()) {
      capi::log_error("llama_model_load_from_file: {}", model.error().message);
      return nullptr;
    }
    m->model = std::move(*model);
    bind_vocab(*m, m->model->vocab());
    read_metadata(*m);
  }
  m->load_ms = capi::elapsed_ms(start);
  if (params.progress_callback != nullptr) params.progress_callback(1.0f, params.progress_callback_user_data);
  capi::register_handle(m.get());
  capi::register_handle(&m->vocab);
  return m.release();
}

// The model's engine object, or nullptr (logged) for a dead handle or a vocab_only model.
const bitnet::Model* engine_model(const llama_model* model, const char* caller) {
  const llama_model* m = capi::checked(model, caller);
  if (m == nullptr) return nullptr;
  if (!m->model) capi::log_error("{}: the model was loaded with vocab_only", caller);
  return m->model.get();
}

int32_t narrow(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, INT32_MIN, INT32_MAX));
}

const bitnet::Vocab* engine_vocab(const llama_vocab* vocab, const char* caller) {
  const llama_vocab* v = capi::checked(vocab, caller);
  return v != nullptr ? v->vocab : nullptr;
}

}  // namespace

extern "C" {

llama_model_params llama_model_default_params(void) {
  llama_model_params p{};
  p.n_gpu_layers = 999;  // llama.cpp's default; ignored here
  p.split_mode = LLAMA_SPLIT_MODE_LAYER;
  p.use_mmap = true;
  p.use_extra_bufts = true;
  return p;
}

llama_model* llama_model_load_from_file(const char* path_model, llama_model_params params) {
  return load(path_model, params);
}
llama_model* llama_load_model_from_file(const char* path_model, llama_model_params params) {
  return load(path_model, params);
}

void llama_model_free(llama_model* model) {
  if (model == nullptr) return;  // as free(NULL)
  if (capi::checked(model, "llama_model_free") == nullptr) return;
  capi::unregister_handle(&model->vocab);
  capi::unregister_handle(model);
  delete model;  // contexts keep the engine's model alive until they are freed
}
void llama_free_model(llama_model* model) {
  llama_model_free(model);
}

const llama_vocab* llama_model_get_vocab(const llama_model* model) {
  const llama_model* m = capi::checked(model, "llama_model_get_vocab");
  return m != nullptr ? &m->vocab : nullptr;
}

int32_t llama_model_n_ctx_train(const llama_model* model) {
  const bitnet::Model* m = engine_model(model, "llama_model_n_ctx_train");
  return m != nullptr ? narrow(m->n_ctx_train()) : 0;
}
int32_t llama_model_n_embd(const llama_model* model) {
  const bitnet::Model* m = engine_model(model, "llama_model_n_embd");
  return m != nullptr ? narrow(m->n_embd()) : 0;
}
int32_t llama_model_n_layer(const llama_model* model) {
  const bitnet::Model* m = engine_model(model, "llama_model_n_layer");
  return m != nullptr ? narrow(m->n_layer()) : 0;
}
int32_t llama_model_n_head(const llama_model* model) {
  const bitnet::Model* m = engine_model(model, "llama_model_n_head");
  return m != nullptr ? narrow(m->n_head()) : 0;
}
int32_t llama_model_n_head_kv(const llama_model* model) {
  const bitnet::Model* m = engine_model(model, "llama_model_n_head_kv");
  return m != nullptr ? narrow(m->n_head_kv()) : 0;
}
int32_t llama_n_ctx_train(const llama_model* model) {
  return llama_model_n_ctx_train(model);
}
int32_t llama_n_embd(const llama_model* model) {
  return llama_model_n_embd(model);
}
int32_t llama_n_layer(const llama_model* model) {
  return llama_model_n_layer(model);
}
int32_t llama_n_head(const llama_model* model) {
  return llama_model_n_head(model);
}
uint64_t llama_model_size(const llama_model* model) {
  const bitnet::Model* m = engine_model(model, "llama_model_size");
  return m != nullptr ? static_cast<uint64_t>(m->size()) : 0;
}
uint64_t llama_model_n_params(const llama_model* model) {
  const bitnet::Model* m = engine_model(model, "llama_model_n_params");
  return m != nullptr ? static_cast<uint64_t>(m->n_params()) : 0;
}
int32_t llama_model_desc(const llama_model* model, char* buf, size_t buf_size) {
  const bitnet::Model* m = engine_model(model, "llama_model_desc");
  return capi::copy_string(m != nullptr ? m->description() : "", buf, buf_size);
}

int32_t llama_model_meta_val_str(const llama_model* model, const char* key, char* buf, size_t buf_size) {
  const llama_model* m = capi::checked(model, "llama_model_meta_val_str");
  if (m != nullptr && key != nullptr) {
    auto it = std::find(m->meta_keys.begin(), m->meta_keys.end(), key);
    if (it != m->meta_keys.end()) return capi::copy_string(m->meta_values[it - m->meta_keys.begin()], buf, buf_size);
  }
  capi::copy_string("", buf, buf_size);
  return -1;
}
int32_t llama_model_meta_count(const llama_model* model) {
  const llama_model* m = capi::checked(model, "llama_model_meta_count");
  return m != nullptr ? static_cast<int32_t>(m->meta_keys.size()) : 0;
}
int32_t llama_model_meta_key_by_index(const llama_model* model, int32_t i, char* buf, size_t buf_size) {
  const llama_model* m = capi::checked(model, "llama_model_meta_key_by_index");
  if (m != nullptr && i >= 0 && static_cast<size_t>(i) < m->meta_keys.size()) {
    return capi::copy_string(m->meta_keys[static_cast<size_t>(i)], buf, buf_size);
  }
  capi::copy_string("", buf, buf_size);
  return -1;
}
int32_t llama_model_meta_val_str_by_index(const llama_model* model, int32_t i, char* buf, size_t buf_size) {
  const llama_model* m = capi::checked(model, "llama_model_meta_val_str_by_index");
  if (m != nullptr && i >= 0 && static_cast<size_t>(i) < m->meta_values.size()) {
    return capi::copy_string(m->meta_values[static_cast<size_t>(i)], buf, buf_size);
  }
  capi::copy_string("", buf, buf_size);
  return -1;
}

const char* llama_model_chat_template(const llama_model* model, const char* name) {
  const llama_model* m = capi::checked(model, "llama_model_chat_template");
  if (m == nullptr) return nullptr;
  auto it = m->chat_templates.find(name != nullptr ? name : "");
  return it != m->chat_templates.end() ? it->second.c_str() : nullptr;
}

bool llama_model_has_encoder(const llama_model* model) {
  capi::checked(model, "llama_model_has_encoder");
  return false;
}
bool llama_model_has_decoder(const llama_model* model) {
  return capi::checked(model, "llama_model_has_decoder") != nullptr;
}
llama_token llama_model_decoder_start_token(const llama_model* model) {
  capi::checked(model, "llama_model_decoder_start_token");
  return LLAMA_TOKEN_NULL;
}
bool llama_model_is_recurrent(const llama_model* model) {
  capi::checked(model, "llama_model_is_recurrent");
  return false;
}

// ---- vocabulary --------------------------------------------------------------------

enum llama_vocab_type llama_vocab_type(const llama_vocab* vocab) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_vocab_type");
  if (v == nullptr) return LLAMA_VOCAB_TYPE_NONE;
  return v->is_bpe() ? LLAMA_VOCAB_TYPE_BPE : LLAMA_VOCAB_TYPE_SPM;
}
int32_t llama_vocab_n_tokens(const llama_vocab* vocab) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_vocab_n_tokens");
  return v != nullptr ? narrow(v->n_tokens()) : 0;
}
int32_t llama_n_vocab(const llama_vocab* vocab) {
  return llama_vocab_n_tokens(vocab);
}

const char* llama_vocab_get_text(const llama_vocab* vocab, llama_token token) {
  const llama_vocab* v = capi::checked(vocab, "llama_vocab_get_text");
  if (v == nullptr) return nullptr;
  if (token < 0 || static_cast<size_t>(token) >= v->texts.size()) {
    capi::log_error("llama_vocab_get_text: token {} is outside the vocabulary [0, {})", token, v->texts.size());
    return nullptr;
  }
  return v->texts[static_cast<size_t>(token)].c_str();
}
const char* llama_token_get_text(const llama_vocab* vocab, llama_token token) {
  return llama_vocab_get_text(vocab, token);
}
float llama_vocab_get_score(const llama_vocab* vocab, llama_token token) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_vocab_get_score");
  return v != nullptr ? v->score(token) : 0.0f;
}
enum llama_token_attr llama_vocab_get_attr(const llama_vocab* vocab, llama_token token) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_vocab_get_attr");
  return v != nullptr ? static_cast<llama_token_attr>(v->attributes(token)) : LLAMA_TOKEN_ATTR_UNDEFINED;
}
bool llama_vocab_is_eog(const llama_vocab* vocab, llama_token token) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_vocab_is_eog");
  return v != nullptr && v->is_eog(token);
}
bool llama_token_is_eog(const llama_vocab* vocab, llama_token token) {
  return llama_vocab_is_eog(vocab, token);
}
bool llama_vocab_is_control(const llama_vocab* vocab, llama_token token) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_vocab_is_control");
  return v != nullptr && v->is_control(token);
}

#define BITNET_CAPI_SPECIAL_TOKEN(c_name, method)          \
  llama_token c_name(const llama_vocab* vocab) {           \
    const bitnet::Vocab* v = engine_vocab(vocab, #c_name); \
    return v != nullptr ? v->method() : LLAMA_TOKEN_NULL;  \
  }
BITNET_CAPI_SPECIAL_TOKEN(llama_vocab_bos, bos)
BITNET_CAPI_SPECIAL_TOKEN(llama_vocab_eos, eos)
BITNET_CAPI_SPECIAL_TOKEN(llama_vocab_eot, eot)
BITNET_CAPI_SPECIAL_TOKEN(llama_vocab_sep, sep)
BITNET_CAPI_SPECIAL_TOKEN(llama_vocab_nl, newline)
BITNET_CAPI_SPECIAL_TOKEN(llama_vocab_pad, pad)
#undef BITNET_CAPI_SPECIAL_TOKEN
llama_token llama_token_bos(const llama_vocab* vocab) {
  return llama_vocab_bos(vocab);
}
llama_token llama_token_eos(const llama_vocab* vocab) {
  return llama_vocab_eos(vocab);
}
bool llama_vocab_get_add_bos(const llama_vocab* vocab) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_vocab_get_add_bos");
  return v != nullptr && v->adds_bos();
}
bool llama_vocab_get_add_eos(const llama_vocab* vocab) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_vocab_get_add_eos");
  return v != nullptr && v->adds_eos();
}

int32_t llama_tokenize(const llama_vocab* vocab, const char* text, int32_t text_len, llama_token* tokens,
                       int32_t n_tokens_max, bool add_special, bool parse_special) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_tokenize");
  if (v == nullptr) return INT32_MIN;
  if (text_len < 0 || (text == nullptr && text_len > 0)) {
    capi::log_error("llama_tokenize: text_len {} with {} text", text_len, text == nullptr ? "a NULL" : "a");
    return INT32_MIN;
  }
  const std::vector<bitnet::Token> ids = v->tokenize(
      std::string_view(text != nullptr ? text : "", static_cast<size_t>(text_len)), add_special, parse_special);
  if (ids.size() > static_cast<size_t>(INT32_MAX)) return INT32_MIN;
  const auto n = static_cast<int32_t>(ids.size());
  if (n > n_tokens_max || (n > 0 && tokens == nullptr)) return -n;
  std::copy(ids.begin(), ids.end(), tokens);
  return n;
}

int32_t llama_token_to_piece(const llama_vocab* vocab, llama_token token, char* buf, int32_t length, int32_t lstrip,
                             bool special) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_token_to_piece");
  if (v == nullptr) return 0;
  if (token < 0 || token >= v->n_tokens()) {
    capi::log_error("llama_token_to_piece: token {} is outside the vocabulary [0, {})", token, v->n_tokens());
    return 0;
  }
  std::string piece = v->token_to_piece(token, special);
  size_t skip = 0;
  while (skip < piece.size() && static_cast<int32_t>(skip) < lstrip && piece[skip] == ' ') ++skip;
  piece.erase(0, skip);
  const auto n = static_cast<int32_t>(piece.size());
  if (n > length || (n > 0 && buf == nullptr)) return -n;
  std::memcpy(buf, piece.data(), piece.size());
  return n;
}

int32_t llama_detokenize(const llama_vocab* vocab, const llama_token* tokens, int32_t n_tokens, char* text,
                         int32_t text_len_max, bool remove_special, bool unparse_special) {
  const bitnet::Vocab* v = engine_vocab(vocab, "llama_detokenize");
  if (v == nullptr) return INT32_MIN;
  if (n_tokens < 0 || (tokens == nullptr && n_tokens > 0)) {
    capi::log_error("llama_detokenize: {} tokens at {}", n_tokens, static_cast<const void*>(tokens));
    return INT32_MIN;
  }
  std::span<const llama_token> ids(tokens, static_cast<size_t>(n_tokens));
  if (remove_special && v->adds_bos() && !ids.empty() && ids.front() == v->bos()) ids = ids.subspan(1);
  if (remove_special && v->adds_eos() && !ids.empty() && ids.back() == v->eos()) ids = ids.first(ids.size() - 1);
  auto decoded = v->detokenize(ids, unparse_special);
  if (!decoded.ok()) {
    capi::log_error("llama_detokenize: {}", decoded.error().message);
    return INT32_MIN;
  }
  if (decoded->size() > static_cast<size_t>(INT32_MAX)) return INT32_MIN;
  const auto n = static_cast<int32_t>(decoded->size());
  if (n > text_len_max || (n > 0 && text == nullptr)) return -n;
  std::memcpy(text, decoded->data(), decoded->size());
  return n;
}

}  // extern "C"
