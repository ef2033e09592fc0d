// Plan footer and xxh3 helpers (see plan_format.h).
#include "runtime/plan_format.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace bitnet::runtime {

uint64_t xxh3_64(std::span<const uint8_t> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

Hash128 xxh3_128(std::span<const uint8_t> bytes) {
  const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  return {h.low64, h.high64};
}

Hash128 xxh3_128_chunked(std::span<const uint8_t> bytes, const std::function<void(double)>& progress) {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) return xxh3_128(bytes);  // no memory for 576 bytes of state: hash in one go
  XXH3_128bits_reset(state);
  constexpr size_t kChunk = size_t{64} << 20;
  for (size_t at = 0; at < bytes.size(); at += kChunk) {
    const size_t n = std::min(kChunk, bytes.size() - at);
    XXH3_128bits_update(state, bytes.data() + at, n);
    if (progress) progress(static_cast<double>(at + n) / static_cast<double>(bytes.size()));
  }
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  // The streaming and one-shot forms give the same digest (xxhash guarantees it).
  return {h.low64, h.high64};
}

std::string to_hex(uint64_t v) {
  return fmt::format("{:016x}", v);
}
std::string to_hex(const Hash128& h) {
  return fmt::format("{:016x}{:016x}", h.hi, h.lo);
}

Expected<Hash128> hash128_from_hex(std::string_view hex) {
  if (hex.size() != 32) return make_error("'{}' is not a 128-bit hex hash", hex);
  auto half = [](std::string_view s, uint64_t& out) {
    out = 0;
    for (char c : s) {
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      out = out << 4 | static_cast<uint64_t>(d);
    }
    return true;
  };
  Hash128 h;
  if (!half(hex.substr(0, 16), h.hi) || !half(hex.substr(16), h.lo)) return make_error("'{}' is not a hex hash", hex);
  return h;
}

PlanFooter make_footer(std::span<const uint8_t> body) {
  PlanFooter f{};
  std::memcpy(f.magic, kFooterMagic, sizeof f.magic);
  f.format_version = kPlanFormatVersion;
  f.body_size = body.size();
  f.checksum = xxh3_64(body);
  return f;
}

Status check_footer(std::span<const uint8_t> file) {
  if (file.size() < sizeof(PlanFooter)) {
    return make_error("the file is {} bytes, too short to be a plan (truncated?)", file.size());
  }
  PlanFooter f;
  std::memcpy(&f, file.data() + file.size() - sizeof f, sizeof f);
  if (std::memcmp(f.magic, kFooterMagic, sizeof f.magic) != 0) {
    return make_error("no plan footer at the end of the file (truncated, or not a plan)");
  }
  if (f.reserved != 0) return make_error("the plan footer is corrupt (reserved field is not zero)");
  const uint64_t body = file.size() - sizeof f;
  if (f.body_size != body) {
    return make_error("the footer says {} bytes of plan but the file holds {} (truncated or extended)", f.body_size,
                      body);
  }
  // The version before the checksum: a plan of another version may hash its body differently.
  if (f.format_version != kPlanFormatVersion) {
    return make_error("plan format version {} is not this runtime's version {}; recompile the plan", f.format_version,
                      kPlanFormatVersion);
  }
  if (xxh3_64(file.first(body)) != f.checksum) {
    return make_error("checksum mismatch: the plan is corrupt (a byte changed after it was written)");
  }
  return Status::success();
}

}  // namespace bitnet::runtime
