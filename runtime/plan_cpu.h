// The CPU features a plan's code needs, checked on this machine with cpuid/xgetbv (no LLVM),
// by their LLVM names ("avx2", "avx512bw", ...), so that a plan for a CPU this one is not is
// refused before any of its code runs (instead of dying with SIGILL).
#pragma once

#include "ir/support/expected.h"

#include <string>
#include <string_view>
#include <vector>

namespace bitnet::runtime {

// The environment variable that makes this process's CPU detection report features absent:
// BITNET_CPU_DISABLE=avx512f,avx512bw (comma-separated names the runtime checks; an unknown
// name is an error). A feature is then absent as are the features that need it (disabling
// avx2 disables avx512f and every avx512* feature). It applies to the CPU checks of plans and
// of the JIT (check_cpu_features) and to `--target host` code generation
// (codegen_cpu/host_features.h), so a machine with AVX-512 can act as one without.
inline constexpr const char* kCpuDisableEnv = "BITNET_CPU_DISABLE";

// The names BITNET_CPU_DISABLE lists (sorted, without duplicates; empty when it is unset or
// empty), or why its value is invalid.
Expected<std::vector<std::string>> cpu_disabled_features();
// Those names joined by commas ("" when none): its effective value, for the plan cache key.
Expected<std::string> cpu_disable_value();

// Whether the runtime knows how to check `name`, and whether this CPU (and OS: AVX state
// enabled in XCR0) has it, less what BITNET_CPU_DISABLE hides. Unknown names are never
// "present".
bool cpu_feature_known(std::string_view name);
bool cpu_has_feature(std::string_view name);
// Whether BITNET_CPU_DISABLE hides `name` (named itself, or a feature it needs).
bool cpu_feature_disabled(std::string_view name);

// Splits an LLVM feature string ("+avx2,+fma,-avx512f") into the enabled features the runtime
// checks (`required`) and the enabled features it cannot check (`unchecked`), both sorted.
void split_target_features(std::string_view llvm_features, std::vector<std::string>& required,
                           std::vector<std::string>& unchecked);

// The required features this CPU lacks ("avx512f"), or the runtime cannot check
// ("x (unknown to this runtime)"), in the order of `required`.
std::vector<std::string> missing_cpu_features(const std::vector<std::string>& required);

// The CPU check before any compiled code runs, for plans (`what`: "the plan's code") and the
// JIT ("code for --target x86-64-v4") alike: fails naming every required feature this CPU
// lacks or the runtime cannot check, or when BITNET_CPU_DISABLE is invalid.
Status check_cpu_features(const std::vector<std::string>& required, std::string_view what = "the plan's code");

// The architecture part of this runtime's target triple ("x86_64", "aarch64").
std::string_view host_arch();

}  // namespace bitnet::runtime
