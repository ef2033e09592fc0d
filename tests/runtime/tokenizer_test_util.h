// Helpers for the tokenizer tests: loading the ../shared vocabularies, the llama.cpp
// .inp/.out golden pairs, and GGUF-style data built from the Llama 3 tokenizer.json.
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "runtime/tokenizer.h"
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace bitnet::runtime::testing {

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::filesystem::path vocab_path(const std::filesystem::path& shared, const std::string& name) {
  return shared / "models" / "vocab" / ("ggml-vocab-" + name + ".gguf");
}

// A vocabulary from ../shared (general.name included, as the CLI loads it).
inline std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::filesystem::path& path) {
  auto file = gguf::GgufFile::open(path.string());
  EXPECT_TRUE(file.ok()) << (file.ok() ? "" : file.error().message);
  if (!file.ok()) return nullptr;
  auto tokenizer = Tokenizer::from_gguf_file(*file);
  EXPECT_TRUE(tokenizer.ok()) << path << ": " << (tokenizer.ok() ? "" : tokenizer.error().message);
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

// llama.cpp's test-tokenizer-0 format: strings joined by "\n__ggml_vocab_test__\n" (the
// file also ends with it); ids one line per string, each id preceded by a space.
struct GoldenCase {
  std::string text;
  std::vector<TokenId> ids;
};

inline std::vector<GoldenCase> read_golden(const std::filesystem::path& inp, const std::filesystem::path& out) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  const std::string in_text = read_text(inp);
  std::vector<std::string> strings;
  size_t pos = 0;
  while (pos < in_text.size()) {
    const size_t next = in_text.find(sep, pos);
    if (next == std::string::npos) {
      strings.push_back(in_text.substr(pos));
      break;
    }
    strings.push_back(in_text.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<GoldenCase> cases;
  std::istringstream lines(read_text(out));
  std::string line;
  for (const std::string& s : strings) {
    if (!std::getline(lines, line)) break;
    GoldenCase c{s, {}};
    std::istringstream ids(line);
    for (long id = 0; ids >> id;) c.ids.push_back(static_cast<TokenId>(id));
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), strings.size()) << out;
  return cases;
}

// The Llama 3 tokenizer.json as a converter would store it in GGUF: tokens, merges, token
// types (added special tokens are control) and BOS/EOS.
inline gguf::TokenizerData llama3_gguf_data(const std::filesystem::path& tokenizer_json) {
  const auto j = nlohmann::json::parse(read_text(tokenizer_json));
  gguf::TokenizerData d;
  d.model = "gpt2";
  d.pre = "llama-bpe";
  d.tokens.resize(128256);
  d.token_types.assign(128256, static_cast<int32_t>(gguf::TokenType::kNormal));
  for (const auto& [text, id] : j["model"]["vocab"].items()) d.tokens[id.get<size_t>()] = text;
  for (const auto& a : j["added_tokens"]) {
    d.tokens[a["id"].get<size_t>()] = a["content"].get<std::string>();
    d.token_types[a["id"].get<size_t>()] = static_cast<int32_t>(gguf::TokenType::kControl);
  }
  for (const auto& m : j["model"]["merges"]) d.merges.push_back(m.get<std::string>());
  d.special.bos = 128000;
  d.special.eos = 128001;
  return d;
}

inline std::string join_ids(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) s += " " + std::to_string(id);
  return s;
}

}  // namespace bitnet::runtime::testing
