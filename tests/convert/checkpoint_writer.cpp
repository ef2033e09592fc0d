// Hugging Face checkpoint writers for the convert tests (see checkpoint_writer.h).
#include "convert/checkpoint_writer.h"

#include "ir/support/half.h"

#include <algorithm>
#include <cstring>
#include <fstream>

namespace bitnet::testing {

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::vector<uint8_t> bf16_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], 4);
    const auto upper = static_cast<uint16_t>(bits >> 16);
    std::memcpy(out.data() + 2 * i, &upper, 2);
  }
  return out;
}

std::vector<uint8_t> f16_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = half::from_float(v[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

std::vector<uint8_t> safetensors_bytes(const std::vector<StEntry>& entries, const std::string* header_patch) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const auto& e : entries) {
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.data.size()}}};
    offset += e.data.size();
  }
  std::string text = header_patch != nullptr ? *header_patch : header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';  // the data starts 8-aligned
  const uint64_t n = text.size();
  std::vector<uint8_t> out(8 + n + offset);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), n);
  uint64_t at = 8 + n;
  for (const auto& e : entries) {
    if (!e.data.empty()) std::memcpy(out.data() + at, e.data.data(), e.data.size());
    at += e.data.size();
  }
  out.resize(std::max<uint64_t>(at, 8 + n));
  return out;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

namespace {

// GPT-2's byte -> printable code point table (bytes that are printable map to themselves).
std::string byte_token(int b) {
  int cp = b;
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  if (!printable) {
    int n = 0;
    for (int x = 0; x < b; ++x) {
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

void put_bytes_field(std::vector<uint8_t>& out, int number, const std::vector<uint8_t>& payload) {
  put_varint(out, (static_cast<uint64_t>(number) << 3) | 2);
  put_varint(out, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
}

}  // namespace

nlohmann::json bpe_tokenizer_json(const std::vector<std::pair<std::string, std::string>>& merges,
                                  const std::vector<std::string>& specials) {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = id++;
  nlohmann::json merge_list = nlohmann::json::array();
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    merge_list.push_back(a + " " + b);
  }
  nlohmann::json added = nlohmann::json::array();
  for (const auto& s : specials) added.push_back({{"id", id++}, {"content", s}, {"special", true}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}}};
}

std::vector<uint8_t> sentencepiece_model_bytes(const std::vector<SpmPieceSpec>& pieces, bool add_dummy_prefix) {
  std::vector<uint8_t> out;
  for (const auto& p : pieces) {
    std::vector<uint8_t> msg;
    put_bytes_field(msg, 1, std::vector<uint8_t>(p.text.begin(), p.text.end()));
    put_varint(msg, (2 << 3) | 5);
    uint32_t bits;
    std::memcpy(&bits, &p.score, 4);
    for (int i = 0; i < 4; ++i) msg.push_back(static_cast<uint8_t>(bits >> (8 * i)));
    put_varint(msg, 3 << 3);
    put_varint(msg, static_cast<uint64_t>(p.type));
    put_bytes_field(out, 1, msg);
  }
  std::vector<uint8_t> normalizer;
  put_varint(normalizer, 3 << 3);
  put_varint(normalizer, add_dummy_prefix ? 1 : 0);
  put_bytes_field(out, 3, normalizer);
  return out;
}

}  // namespace bitnet::testing
