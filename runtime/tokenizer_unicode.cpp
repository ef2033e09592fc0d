// UTF-8 decoding and the GPT-2 byte-to-unicode table (see tokenizer_unicode.h).
#include "runtime/tokenizer_unicode.h"

#include <array>

namespace bitnet::runtime::detail {
namespace {

struct ByteTable {
  std::array<std::string, 256> to_unicode;
  std::array<int, 512> from_unicode{};  // every mapped code point is below U+0144
};

ByteTable make_byte_table() {
  ByteTable t;
  t.from_unicode.fill(-1);
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  int next = 256;  // the non-printable bytes take U+0100.. in byte order
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = printable(b) ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
    append_utf8(t.to_unicode[b], cp);
    t.from_unicode[cp] = b;
  }
  return t;
}

const ByteTable& byte_table() {
  static const ByteTable table = make_byte_table();
  return table;
}

}  // namespace

size_t utf8_lead_length(uint8_t first_byte) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[first_byte >> 4];
}

std::vector<Utf8Unit> decode_utf8(std::string_view text) {
  std::vector<Utf8Unit> units;
  units.reserve(text.size());
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t b0 = s[i];
    if (b0 < 0x80) {
      units.push_back({i, 1, b0, true});
      ++i;
      continue;
    }
    // Strict RFC 3629 decoding (what PCRE2 accepts): no overlongs, surrogates or > U+10FFFF.
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4, cp = b0 & 0x07, min = 0x10000;
    }
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (s[i + k] & 0x3F);
      }
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      units.push_back({i, len, cp, true});
      i += len;
    } else {
      units.push_back({i, 1, 0xFFFD, false});
      ++i;
    }
  }
  return units;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

const std::string& byte_to_unicode(uint8_t byte) {
  return byte_table().to_unicode[byte];
}

int unicode_to_byte(uint32_t cp) {
  const auto& t = byte_table().from_unicode;
  return cp < t.size() ? t[cp] : -1;
}

std::string bytes_to_unicode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_to_unicode(static_cast<uint8_t>(c));
  return out;
}

}  // namespace bitnet::runtime::detail
