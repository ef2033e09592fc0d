// Reads a Hugging Face tokenizer.json (byte-level BPE) into GGUF-style tokenizer data and a
// pre-tokenizer, the way llama.cpp's converter would store it; see tokenizer_internal.h.
#include "runtime/tokenizer_internal.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace bitnet::runtime::detail {
namespace {

using nlohmann::json;

// The ByteLevel pre-tokenizer's own regex (use_regex = true): GPT-2's.
constexpr const char* kByteLevelRegex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3's Split regex as tokenizer.json spells it; llama.cpp maps it to pre = llama-bpe.
constexpr const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Expected<json> read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open {}", path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  json j = json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("{} is not valid JSON", path.string());
  return j;
}

// bos_token / eos_token are strings or {"content": ...} objects.
std::optional<std::string> token_content(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

Status add_pre_tokenizer(const json& p, std::vector<std::string>& patterns, bool& byte_level) {
  if (!p.is_object() || !p.contains("type")) return make_error("pre_tokenizer entry without a type");
  const std::string type = p["type"].get<std::string>();
  if (type == "Sequence") {
    for (const json& q : p.at("pretokenizers")) BITNET_RETURN_IF_ERROR(add_pre_tokenizer(q, patterns, byte_level));
    return Status::success();
  }
  if (type == "ByteLevel") {
    if (p.value("add_prefix_space", false)) return make_error("ByteLevel with add_prefix_space is not supported");
    if (p.value("use_regex", true)) patterns.push_back(kByteLevelRegex);
    byte_level = true;
    return Status::success();
  }
  if (type == "Split") {
    if (p.value("invert", false) || p.value("behavior", std::string("Isolated")) != "Isolated") {
      return make_error("only Split with behavior Isolated (not inverted) is supported");
    }
    const json& pattern = p.at("pattern");
    if (pattern.contains("Regex")) {
      patterns.push_back(pattern["Regex"].get<std::string>());
    } else {
      patterns.push_back("\\Q" + pattern.at("String").get<std::string>() + "\\E");
    }
    return Status::success();
  }
  if (type == "Digits") {
    patterns.push_back(p.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
    return Status::success();
  }
  return make_error("pre-tokenizer type '{}' is not supported", type);
}

// A TemplateProcessing post-processor that starts with a special token adds it as BOS.
std::optional<std::string> template_bos(const json& post) {
  if (!post.is_object()) return std::nullopt;
  const std::string type = post.value("type", std::string());
  if (type == "Sequence" && post.contains("processors")) {
    for (const json& q : post["processors"]) {
      if (auto bos = template_bos(q)) return bos;
    }
  }
  if (type == "TemplateProcessing" && post.contains("single") && post["single"].is_array() && !post["single"].empty()) {
    const json& first = post["single"][0];
    if (first.contains("SpecialToken")) return first["SpecialToken"].at("id").get<std::string>();
  }
  return std::nullopt;
}

Expected<HfTokenizer> convert(const json& j, const std::optional<json>& config) {
  if (!j.is_object() || !j.contains("model")) return make_error("no \"model\" object");
  const json& model = j["model"];
  if (model.value("type", std::string("BPE")) != "BPE") {
    return make_error("model type '{}' is not supported (only byte-level BPE)", model["type"].get<std::string>());
  }
  if (model.value("byte_fallback", false)) return make_error("BPE with byte_fallback is not supported");
  if (j.contains("normalizer") && !j["normalizer"].is_null()) return make_error("normalizers are not supported");

  HfTokenizer out;
  gguf::TokenizerData& d = out.data;
  d.model = "gpt2";
  // Ids: the model's vocabulary, then added tokens (which may also override vocabulary ids).
  if (!model.contains("vocab") || !model["vocab"].is_object()) return make_error("model.vocab must be an object");
  if (!model.contains("merges") || !model["merges"].is_array()) return make_error("model.merges must be an array");
  std::vector<std::pair<int64_t, std::string>> entries;
  for (const auto& [text, id] : model["vocab"].items()) entries.emplace_back(id.get<int64_t>(), text);
  struct Added {
    int64_t id;
    std::string text;
    bool special;
  };
  std::vector<Added> added;
  if (j.contains("added_tokens")) {
    for (const json& a : j["added_tokens"]) {
      added.push_back({a.at("id").get<int64_t>(), a.at("content").get<std::string>(), a.value("special", false)});
    }
  }
  int64_t n = 0;
  for (const auto& e : entries) n = std::max(n, e.first + 1);
  for (const auto& a : added) n = std::max(n, a.id + 1);
  if (n <= 0 || n > (int64_t{1} << 24)) return make_error("implausible vocabulary size {}", n);
  for (const auto& e : entries) {
    if (e.first < 0) return make_error("negative token id for '{}'", e.second);
  }
  d.tokens.assign(static_cast<size_t>(n), std::string());
  d.token_types.assign(static_cast<size_t>(n), static_cast<int32_t>(gguf::TokenType::kUnused));
  for (const auto& [id, text] : entries) {
    d.tokens[id] = text;
    d.token_types[id] = static_cast<int32_t>(gguf::TokenType::kNormal);
  }
  for (const Added& a : added) {
    if (a.id < 0) return make_error("negative token id for added token '{}'", a.text);
    d.tokens[a.id] = a.text;
    // As llama.cpp's converter: special added tokens are control, the others user-defined.
    d.token_types[a.id] = static_cast<int32_t>(a.special ? gguf::TokenType::kControl : gguf::TokenType::kUserDefined);
  }
  for (size_t i = 0; i < d.tokens.size(); ++i) {
    if (d.tokens[i].empty()) d.tokens[i] = fmt::format("[PAD{}]", i);  // holes, as the converter fills them
  }
  for (const json& m : model["merges"]) {
    if (m.is_string()) {
      d.merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2) {
      const std::string left = m[0].get<std::string>(), right = m[1].get<std::string>();
      if (left.empty() || left.find(' ') != std::string::npos)
        return make_error("merge pair '{}' is not supported", left);
      d.merges.push_back(left + " " + right);
    } else {
      return make_error("merges must be strings or pairs");
    }
  }

  bool byte_level = false;
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null()) return make_error("no pre_tokenizer");
  BITNET_RETURN_IF_ERROR(add_pre_tokenizer(j["pre_tokenizer"], out.pre.patterns, byte_level));
  if (!byte_level) return make_error("the pre-tokenizer is not byte-level (no ByteLevel step)");
  out.pre.name = "tokenizer.json";
  out.pre.ignore_merges = model.value("ignore_merges", false);
  out.pre.clean_spaces = true;  // llama.cpp's default for BPE vocabularies
  if (out.pre.patterns.size() == 1 && out.pre.patterns[0] == kLlama3Regex) out.pre.add_bos = true;

  auto find_id = [&](const std::string& text) -> std::optional<int64_t> {
    for (size_t i = 0; i < d.tokens.size(); ++i) {
      if (d.tokens[i] == text) return static_cast<int64_t>(i);
    }
    return std::nullopt;
  };
  if (auto bos = template_bos(j.value("post_processor", json()))) {
    d.special.bos = find_id(*bos);
    if (d.special.bos) d.add_bos = true;
  }
  if (config) {
    if (auto bos = token_content(config->value("bos_token", json())); bos && !d.special.bos)
      d.special.bos = find_id(*bos);
    if (auto eos = token_content(config->value("eos_token", json()))) d.special.eos = find_id(*eos);
    if (auto unk = token_content(config->value("unk_token", json()))) d.special.unk = find_id(*unk);
    const json& add_bos = config->value("add_bos_token", json());
    if (add_bos.is_boolean()) d.add_bos = add_bos.get<bool>();
    const json& add_eos = config->value("add_eos_token", json());
    if (add_eos.is_boolean()) d.add_eos = add_eos.get<bool>();
    const json& clean = config->value("clean_up_tokenization_spaces", json());
    if (clean.is_boolean()) out.pre.clean_spaces = clean.get<bool>();
  }
  return out;
}

}  // namespace

Expected<HfTokenizer> read_hf_tokenizer(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(json j, read_json(path));
  // Optional sibling tokenizer_config.json: bos/eos tokens and the add_*_token flags.
  std::optional<json> config;
  const std::filesystem::path config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::is_regular_file(config_path, ec)) {
    BITNET_ASSIGN_OR_RETURN(json c, read_json(config_path));
    config = std::move(c);
  }
  try {
    auto result = convert(j, config);
    if (!result.ok()) return make_error("{}: {}", path, result.error().message);
    return result;
  } catch (const json::exception& e) {
    // Wrong types or missing keys in the document.
    return make_error("{}: unexpected tokenizer.json structure: {}", path, e.what());
  }
}

}  // namespace bitnet::runtime::detail
