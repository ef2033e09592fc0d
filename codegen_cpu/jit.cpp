// ORC LLJIT setup and graph compilation (see jit.h). As in LLVM's "Building a JIT": one
// LLJIT, an IR transform layer that runs the O3 pipeline for the real target, and a
// compile function that records how long each kernel's code generation took.
#include "codegen_cpu/jit.h"

#include "codegen_cpu/kernel_builder.h"
#include "runtime/plan_cpu.h"

#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ObjectTransformLayer.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Target/TargetMachine.h>

#include <chrono>
#include <map>
#include <mutex>

namespace bitnet::codegen {
namespace {

using Clock = std::chrono::steady_clock;

std::string error_text(llvm::Error e) {
  return llvm::toString(std::move(e));
}

llvm::OptimizationLevel opt_level(int level) {
  switch (level) {
    case 0:
      return llvm::OptimizationLevel::O0;
    case 1:
      return llvm::OptimizationLevel::O1;
    case 2:
      return llvm::OptimizationLevel::O2;
    default:
      return llvm::OptimizationLevel::O3;
  }
}

// Times spent per kernel module (optimisation + code generation), by module name.
struct CompileTimes {
  std::mutex mutex;
  std::map<std::string, double> ms;
  void add(const std::string& module, double value) {
    std::lock_guard<std::mutex> lock(mutex);
    ms[module] += value;
  }
};

// Wraps ORC's concurrent compiler to time each module's code generation.
class TimedCompiler : public llvm::orc::IRCompileLayer::IRCompiler {
 public:
  TimedCompiler(llvm::orc::JITTargetMachineBuilder jtmb, CompileTimes& times)
      : IRCompiler(llvm::orc::irManglingOptionsFromTargetOptions(jtmb.getOptions())),
        inner_(std::move(jtmb)),
        times_(times) {}
  llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> operator()(llvm::Module& m) override {
    const auto start = Clock::now();
    auto object = inner_(m);
    times_.add(m.getModuleIdentifier(), std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    return object;
  }

 private:
  llvm::orc::ConcurrentIRCompiler inner_;
  CompileTimes& times_;
};

}  // namespace

struct Jit::Impl {
  JitOptions options;
  TargetFeatures target;
  std::unique_ptr<llvm::orc::LLJIT> jit;
  CompileTimes times;
  int next_symbol = 0;
  std::map<std::string, CompiledKernel> by_key;  // kernels compiled so far (shared across graphs)
};

Jit::Jit(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Jit::~Jit() = default;
const TargetFeatures& Jit::target() const {
  return impl_->target;
}

Expected<std::unique_ptr<Jit>> Jit::create(const JitOptions& options) {
  static const bool initialised = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
    return true;
  }();
  (void)initialised;
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::string error;
  if (!resolve_target(options.target, impl->target, &error)) return make_error("{}", error);

  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) return make_error("LLVM cannot target this host: {}", error_text(jtmb.takeError()));
  if (options.target != "host") {
    jtmb->setCPU(impl->target.cpu);
    jtmb->getFeatures() = llvm::SubtargetFeatures();
  } else if (auto disabled = runtime::cpu_disabled_features(); disabled.ok() && !disabled->empty()) {
    // BITNET_CPU_DISABLE: the host's features less those resolve_target turned off (explicit
    // "-x" items: the host CPU's name alone would imply them).
    jtmb->getFeatures() = llvm::SubtargetFeatures(impl->target.features);
  }
  jtmb->setCodeGenOptLevel(options.opt_level >= 3 ? llvm::CodeGenOptLevel::Aggressive : llvm::CodeGenOptLevel::Default);
  // Small code model + PIC: the objects can be saved in a plan and loaded elsewhere (TOOLCHAIN.md 2).
  jtmb->setRelocationModel(llvm::Reloc::PIC_);
  jtmb->setCodeModel(llvm::CodeModel::Small);

  Impl* raw = impl.get();
  auto jit =
      llvm::orc::LLJITBuilder()
          .setJITTargetMachineBuilder(*jtmb)
          .setNumCompileThreads(static_cast<unsigned>(std::max(options.compile_threads, 1)))
          .setCompileFunctionCreator([raw](llvm::orc::JITTargetMachineBuilder builder)
                                         -> llvm::Expected<std::unique_ptr<llvm::orc::IRCompileLayer::IRCompiler>> {
            return std::make_unique<TimedCompiler>(std::move(builder), raw->times);
          })
          .create();
  if (!jit) return make_error("cannot create the LLVM JIT: {}", error_text(jit.takeError()));
  impl->jit = std::move(*jit);

  const int level = options.opt_level;
  llvm::orc::JITTargetMachineBuilder tm_builder = *jtmb;
  impl->jit->getIRTransformLayer().setTransform(
      [raw, level, tm_builder](
          llvm::orc::ThreadSafeModule tsm,
          const llvm::orc::MaterializationResponsibility&) -> llvm::Expected<llvm::orc::ThreadSafeModule> {
        llvm::orc::JITTargetMachineBuilder builder = tm_builder;  // createTargetMachine is not const
        auto tm = builder.createTargetMachine();
        if (!tm) return tm.takeError();
        tsm.withModuleDo([&](llvm::Module& m) {
          const auto start = Clock::now();
          llvm::LoopAnalysisManager lam;
          llvm::FunctionAnalysisManager fam;
          llvm::CGSCCAnalysisManager cgam;
          llvm::ModuleAnalysisManager mam;
          llvm::PassBuilder pb(tm->get());
          pb.registerModuleAnalyses(mam);
          pb.registerCGSCCAnalyses(cgam);
          pb.registerFunctionAnalyses(fam);
          pb.registerLoopAnalyses(lam);
          pb.crossRegisterProxies(lam, fam, cgam, mam);
          pb.buildPerModuleDefaultPipeline(opt_level(level)).run(m, mam);
          raw->times.add(m.getModuleIdentifier(),
                         std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        });
        return tsm;
      });
  if (options.on_object) {
    auto on_object = options.on_object;
    impl->jit->getObjTransformLayer().setTransform(
        [on_object](std::unique_ptr<llvm::MemoryBuffer> object) -> llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> {
          std::string name = object->getBufferIdentifier().str();
          if (auto dash = name.find("-jitted-objectbuffer"); dash != std::string::npos) name.resize(dash);
          on_object(name, std::string_view(object->getBufferStart(), object->getBufferSize()));
          return object;
        });
  }
  return std::unique_ptr<Jit>(new Jit(std::move(impl)));
}

Expected<CompiledGraph> Jit::compile(const ir::Graph& graph) {
  Impl& m = *impl_;
  const auto start = Clock::now();
  CompiledGraph out;
  out.kernel_of_node.assign(graph.nodes().size(), -1);
  std::map<std::string, int32_t> index_of_key;
  struct Pending {
    std::string symbol;
    std::string key;
    abi::WorkSplit split;
  };
  std::vector<Pending> pending;
  std::vector<std::pair<size_t, std::string>> node_keys;
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const ir::Node& node = graph.nodes()[i];
    if (!needs_kernel(node.op)) continue;
    const KernelDesc desc = KernelDesc::from_node(graph, node);
    const std::string key = desc.key();
    node_keys.emplace_back(i, key);
    if (index_of_key.count(key)) continue;
    index_of_key[key] = -1;
    if (m.by_key.count(key)) continue;  // compiled for an earlier graph
    const Emitter* emitter = find_emitter(node.op);
    if (emitter == nullptr) return make_error("the CPU backend has no kernel for '{}' ({})", ir::op_name(node.op), key);
    const std::string symbol = fmt::format("bitnet_k{}", m.next_symbol++);
    auto context = std::make_unique<llvm::LLVMContext>();
    auto module = std::make_unique<llvm::Module>(symbol, *context);
    KernelBuilder kb(*module, desc, m.target, symbol);
    std::string error;
    if (!(*emitter)(kb, &error) || !kb.finish(&error)) return make_error("kernel {}: {}", key, error);
    if (auto e = m.jit->addIRModule(llvm::orc::ThreadSafeModule(std::move(module), std::move(context)))) {
      return make_error("cannot add kernel {}: {}", key, error_text(std::move(e)));
    }
    pending.push_back({symbol, key, *ir::kernel_split(node.op)});
  }
  // One lookup for all new kernels: ORC materialises them concurrently on its compile threads.
  if (!pending.empty()) {
    llvm::orc::SymbolLookupSet symbols;
    for (const Pending& p : pending) symbols.add(m.jit->mangleAndIntern(p.symbol));
    auto found = m.jit->getExecutionSession().lookup(
        {{&m.jit->getMainJITDylib(), llvm::orc::JITDylibLookupFlags::MatchAllSymbols}}, std::move(symbols));
    if (!found) return make_error("LLVM failed to compile the kernels: {}", error_text(found.takeError()));
    for (const Pending& p : pending) {
      auto it = found->find(m.jit->mangleAndIntern(p.symbol));
      if (it == found->end()) return make_error("kernel {} was not produced", p.key);
      m.by_key[p.key] = CompiledKernel{p.symbol, p.key, it->second.getAddress().toPtr<abi::KernelFn>(), p.split};
    }
  }
  for (auto& [key, index] : index_of_key) {
    index = static_cast<int32_t>(out.kernels.size());
    out.kernels.push_back(m.by_key.at(key));
    std::lock_guard<std::mutex> lock(m.times.mutex);
    out.kernel_ms.push_back(m.times.ms[out.kernels.back().symbol]);
  }
  for (const auto& [node, key] : node_keys) out.kernel_of_node[node] = index_of_key.at(key);
  out.compile_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return out;
}

Expected<CompiledKernel> Jit::compile_one(const KernelDesc& desc) {
  // A one-node graph would need an IR graph; compile the description directly instead.
  Impl& m = *impl_;
  const std::string key = desc.key();
  if (auto it = m.by_key.find(key); it != m.by_key.end()) return it->second;
  const Emitter* emitter = find_emitter(desc.op);
  if (emitter == nullptr) return make_error("the CPU backend has no kernel for '{}'", ir::op_name(desc.op));
  const std::string symbol = fmt::format("bitnet_k{}", m.next_symbol++);
  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>(symbol, *context);
  KernelBuilder kb(*module, desc, m.target, symbol);
  std::string error;
  if (!(*emitter)(kb, &error) || !kb.finish(&error)) return make_error("kernel {}: {}", key, error);
  if (auto e = m.jit->addIRModule(llvm::orc::ThreadSafeModule(std::move(module), std::move(context)))) {
    return make_error("cannot add kernel {}: {}", key, error_text(std::move(e)));
  }
  auto address = m.jit->lookup(symbol);
  if (!address) return make_error("LLVM failed to compile kernel {}: {}", key, error_text(address.takeError()));
  CompiledKernel k{symbol, key, address->toPtr<abi::KernelFn>(), *ir::kernel_split(desc.op)};
  m.by_key[key] = k;
  return k;
}

std::string llvm_version() {
  return LLVM_VERSION_STRING;
}

}  // namespace bitnet::codegen
