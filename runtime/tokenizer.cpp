// The public tokenizer factories: pick the model from GGUF metadata or read a tokenizer.json.
#include "runtime/tokenizer.h"

#include "runtime/tokenizer_internal.h"

namespace bitnet::runtime {

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const gguf::TokenizerData& data) {
  return from_gguf(data, std::string_view());
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const gguf::TokenizerData& data,
                                                          std::string_view model_name) {
  if (data.model == "llama") return detail::make_spm_tokenizer(data, model_name);
  if (data.model == "gpt2") {
    BITNET_ASSIGN_OR_RETURN(auto pre, detail::bpe_pre_tokenizer(data.pre));
    return detail::make_bpe_tokenizer(data, pre, model_name);
  }
  return make_error("tokenizer model '{}' is not supported (supported: llama, gpt2)", data.model);
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf_file(const gguf::GgufFile& file) {
  BITNET_ASSIGN_OR_RETURN(auto data, gguf::read_tokenizer_data(file));
  const std::string* name = file.get_string("general.name");
  return from_gguf(data, name ? std::string_view(*name) : std::string_view());
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_hf_json(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(auto hf, detail::read_hf_tokenizer(path));
  auto tokenizer = detail::make_bpe_tokenizer(hf.data, hf.pre, std::string_view());
  if (!tokenizer.ok()) return make_error("{}: {}", path, tokenizer.error().message);
  return tokenizer;
}

Status Tokenizer::check_ids(std::span<const TokenId> ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || static_cast<size_t>(ids[i]) >= vocab_size()) {
      return make_error("token id {} (position {}) is not in the vocabulary (0..{})", ids[i], i, vocab_size() - 1);
    }
  }
  return Status::success();
}

}  // namespace bitnet::runtime
