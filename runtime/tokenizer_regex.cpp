// The PCRE2 splitter behind byte-level BPE pre-tokenization (see tokenizer_regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "runtime/tokenizer_regex.h"

#include "runtime/tokenizer_unicode.h"

#include <pcre2.h>

namespace bitnet::runtime::detail {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  return n < 0 ? fmt::format("PCRE2 error {}", code) : std::string(reinterpret_cast<const char*>(buffer));
}

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
struct MatchContextDeleter {
  void operator()(pcre2_match_context* m) const { pcre2_match_context_free(m); }
};
struct JitStackDeleter {
  void operator()(pcre2_jit_stack* s) const { pcre2_jit_stack_free(s); }
};

// The text as PCRE2 sees it: valid UTF-8 (invalid bytes replaced by U+FFFD, non-ASCII
// whitespace by "\v") plus the map from its byte offsets back to code-point units of the
// original.
struct Subject {
  std::vector<Utf8Unit> units;
  std::string bytes;
  std::vector<size_t> unit_offset;  // byte offset in `bytes` of unit i; one extra entry at the end
  std::vector<uint32_t> unit_at;    // unit index of a byte offset in `bytes` (valid at unit starts)
};

// llama.cpp's whitespace set (Unicode White_Space) beyond ASCII. llama.cpp matches these as
// "\v" (std::regex does not know them); so do we, which also keeps them out of literal
// ranges such as DeepSeek's [\x{800}-\x{4E00}].
bool is_wide_space(uint32_t cp) {
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

Subject make_subject(std::string_view text) {
  Subject s;
  s.units = decode_utf8(text);
  s.bytes.reserve(text.size() + 8);
  s.unit_offset.reserve(s.units.size() + 1);
  for (const Utf8Unit& u : s.units) {
    s.unit_offset.push_back(s.bytes.size());
    if (!u.valid) {
      append_utf8(s.bytes, 0xFFFD);
    } else if (u.cp >= 0x80 && is_wide_space(u.cp)) {
      s.bytes += '\v';
    } else if (u.cp == 0x180E) {
      // PCRE2 still counts U+180E as \s; for llama.cpp it is a format character (Cf) like U+200B.
      append_utf8(s.bytes, 0x200B);
    } else {
      s.bytes.append(text.substr(u.offset, u.length));
    }
  }
  s.unit_offset.push_back(s.bytes.size());
  s.unit_at.assign(s.bytes.size() + 1, 0);
  for (size_t i = 0; i < s.unit_offset.size(); ++i) s.unit_at[s.unit_offset[i]] = static_cast<uint32_t>(i);
  return s;
}

}  // namespace

struct RegexSplitter::Impl {
  std::vector<std::unique_ptr<pcre2_code, CodeDeleter>> codes;
};

RegexSplitter::RegexSplitter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RegexSplitter::~RegexSplitter() = default;

Expected<std::shared_ptr<const RegexSplitter>> RegexSplitter::create(const std::vector<std::string>& patterns) {
  auto impl = std::make_unique<Impl>();
  for (const std::string& pattern : patterns) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    // DOLLAR_ENDONLY: ECMAScript `$` (llama.cpp uses std::regex) never matches before a final newline.
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error, &error_offset, nullptr);
    if (code == nullptr) {
      return make_error("pre-tokenizer regex '{}' does not compile at offset {}: {}", pattern, error_offset,
                        pcre2_message(error));
    }
    impl->codes.emplace_back(code);
    // JIT is an optimisation only: without it (unsupported CPU) pcre2_match interprets.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  return std::shared_ptr<const RegexSplitter>(new RegexSplitter(std::move(impl)));
}

std::vector<std::string_view> RegexSplitter::split(std::string_view text) const {
  if (text.empty()) return {};
  const Subject s = make_subject(text);
  const size_t n_units = s.units.size();

  std::unique_ptr<pcre2_match_context, MatchContextDeleter> context(pcre2_match_context_create(nullptr));
  // Long runs of one class (e.g. a megabyte of letters) need more than the default 32 KiB.
  std::unique_ptr<pcre2_jit_stack, JitStackDeleter> stack(pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr));
  if (context && stack) pcre2_jit_stack_assign(context.get(), nullptr, stack.get());
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> match(pcre2_match_data_create(1, nullptr));
  if (!match) return {text};

  // Pieces are kept as lengths in units, like llama.cpp's bpe_offsets.
  std::vector<size_t> pieces = {n_units};
  for (const auto& code : impl_->codes) {
    std::vector<size_t> next;
    next.reserve(pieces.size() * 2);
    size_t first_unit = 0;
    for (const size_t len : pieces) {
      const size_t base = s.unit_offset[first_unit];
      const size_t end = s.unit_offset[first_unit + len];
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.bytes.data() + base);
      const size_t length = end - base;
      auto unit_of = [&](size_t byte) { return s.unit_at[base + byte]; };
      size_t last = 0;   // end of the previous piece, bytes relative to `subject`
      size_t start = 0;  // where the next search starts
      while (start <= length) {
        int rc = pcre2_match(code.get(), subject, length, start, PCRE2_NO_UTF_CHECK, match.get(), context.get());
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
          rc = pcre2_match(code.get(), subject, length, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, match.get(),
                           context.get());
        }
        if (rc < 0) break;  // no match, or a resource limit: the rest stays one piece
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
        const size_t m0 = ov[0], m1 = ov[1];
        if (m0 > last) next.push_back(unit_of(m0) - unit_of(last));
        if (m1 > m0) {
          next.push_back(unit_of(m1) - unit_of(m0));
          last = m1;
          start = m1;
        } else {
          // An empty match only separates the text around it; step over one code point.
          last = m0;
          if (m0 >= length) break;
          start = s.unit_offset[unit_of(m0) + 1] - base;
        }
      }
      if (last < length) next.push_back(unit_of(length) - unit_of(last));
      first_unit += len;
    }
    pieces = std::move(next);
  }

  std::vector<std::string_view> out;
  out.reserve(pieces.size());
  size_t unit = 0;
  for (const size_t len : pieces) {
    const size_t from = s.units[unit].offset;
    const size_t to = unit + len < n_units ? s.units[unit + len].offset : text.size();
    out.push_back(text.substr(from, to - from));
    unit += len;
  }
  return out;
}

}  // namespace bitnet::runtime::detail
