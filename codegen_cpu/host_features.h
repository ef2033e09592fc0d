// What the target CPU can do, as the kernel emitters need it (and as a plan records it).
#pragma once

#include <string>

namespace bitnet::codegen {

struct TargetFeatures {
  std::string triple;    // e.g. x86_64-unknown-linux-gnu
  std::string cpu;       // LLVM CPU name used for code generation ("x86-64-v3", or the host's)
  std::string features;  // LLVM feature string, e.g. "+avx2,+fma,..."
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avxvnni = false;
  bool avx512fp16 = false;
  bool neon_dotprod = false;  // AArch64 sdot/udot
  int vector_bits() const { return avx512f && avx512bw ? 512 : avx2 ? 256 : 128; }
};

// "host" (everything this CPU has, less what BITNET_CPU_DISABLE hides: runtime/plan_cpu.h),
// "x86-64-v3" (AVX2/FMA/F16C) or "x86-64-v4" (+AVX-512). Fails (returns false) for an unknown
// target name or an invalid BITNET_CPU_DISABLE.
bool resolve_target(const std::string& name, TargetFeatures& out, std::string* error);

// Every feature code generated for `target` may use, as "+name" items joined by commas: the
// host's enabled features, or those LLVM implies for a named CPU (x86-64-v3: AVX2, FMA, ...).
// Plans record it so that the runtime can check the CPU before loading their code.
std::string enabled_features(const TargetFeatures& target);

}  // namespace bitnet::codegen
