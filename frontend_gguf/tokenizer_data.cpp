// Reading and checking tokenizer.ggml.* metadata (see tokenizer_data.h).
#include "frontend_gguf/tokenizer_data.h"

namespace bitnet::gguf {
namespace {

constexpr const char* kModel = "tokenizer.ggml.model";
constexpr const char* kPre = "tokenizer.ggml.pre";
constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kScores = "tokenizer.ggml.scores";
constexpr const char* kTypes = "tokenizer.ggml.token_type";
constexpr const char* kMerges = "tokenizer.ggml.merges";

// llama.cpp writes "no such token" as -1, which converters often store as u32 0xFFFFFFFF.
bool is_null_token(const Value& v) {
  const auto i = v.as_int();
  return i && (*i == -1 || *i == 0xFFFFFFFF);
}

std::optional<int64_t> special_id(const GgufFile& file, const char* key) {
  const Value* v = file.find(key);
  if (v == nullptr || is_null_token(*v)) return std::nullopt;
  return v->as_int();
}

uint64_t array_size(const GgufFile& file, const char* key) {
  const Array* a = file.get_array(key);
  return a ? a->size() : 0;
}

}  // namespace

TokenizerSummary summarize_tokenizer(const GgufFile& file) {
  TokenizerSummary s;
  if (const std::string* model = file.get_string(kModel)) {
    s.present = true;
    s.model = *model;
  }
  if (const std::string* pre = file.get_string(kPre)) s.pre = *pre;
  s.n_tokens = array_size(file, kTokens);
  s.n_scores = array_size(file, kScores);
  s.n_token_types = array_size(file, kTypes);
  s.n_merges = array_size(file, kMerges);
  s.special.bos = special_id(file, "tokenizer.ggml.bos_token_id");
  s.special.eos = special_id(file, "tokenizer.ggml.eos_token_id");
  s.special.unk = special_id(file, "tokenizer.ggml.unknown_token_id");
  s.special.sep = special_id(file, "tokenizer.ggml.seperator_token_id");  // sic: llama.cpp's spelling
  s.special.pad = special_id(file, "tokenizer.ggml.padding_token_id");
  s.special.eot = special_id(file, "tokenizer.ggml.eot_token_id");
  s.add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
  s.add_eos = file.get_bool("tokenizer.ggml.add_eos_token");
  s.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix");
  s.has_chat_template = file.get_string("tokenizer.chat_template") != nullptr;
  return s;
}

void check_tokenizer(const GgufFile& file, std::optional<uint64_t> embedding_rows, Findings& f) {
  const Value* model = file.find(kModel);
  if (model == nullptr || model->as_string() == nullptr) {
    f.add(Severity::kError, "missing-tokenizer",
          model ? "tokenizer.ggml.model is not a string" : "tokenizer.ggml.model is missing",
          "the file carries no usable tokenizer; re-convert it with its tokenizer, or pass --tokenizer FILE");
    return;
  }
  const std::string& name = *model->as_string();
  if (name != "llama" && name != "gpt2") {
    f.add(Severity::kError, "unsupported-tokenizer", fmt::format("tokenizer model '{}' is not supported", name),
          "supported tokenizer models: llama (SentencePiece), gpt2 (byte-level BPE)");
  }
  const Array* tokens = file.get_array(kTokens);
  if (tokens == nullptr || tokens->elem_type != ValueType::String) {
    f.add(Severity::kError, "missing-tokenizer", "tokenizer.ggml.tokens is missing or not a string array",
          "re-convert the model with its tokenizer");
    return;
  }
  const uint64_t n = tokens->size();
  if (n == 0) {
    f.add(Severity::kError, "missing-tokenizer", "tokenizer.ggml.tokens is empty", "re-convert the model");
    return;
  }
  auto check_parallel = [&](const char* key, bool float_elems, bool required) {
    const Array* a = file.get_array(key);
    if (a == nullptr) {
      if (required) {
        f.add(Severity::kWarning, "missing-tokenizer-field", fmt::format("{} is missing", key),
              "SentencePiece merges then fall back to token order; re-convert the model to include it");
      }
      return;
    }
    const bool type_ok = float_elems ? a->elem_type == ValueType::F32 : is_integer_type(a->elem_type);
    if (!type_ok || a->size() != n) {
      f.add(Severity::kError, "bad-tokenizer",
            fmt::format("{} has {} {} elements; expected {} {} values (one per token)", key, a->size(),
                        value_type_name(a->elem_type), n, float_elems ? "f32" : "integer"),
            "re-convert the model");
    }
  };
  check_parallel(kScores, true, name == "llama");
  check_parallel(kTypes, false, false);
  if (name == "gpt2") {
    const Array* merges = file.get_array(kMerges);
    if (merges == nullptr || merges->elem_type != ValueType::String || merges->size() == 0) {
      f.add(Severity::kError, "missing-tokenizer", "tokenizer.ggml.merges is missing or empty for a BPE tokenizer",
            "re-convert the model with its tokenizer");
    }
    if (file.find(kPre) == nullptr) {
      f.add(Severity::kWarning, "missing-pre",
            "tokenizer.ggml.pre is missing: llama.cpp/bitnet.cpp fall back to the 'default' (GPT-2) pre-tokenizer, "
            "which may not be what the model was trained with",
            "`bitnet compat-fix` writes the fallback value explicitly; set 'llama-bpe' by hand for Llama-3 vocabularies "
            "if you want the tokenizer the model was trained with",
            true);
    }
  }
  if (embedding_rows && *embedding_rows != n) {
    f.add(Severity::kError, "vocab-mismatch",
          fmt::format("the tokenizer has {} tokens but token_embd.weight has {} rows", n, *embedding_rows),
          "the vocabulary and the embedding come from different models; re-convert the model");
  }
  if (const Value* vs = file.find(file.architecture() + ".vocab_size")) {
    if (vs->as_uint() != n) {
      f.add(Severity::kWarning, "vocab-size-key",
            fmt::format("{}.vocab_size is {} but the tokenizer has {} tokens", file.architecture(), vs->to_display(), n),
            "informational key only; `bitnet compat-fix` rewrites it to the token count", true);
    }
  }
  auto check_id = [&](const char* key, const char* what, bool warn_missing) {
    const Value* v = file.find(key);
    if (v == nullptr || is_null_token(*v)) {
      if (warn_missing) {
        f.add(Severity::kWarning, fmt::format("missing-{}", what),
              fmt::format("{} is {}", key, v ? "set to -1 (no token)" : "missing"),
              "engines then guess a default id; `bitnet compat-fix` sets it when the vocabulary makes it unambiguous",
              true);
      }
      return;
    }
    auto id = v->as_int();
    if (!id || *id < 0 || static_cast<uint64_t>(*id) >= n) {
      f.add(Severity::kError, "bad-special-token",
            fmt::format("{} = {} is not a token id (vocabulary has {} tokens)", key, v->to_display(), n),
            "re-convert the model or fix the id");
    }
  };
  check_id("tokenizer.ggml.bos_token_id", "bos", true);
  check_id("tokenizer.ggml.eos_token_id", "eos", true);
  check_id("tokenizer.ggml.unknown_token_id", "unk", false);
  check_id("tokenizer.ggml.padding_token_id", "pad", false);
  check_id("tokenizer.ggml.seperator_token_id", "sep", false);
  check_id("tokenizer.ggml.eot_token_id", "eot", false);
}

Expected<TokenizerData> read_tokenizer_data(const GgufFile& file) {
  Findings f;
  check_tokenizer(file, std::nullopt, f);
  if (const Finding* e = f.first_error()) return make_error("{} ({})", e->message, e->hint);
  TokenizerData d;
  d.model = *file.get_string(kModel);
  if (const std::string* pre = file.get_string(kPre)) d.pre = *pre;
  d.tokens = file.get_array(kTokens)->strings;
  if (const Array* a = file.get_array(kScores)) {
    d.scores.resize(a->size());
    for (size_t i = 0; i < d.scores.size(); ++i) d.scores[i] = a->scalar_at<float>(i);
  }
  if (const Array* a = file.get_array(kTypes)) {
    d.token_types.resize(a->size());
    for (size_t i = 0; i < d.token_types.size(); ++i) d.token_types[i] = static_cast<int32_t>(a->int_at(i).value_or(0));
  }
  if (const Array* a = file.get_array(kMerges)) d.merges = a->strings;
  const TokenizerSummary s = summarize_tokenizer(file);
  d.special = s.special;
  d.add_bos = s.add_bos;
  d.add_eos = s.add_eos;
  d.add_space_prefix = s.add_space_prefix;
  if (const std::string* t = file.get_string("tokenizer.chat_template")) d.chat_template = *t;
  return d;
}

}  // namespace bitnet::gguf
