// The CPU backend: compiles the kernel nodes of an optimised graph to machine code for
// the target CPU with LLVM's ORC LLJIT (O3, small code model + PIC so the same objects
// can be cached in a plan). One kernel per distinct KernelDesc; kernels compile in
// parallel. No LLVM type appears in this header.
#pragma once

#include "codegen_cpu/host_features.h"
#include "codegen_cpu/kernel_desc.h"
#include "ir/graph.h"
#include "schema/abi.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bitnet::codegen {

struct JitOptions {
  std::string target = "host";  // host | x86-64-v3 | x86-64-v4
  int opt_level = 3;
  int compile_threads = 2;
  // Called with each compiled object file (ELF bytes) and the kernel symbols it defines,
  // for plans (see TOOLCHAIN.md 2: the objects are position-independent, small code model).
  std::function<void(const std::string& kernel_symbol, std::string_view object)> on_object;
};

struct CompiledKernel {
  std::string symbol;  // e.g. "bitnet_k3"
  std::string key;     // KernelDesc::key()
  abi::KernelFn fn = nullptr;
  abi::WorkSplit split = abi::WorkSplit::kTokens;
};

struct CompiledGraph {
  std::vector<CompiledKernel> kernels;  // distinct kernels
  std::vector<int32_t> kernel_of_node;  // per graph node: index into kernels, or -1 (no kernel)
  double compile_ms = 0;                // wall time of the whole compilation
  std::vector<double> kernel_ms;        // IR generation + optimisation + codegen per kernel (approximate)
};

class Jit {
 public:
  static Expected<std::unique_ptr<Jit>> create(const JitOptions& options = {});
  ~Jit();
  Jit(const Jit&) = delete;
  Jit& operator=(const Jit&) = delete;

  const TargetFeatures& target() const;
  // Compiles every kernel node of `graph`. Fails with a clear message (an op without an
  // emitter, an LLVM error) and compiles nothing then; callers fall back to the interpreter.
  Expected<CompiledGraph> compile(const ir::Graph& graph);
  // Compiles one kernel (tests and microbenchmarks).
  Expected<CompiledKernel> compile_one(const KernelDesc& desc);

 private:
  struct Impl;
  explicit Jit(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The LLVM release the code generator is built with ("19.1.7"); plans and cache keys record it.
std::string llvm_version();

}  // namespace bitnet::codegen
