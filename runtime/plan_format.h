// The plan file's fixed facts: versions, the footer that carries the whole-file checksum, and
// the xxh3 helpers every plan component hashes with. The schema itself is schema/plan.fbs.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace bitnet::runtime {

// Bump on any schema change an older runtime would misread (plans of another version are refused).
// 2: the schedule holds every step (token loading, last-row copies) and the outputs.
// 3: many sequences: per-sequence calls with row offsets, select_rows of R rows.
inline constexpr uint32_t kPlanFormatVersion = 3;
// Bump when a repacked weight layout (sidecar contents) or a kernel's weight reading changes.
inline constexpr uint32_t kWeightLayoutVersion = 1;
inline constexpr const char* kPlanIdentifier = "BNPL";
inline constexpr const char* kPlanExtension = ".bnplan";
inline constexpr const char* kSidecarSuffix = ".weights";  // PLAN.bnplan -> PLAN.bnplan.weights
inline constexpr uint64_t kSidecarAlignment = 64;

// The last 32 bytes of a plan file. The checksum covers every byte before the footer, so a
// truncation, a flipped byte anywhere (FlatBuffer, code image, or the footer's own fields) or
// an appended byte is caught before the FlatBuffers Verifier even runs.
struct PlanFooter {
  char magic[8];  // kFooterMagic
  uint32_t format_version;
  uint32_t reserved;   // 0
  uint64_t body_size;  // bytes before the footer
  uint64_t checksum;   // xxh3-64 of those bytes
};
static_assert(sizeof(PlanFooter) == 32);
inline constexpr char kFooterMagic[8] = {'B', 'N', 'P', 'L', 'E', 'N', 'D', '1'};

struct Hash128 {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const Hash128&) const = default;
};

uint64_t xxh3_64(std::span<const uint8_t> bytes);
Hash128 xxh3_128(std::span<const uint8_t> bytes);
// Large inputs in chunks, calling progress(fraction) between them.
Hash128 xxh3_128_chunked(std::span<const uint8_t> bytes, const std::function<void(double)>& progress);
std::string to_hex(const Hash128& h);  // 32 hex digits, hi then lo
std::string to_hex(uint64_t v);        // 16 hex digits
Expected<Hash128> hash128_from_hex(std::string_view hex);

// The footer for `body`, and its check: what is wrong with a file's last 32 bytes, or success.
PlanFooter make_footer(std::span<const uint8_t> body);
Status check_footer(std::span<const uint8_t> file);

}  // namespace bitnet::runtime
