// cpuid-based feature checks (see plan_cpu.h). Bits from the Intel SDM, Vol. 2A, CPUID.
#include "runtime/plan_cpu.h"

#include <algorithm>
#include <cstdint>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace bitnet::runtime {
namespace {

enum class Reg : uint8_t { kEax, kEbx, kEcx, kEdx };
enum class OsState : uint8_t { kNone, kAvx, kAvx512 };

struct FeatureBit {
  std::string_view name;  // LLVM's name
  uint32_t leaf;
  uint32_t subleaf;
  Reg reg;
  int bit;
  OsState os;  // register state the OS must save (XCR0) for the feature to be usable
};

// The features LLVM may use in vector kernels, and a few scalar ones it uses for x86-64-v2/v3.
constexpr FeatureBit kFeatures[] = {
    {"sse", 1, 0, Reg::kEdx, 25, OsState::kNone},
    {"sse2", 1, 0, Reg::kEdx, 26, OsState::kNone},
    {"sse3", 1, 0, Reg::kEcx, 0, OsState::kNone},
    {"pclmul", 1, 0, Reg::kEcx, 1, OsState::kNone},
    {"ssse3", 1, 0, Reg::kEcx, 9, OsState::kNone},
    {"fma", 1, 0, Reg::kEcx, 12, OsState::kAvx},
    {"cx16", 1, 0, Reg::kEcx, 13, OsState::kNone},
    {"sse4.1", 1, 0, Reg::kEcx, 19, OsState::kNone},
    {"sse4.2", 1, 0, Reg::kEcx, 20, OsState::kNone},
    {"movbe", 1, 0, Reg::kEcx, 22, OsState::kNone},
    {"popcnt", 1, 0, Reg::kEcx, 23, OsState::kNone},
    {"aes", 1, 0, Reg::kEcx, 25, OsState::kNone},
    {"avx", 1, 0, Reg::kEcx, 28, OsState::kAvx},
    {"f16c", 1, 0, Reg::kEcx, 29, OsState::kAvx},
    {"bmi", 7, 0, Reg::kEbx, 3, OsState::kNone},
    {"avx2", 7, 0, Reg::kEbx, 5, OsState::kAvx},
    {"bmi2", 7, 0, Reg::kEbx, 8, OsState::kNone},
    {"avx512f", 7, 0, Reg::kEbx, 16, OsState::kAvx512},
    {"avx512dq", 7, 0, Reg::kEbx, 17, OsState::kAvx512},
    {"adx", 7, 0, Reg::kEbx, 19, OsState::kNone},
    {"avx512ifma", 7, 0, Reg::kEbx, 21, OsState::kAvx512},
    {"avx512cd", 7, 0, Reg::kEbx, 28, OsState::kAvx512},
    {"sha", 7, 0, Reg::kEbx, 29, OsState::kNone},
    {"avx512bw", 7, 0, Reg::kEbx, 30, OsState::kAvx512},
    {"avx512vl", 7, 0, Reg::kEbx, 31, OsState::kAvx512},
    {"avx512vbmi", 7, 0, Reg::kEcx, 1, OsState::kAvx512},
    {"avx512vbmi2", 7, 0, Reg::kEcx, 6, OsState::kAvx512},
    {"gfni", 7, 0, Reg::kEcx, 8, OsState::kNone},
    {"vaes", 7, 0, Reg::kEcx, 9, OsState::kAvx},
    {"vpclmulqdq", 7, 0, Reg::kEcx, 10, OsState::kAvx},
    {"avx512vnni", 7, 0, Reg::kEcx, 11, OsState::kAvx512},
    {"avx512bitalg", 7, 0, Reg::kEcx, 12, OsState::kAvx512},
    {"avx512vpopcntdq", 7, 0, Reg::kEcx, 14, OsState::kAvx512},
    {"avx512vp2intersect", 7, 0, Reg::kEdx, 8, OsState::kAvx512},
    {"avx512fp16", 7, 0, Reg::kEdx, 23, OsState::kAvx512},
    {"avxvnni", 7, 1, Reg::kEax, 4, OsState::kAvx},
    {"avx512bf16", 7, 1, Reg::kEax, 5, OsState::kAvx512},
    {"lzcnt", 0x80000001, 0, Reg::kEcx, 5, OsState::kNone},
};

const FeatureBit* find(std::string_view name) {
  for (const FeatureBit& f : kFeatures) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

#if defined(__x86_64__)
uint64_t xcr0() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // no OSXSAVE: no AVX state
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool has(const FeatureBit& f) {
  unsigned r[4] = {0, 0, 0, 0};
  if (!__get_cpuid_count(f.leaf, f.subleaf, &r[0], &r[1], &r[2], &r[3])) return false;
  if (!(r[static_cast<int>(f.reg)] & (1u << f.bit))) return false;
  static const uint64_t state = xcr0();
  switch (f.os) {
    case OsState::kNone:
      return true;
    case OsState::kAvx:
      return (state & 0x6) == 0x6;  // XMM and YMM state
    case OsState::kAvx512:
      return (state & 0xe6) == 0xe6;  // plus opmask, ZMM_Hi256, Hi16_ZMM
  }
  return false;
}
#else
bool has(const FeatureBit&) {
  return false;
}
#endif

}  // namespace

bool cpu_feature_known(std::string_view name) {
#if defined(__x86_64__)
  return find(name) != nullptr;
#else
  (void)name;
  return false;
#endif
}

bool cpu_has_feature(std::string_view name) {
  const FeatureBit* f = cpu_feature_known(name) ? find(name) : nullptr;
  return f != nullptr && has(*f);
}

void split_target_features(std::string_view llvm_features, std::vector<std::string>& required,
                           std::vector<std::string>& unchecked) {
  required.clear();
  unchecked.clear();
  while (!llvm_features.empty()) {
    const size_t comma = std::min(llvm_features.find(','), llvm_features.size());
    std::string_view item = llvm_features.substr(0, comma);
    llvm_features.remove_prefix(std::min(comma + 1, llvm_features.size()));
    if (item.size() < 2 || item[0] != '+') continue;  // disabled ("-x") features need no check
    item.remove_prefix(1);
    (cpu_feature_known(item) ? required : unchecked).emplace_back(item);
  }
  std::sort(required.begin(), required.end());
  std::sort(unchecked.begin(), unchecked.end());
}

Status check_cpu_features(const std::vector<std::string>& required) {
  std::string missing;
  for (const std::string& name : required) {
    if (cpu_has_feature(name)) continue;
    missing += missing.empty() ? "" : ", ";
    missing += cpu_feature_known(name) ? name : name + " (unknown to this runtime)";
  }
  if (missing.empty()) return Status::success();
  return make_error(
      "the plan's code needs CPU features this machine lacks: {}; compile a plan for this CPU "
      "(or for a baseline it has, e.g. --target x86-64-v3)",
      missing);
}

std::string_view host_arch() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "unknown";
#endif
}

}  // namespace bitnet::runtime
