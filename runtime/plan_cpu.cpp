// cpuid-based feature checks (see plan_cpu.h). Bits from the Intel SDM, Vol. 2A, CPUID.
#include "runtime/plan_cpu.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

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

// What each feature needs (LLVM's implied features, X86TargetParser.cpp, for those above):
// a feature whose prerequisite is disabled is disabled too, as LLVM does when it generates code.
struct Prerequisite {
  std::string_view name;
  std::string_view needs;
};
constexpr Prerequisite kPrerequisites[] = {
    {"sse2", "sse"},
    {"sse3", "sse2"},
    {"ssse3", "sse3"},
    {"sse4.1", "ssse3"},
    {"sse4.2", "sse4.1"},
    {"pclmul", "sse2"},
    {"aes", "sse2"},
    {"sha", "sse2"},
    {"gfni", "sse2"},
    {"avx", "sse4.2"},
    {"avx2", "avx"},
    {"fma", "avx"},
    {"f16c", "avx"},
    {"vaes", "aes"},
    {"vaes", "avx2"},
    {"vpclmulqdq", "avx"},
    {"vpclmulqdq", "pclmul"},
    {"avxvnni", "avx2"},
    {"avx512f", "avx2"},
    {"avx512f", "fma"},
    {"avx512f", "f16c"},
    {"avx512dq", "avx512f"},
    {"avx512ifma", "avx512f"},
    {"avx512cd", "avx512f"},
    {"avx512bw", "avx512f"},
    {"avx512vl", "avx512f"},
    {"avx512vbmi", "avx512bw"},
    {"avx512vbmi2", "avx512bw"},
    {"avx512vnni", "avx512f"},
    {"avx512bitalg", "avx512bw"},
    {"avx512vpopcntdq", "avx512f"},
    {"avx512vp2intersect", "avx512f"},
    {"avx512fp16", "avx512bw"},
    {"avx512bf16", "avx512bw"},
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

std::string known_names() {
  std::vector<std::string_view> names;
  for (const FeatureBit& f : kFeatures) names.push_back(f.name);
  std::sort(names.begin(), names.end());
  std::string out;
  for (std::string_view n : names) out += fmt::format("{}{}", out.empty() ? "" : " ", n);
  return out;
}

bool disabled_in(std::string_view name, const std::vector<std::string>& disabled, int depth = 0) {
  if (std::find(disabled.begin(), disabled.end(), name) != disabled.end()) return true;
  if (depth > 16) return false;  // the table has no cycles; this only bounds a mistake in it
  for (const Prerequisite& p : kPrerequisites) {
    if (p.name == name && disabled_in(p.needs, disabled, depth + 1)) return true;
  }
  return false;
}

}  // namespace

Expected<std::vector<std::string>> cpu_disabled_features() {
  std::vector<std::string> out;
  const char* env = std::getenv(kCpuDisableEnv);
  std::string_view list = env ? env : "";
  while (!list.empty()) {
    const size_t comma = std::min(list.find(','), list.size());
    std::string_view item = list.substr(0, comma);
    list.remove_prefix(std::min(comma + 1, list.size()));
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    if (find(item) == nullptr) {
      return make_error("{}: unknown CPU feature '{}' (known: {})", kCpuDisableEnv, item, known_names());
    }
    out.emplace_back(item);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Expected<std::string> cpu_disable_value() {
  BITNET_ASSIGN_OR_RETURN(std::vector<std::string> names, cpu_disabled_features());
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

bool cpu_feature_disabled(std::string_view name) {
  auto disabled = cpu_disabled_features();
  return disabled.ok() && !disabled->empty() && disabled_in(name, *disabled);
}

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
  return f != nullptr && has(*f) && !cpu_feature_disabled(name);
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

std::vector<std::string> missing_cpu_features(const std::vector<std::string>& required) {
  std::vector<std::string> missing;
  for (const std::string& name : required) {
    if (cpu_has_feature(name)) continue;
    missing.push_back(cpu_feature_known(name) ? name : name + " (unknown to this runtime)");
  }
  return missing;
}

Status check_cpu_features(const std::vector<std::string>& required, std::string_view what) {
  BITNET_ASSIGN_OR_RETURN(std::string disabled, cpu_disable_value());
  const std::vector<std::string> missing = missing_cpu_features(required);
  if (missing.empty()) return Status::success();
  std::string list;
  bool hidden = false;  // by BITNET_CPU_DISABLE: say so, or the message contradicts /proc/cpuinfo
  for (const std::string& m : missing) {
    list += (list.empty() ? "" : ", ") + m;
    hidden = hidden || cpu_feature_disabled(m);
  }
  return make_error(
      "{} needs CPU features this machine lacks: {}{}; compile for this CPU (--target host) or for a "
      "baseline it has (e.g. --target x86-64-v3)",
      what, list, !hidden ? "" : fmt::format(" ({}={} hides some)", kCpuDisableEnv, disabled));
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
