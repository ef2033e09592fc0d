// Hugging Face tokenizer files -> GGUF tokenizer metadata (see hf_tokenizer.h).
#include "convert/hf_tokenizer.h"

#include "convert/checkpoint.h"
#include "convert/sentencepiece_model.h"
#include "frontend_gguf/tokenizer_data.h"

#include <filesystem>
#include <map>
#include <optional>

namespace bitnet::convert {
namespace {

namespace fs = std::filesystem;
using gguf::TokenType;
using nlohmann::json;

// Llama 3's Split regex as tokenizer.json spells it (llama.cpp names this pre-tokenizer
// "llama-bpe"), and GPT-2's, which the ByteLevel step applies itself when use_regex is true.
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// llama.cpp picks `tokenizer.ggml.pre` by hashing how the tokenizer splits a test text; this
// converter has no tokenizer to run, so it recognises the pre-tokenizer description instead.
std::optional<std::string> detect_pre(const json& p) {
  if (!p.is_object()) return std::nullopt;
  const std::string type = p.value("type", std::string());
  if (type == "ByteLevel" && p.value("use_regex", true) && !p.value("add_prefix_space", false)) return "gpt-2";
  if (type == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array()) {
    const json& steps = p["pretokenizers"];
    if (steps.size() == 2 && steps[0].value("type", std::string()) == "Split" && steps[0].contains("pattern") &&
        steps[0]["pattern"].is_object() && steps[0]["pattern"].value("Regex", std::string()) == kLlama3Regex &&
        steps[1].value("type", std::string()) == "ByteLevel" && !steps[1].value("use_regex", true)) {
      return "llama-bpe";
    }
  }
  return std::nullopt;
}

// bos_token etc. are strings or {"content": ...} objects in tokenizer_config.json.
std::optional<std::string> token_content(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

// The first special token of a TemplateProcessing post-processor (alone or inside a Sequence):
// the BOS the tokenizer adds. llama.cpp's SpecialVocab reads add_bos_token from it when
// tokenizer_config.json does not say (Llama 3 tokenizers do not).
std::optional<std::string> template_bos(const json& post) {
  if (!post.is_object()) return std::nullopt;
  const json& type = post.contains("type") ? post["type"] : json();
  if (type == "Sequence" && post.contains("processors") && post["processors"].is_array()) {
    for (const json& p : post["processors"]) {
      if (auto bos = template_bos(p)) return bos;
    }
  }
  if (type == "TemplateProcessing" && post.contains("single") && post["single"].is_array() && !post["single"].empty()) {
    const json& first = post["single"][0];
    if (first.is_object() && first.contains("SpecialToken") && first["SpecialToken"].is_object() &&
        first["SpecialToken"].contains("id") && first["SpecialToken"]["id"].is_string())
      return first["SpecialToken"]["id"].get<std::string>();
  }
  return std::nullopt;
}

std::optional<int64_t> config_id(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();  // generation_config
  return std::nullopt;
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;  // SentencePiece only
  std::vector<std::string> merges;
  std::map<std::string, int64_t> ids;
};

Status fill_holes(Vocab& v, uint64_t n_vocab, const std::string& source) {
  if (v.tokens.size() > n_vocab)
    return make_error("{} has {} tokens, more than the {} rows of the embedding", source, v.tokens.size(), n_vocab);
  for (uint64_t i = 0; i < n_vocab; ++i) {
    if (i >= v.tokens.size()) {
      v.tokens.emplace_back();
      v.types.push_back(static_cast<int32_t>(TokenType::kUnused));
      if (!v.scores.empty()) v.scores.push_back(-1000.0f);
    }
    if (v.tokens[i].empty()) {
      v.tokens[i] = fmt::format("[PAD{}]", i);  // as llama.cpp fills ids the tokenizer does not use
      v.types[i] = static_cast<int32_t>(TokenType::kUnused);
    }
  }
  for (uint64_t i = 0; i < v.tokens.size(); ++i) v.ids.emplace(v.tokens[i], static_cast<int64_t>(i));
  return Status::success();
}

Expected<Vocab> read_bpe(const json& j, const std::string& path, std::string& pre, std::vector<std::string>& notes) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) return make_error("{}: no \"model\"", path);
  const json& model = j["model"];
  if (model.value("type", std::string("BPE")) != "BPE")
    return make_error("{}: model type '{}' is not supported (byte-level BPE only)", path, model.value("type", ""));
  if (!model.contains("vocab") || !model["vocab"].is_object())
    return make_error("{}: model.vocab is not an object", path);
  Vocab v;
  auto place = [&](int64_t id, const std::string& text, TokenType type) -> Status {
    if (id < 0 || id >= (int64_t{1} << 24)) return make_error("{}: token '{}' has id {}", path, text, id);
    if (static_cast<uint64_t>(id) >= v.tokens.size()) {
      v.tokens.resize(id + 1);
      v.types.resize(id + 1, static_cast<int32_t>(TokenType::kUnused));
    }
    v.tokens[id] = text;
    v.types[id] = static_cast<int32_t>(type);
    return Status::success();
  };
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) return make_error("{}: the id of '{}' is not an integer", path, text);
    BITNET_RETURN_IF_ERROR(place(id.get<int64_t>(), text, TokenType::kNormal));
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        return make_error("{}: an added token lacks an integer id or a string content", path);
      // As llama.cpp: special added tokens are control tokens, the others user-defined.
      BITNET_RETURN_IF_ERROR(place(a["id"].get<int64_t>(), a["content"].get<std::string>(),
                                   a.value("special", false) ? TokenType::kControl : TokenType::kUserDefined));
    }
  }
  if (model.contains("merges") && model["merges"].is_array()) {
    for (const json& m : model["merges"]) {
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        return make_error("{}: a merge is neither \"a b\" nor [\"a\", \"b\"]", path);
      }
    }
  }
  if (auto detected = detect_pre(j.value("pre_tokenizer", json()))) {
    pre = *detected;
  } else {
    pre = "default";
    notes.push_back(
        "the pre-tokenizer of tokenizer.json is not one this converter recognises (GPT-2, Llama 3); "
        "tokenizer.ggml.pre is 'default': check tokenization with `bitnet tokenize`");
  }
  return v;
}

Expected<Vocab> read_spm(const std::string& path, bool& add_space_prefix, SpmSpecialIds& spm_ids) {
  BITNET_ASSIGN_OR_RETURN(SpmModel spm, read_sentencepiece_model(path));
  Vocab v;
  for (const auto& piece : spm.pieces) {
    v.tokens.push_back(piece.text);
    v.scores.push_back(piece.score);
    v.types.push_back(static_cast<int32_t>(piece.type));
  }
  add_space_prefix = spm.add_dummy_prefix;
  spm_ids = spm.special;
  return v;
}

}  // namespace

Expected<TokenizerReport> add_hf_tokenizer(const std::string& dir, uint64_t n_vocab, gguf::GgufWriter& w) {
  const fs::path root(dir);
  std::error_code ec;
  TokenizerReport report;
  Vocab v;
  std::optional<bool> add_space_prefix;
  std::optional<std::string> added_bos;  // tokenizer.json's post-processor adds this token first
  SpmSpecialIds spm_ids;
  if (fs::exists(root / "tokenizer.json", ec)) {
    const std::string path = (root / "tokenizer.json").string();
    BITNET_ASSIGN_OR_RETURN(json j, read_json_file(path));
    BITNET_ASSIGN_OR_RETURN(v, read_bpe(j, path, report.pre, report.notes));
    if (j.contains("post_processor")) added_bos = template_bos(j["post_processor"]);
    report.source = "tokenizer.json", report.model = "gpt2";
  } else if (fs::exists(root / "tokenizer.model", ec)) {
    bool prefix = true;
    BITNET_ASSIGN_OR_RETURN(v, read_spm((root / "tokenizer.model").string(), prefix, spm_ids));
    add_space_prefix = prefix;
    report.source = "tokenizer.model", report.model = "llama";
  } else {
    return make_error("{} has neither tokenizer.json nor tokenizer.model", dir);
  }
  BITNET_RETURN_IF_ERROR(fill_holes(v, n_vocab, report.source));
  report.n_tokens = v.tokens.size();

  const fs::path tc_path = root / "tokenizer_config.json";
  json tc, config, generation;
  if (fs::exists(tc_path, ec)) {
    BITNET_ASSIGN_OR_RETURN(tc, read_json_file(tc_path.string()));
  }
  BITNET_ASSIGN_OR_RETURN(config, read_json_file((root / "config.json").string()));
  if (fs::exists(root / "generation_config.json", ec)) {
    BITNET_ASSIGN_OR_RETURN(generation, read_json_file((root / "generation_config.json").string()));
  }

  w.set("tokenizer.ggml.model", report.model);
  if (report.model == "gpt2") w.set("tokenizer.ggml.pre", report.pre);
  w.set("tokenizer.ggml.tokens", gguf::Array::of_strings(v.tokens));
  if (!v.scores.empty()) w.set("tokenizer.ggml.scores", gguf::Array::of(v.scores));
  w.set("tokenizer.ggml.token_type", gguf::Array::of(v.types));
  if (report.model == "gpt2") w.set("tokenizer.ggml.merges", gguf::Array::of_strings(v.merges));

  // Special ids, in llama.cpp SpecialVocab's order of sources: the token text named in
  // tokenizer_config.json, then config.json's *_token_id (then generation_config.json's).
  struct Special {
    const char* name;  // bos, eos, unk, sep, pad
    std::optional<int64_t> spm_default;
  };
  const Special specials[] = {
      {"bos", spm_ids.bos}, {"eos", spm_ids.eos}, {"unk", spm_ids.unk}, {"sep", std::nullopt}, {"pad", spm_ids.pad}};
  for (const Special& s : specials) {
    std::optional<int64_t> id;
    if (auto text = token_content(tc, fmt::format("{}_token", s.name).c_str())) {
      auto it = v.ids.find(*text);
      if (it != v.ids.end()) id = it->second;
    }
    const std::string id_key = fmt::format("{}_token_id", s.name);
    if (!id) id = config_id(config, id_key.c_str());
    if (!id) id = config_id(generation, id_key.c_str());
    if (!id && report.model == "llama") id = s.spm_default;
    if (!id || *id < 0) continue;
    if (static_cast<uint64_t>(*id) >= n_vocab)
      return make_error("the {} token id {} is outside the vocabulary of {} tokens", s.name, *id, n_vocab);
    w.set(fmt::format("tokenizer.ggml.{}_token_id", s.name), static_cast<uint32_t>(*id));
  }
  for (const char* flag : {"add_bos_token", "add_eos_token"}) {
    if (tc.is_object() && tc.contains(flag) && tc[flag].is_boolean()) {
      w.set(fmt::format("tokenizer.ggml.{}", flag), tc[flag].get<bool>());
    } else if (std::string_view(flag) == "add_bos_token" && added_bos && v.ids.count(*added_bos)) {
      w.set("tokenizer.ggml.add_bos_token", true);
    }
  }
  if (add_space_prefix) w.set("tokenizer.ggml.add_space_prefix", *add_space_prefix);
  // chat_template: a string, or (newer tokenizers) a list of named templates whose "default" is used.
  if (tc.is_object() && tc.contains("chat_template")) {
    const json& t = tc["chat_template"];
    if (t.is_string()) {
      w.set("tokenizer.chat_template", t.get<std::string>());
    } else if (t.is_array()) {
      for (const json& named : t) {
        if (named.is_object() && named.value("name", std::string()) == "default" && named.contains("template") &&
            named["template"].is_string())
          w.set("tokenizer.chat_template", named["template"].get<std::string>());
      }
    }
  }
  return report;
}

}  // namespace bitnet::convert
