// Target resolution (see host_features.h).
#include "codegen_cpu/host_features.h"

#include "runtime/plan_cpu.h"

#include <algorithm>
#include <vector>

#include <llvm/ADT/StringMap.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>
#include <llvm/TargetParser/X86TargetParser.h>

namespace bitnet::codegen {
namespace {

std::string fmt_feature(const std::string& name, bool on) {
  return std::string(",") + (on ? "+" : "-") + name;
}

void set_flags(TargetFeatures& t, const llvm::StringMap<bool>& f) {
  auto has = [&](const char* name) {
    auto it = f.find(name);
    return it != f.end() && it->second;
  };
  t.avx2 = has("avx2");
  t.fma = has("fma");
  t.f16c = has("f16c");
  t.avx512f = has("avx512f");
  t.avx512bw = has("avx512bw");
  t.avx512vl = has("avx512vl");
  t.avx512vnni = has("avx512vnni");
  t.avxvnni = has("avxvnni");
  t.avx512fp16 = has("avx512fp16");
  t.neon_dotprod = has("dotprod");
}

}  // namespace

bool resolve_target(const std::string& name, TargetFeatures& out, std::string* error) {
  out = TargetFeatures{};
  out.triple = llvm::sys::getProcessTriple();
  if (name == "host") {
    llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
    // BITNET_CPU_DISABLE (runtime/plan_cpu.h): the features it names are absent, and so are
    // those that need them (turned off explicitly: the CPU name below would imply them).
    auto disabled = runtime::cpu_disabled_features();
    if (!disabled.ok()) {
      if (error) *error = disabled.error().message;
      return false;
    }
    for (const std::string& f : *disabled) {
      features[f] = false;
      llvm::X86::updateImpliedFeatures(f, false, features);
    }
    out.cpu = llvm::sys::getHostCPUName().str();
    // StringMap iterates in hash order; sort so the string is stable (it keys caches).
    std::vector<std::string> items;
    for (const auto& f : features) items.push_back(fmt_feature(f.getKey().str(), f.getValue()));
    std::sort(items.begin(), items.end());
    std::string list;
    for (const auto& item : items) list += item;
    out.features = list.empty() ? list : list.substr(1);
    set_flags(out, features);
    return true;
  }
  llvm::StringMap<bool> features;
  if (name == "x86-64-v3" || name == "x86-64-v4") {
    for (const char* f : {"avx", "avx2", "fma", "f16c", "bmi", "bmi2", "lzcnt", "movbe", "popcnt", "sse4.2"}) {
      features[f] = true;
    }
    if (name == "x86-64-v4") {
      for (const char* f : {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}) features[f] = true;
    }
    out.cpu = name;
    set_flags(out, features);
    return true;
  }
  if (error) *error = "unknown target '" + name + "' (use host, x86-64-v3 or x86-64-v4)";
  return false;
}

std::string enabled_features(const TargetFeatures& target) {
  std::vector<std::string> items;
  if (!target.features.empty()) {
    // The host: its explicit list ("-x" entries turn off what the CPU name would imply).
    std::string_view list = target.features;
    while (!list.empty()) {
      const size_t comma = std::min(list.find(','), list.size());
      if (list.substr(0, comma).starts_with("+")) items.emplace_back(list.substr(0, comma));
      list.remove_prefix(std::min(comma + 1, list.size()));
    }
  } else {
    // The CPU's own features plus what they imply (avx2 implies avx, sse4.2, ...), so that the
    // runtime checks every one of them.
    llvm::SmallVector<llvm::StringRef, 64> direct;
    llvm::X86::getFeaturesForCPU(target.cpu, direct);
    llvm::StringMap<bool> all;
    for (llvm::StringRef f : direct) {
      all[f] = true;
      llvm::X86::updateImpliedFeatures(f, true, all);
    }
    for (const auto& f : all) {
      if (f.getValue()) items.push_back("+" + f.getKey().str());
    }
  }
  std::sort(items.begin(), items.end());
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

}  // namespace bitnet::codegen
