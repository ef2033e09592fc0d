// UTF-8 and GPT-2 byte-level helpers shared by the tokenizers (internal to runtime/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::runtime::detail {

// Length of a UTF-8 sequence from its first byte, as llama.cpp's unicode_len_utf8 computes
// it (continuation bytes count as 1, 0xF8..0xFF as 4). SentencePiece splitting uses this,
// so malformed input is split exactly as the reference splits it.
size_t utf8_lead_length(uint8_t first_byte);

// One unit of strictly decoded UTF-8: a valid code point, or one byte that does not start
// a valid sequence (then `valid` is false and `cp` is U+FFFD).
struct Utf8Unit {
  size_t offset = 0;  // in the input
  size_t length = 0;  // bytes in the input
  uint32_t cp = 0;
  bool valid = true;
};
std::vector<Utf8Unit> decode_utf8(std::string_view text);

void append_utf8(std::string& out, uint32_t cp);

// GPT-2 byte-to-unicode mapping: printable Latin-1 bytes map to themselves, the other bytes
// to U+0100 upwards. Byte-level BPE vocabularies store their tokens in this form.
const std::string& byte_to_unicode(uint8_t byte);
// The byte a code point stands for, or -1 when it is not in the mapping.
int unicode_to_byte(uint32_t cp);
// Raw bytes -> their GPT-2 unicode form.
std::string bytes_to_unicode(std::string_view bytes);

}  // namespace bitnet::runtime::detail
