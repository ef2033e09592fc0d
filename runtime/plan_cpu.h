// The CPU features a plan's code needs, checked on this machine with cpuid/xgetbv (no LLVM),
// by their LLVM names ("avx2", "avx512bw", ...), so that a plan for a CPU this one is not is
// refused before any of its code runs (instead of dying with SIGILL).
#pragma once

#include "ir/support/expected.h"

#include <string>
#include <string_view>
#include <vector>

namespace bitnet::runtime {

// Whether the runtime knows how to check `name`, and whether this CPU (and OS: AVX state
// enabled in XCR0) has it. Unknown names are never "present".
bool cpu_feature_known(std::string_view name);
bool cpu_has_feature(std::string_view name);

// Splits an LLVM feature string ("+avx2,+fma,-avx512f") into the enabled features the runtime
// checks (`required`) and the enabled features it cannot check (`unchecked`), both sorted.
void split_target_features(std::string_view llvm_features, std::vector<std::string>& required,
                           std::vector<std::string>& unchecked);

// Fails naming every required feature this CPU lacks or the runtime cannot check.
Status check_cpu_features(const std::vector<std::string>& required);

// The architecture part of this runtime's target triple ("x86_64", "aarch64").
std::string_view host_arch();

}  // namespace bitnet::runtime
