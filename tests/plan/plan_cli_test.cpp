// The plan commands end to end: `bitnet compile`, `bitnet dump-plan`, `bitnet run --plan`, and
// `bitnet-rt`, which must link no compiler (its ELF NEEDED entries and its symbols) and give
// the same results.
#include "plan_test_util.h"

#include <nlohmann/json.hpp>

#include <sstream>

namespace bitnet {
namespace {

using testing::run_command;
using testing::shell_quote;
using testing::TempDir;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string rt() {
  return shell_quote((testing::binary_dir() / "bin" / "bitnet-rt").string());
}
std::string cli(const TempDir& dir) {
  return "BITNET_CACHE_DIR=" + shell_quote((dir / "cache").string()) + " " +
         shell_quote(testing::bitnet_cli().string());
}
std::string stories() {
  return shell_quote(testing::stories_model().string());
}

TEST(PlanCli, BitnetRtLinksNoCompiler) {
  auto r = run_command("readelf -d " + rt());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(contains(r.out, "(NEEDED)")) << r.out;
  for (const char* forbidden : {"LLVM", "lld", "nvrtc", "clang", "libcuda", "libz3"}) {
    EXPECT_FALSE(contains(r.out, forbidden)) << "bitnet-rt needs " << forbidden << ":\n" << r.out;
  }
  // The compiler binary does link LLVM: the check above looks at the right thing.
  auto compiler = run_command("readelf -d " + shell_quote(testing::bitnet_cli().string()));
  EXPECT_TRUE(contains(compiler.out, "LLVM")) << compiler.out;
}

// The lean runtime contains no code of the compiler side: no symbol defined in bitnet-rt belongs
// to the passes, the code generators, the compiler driver, the reference interpreter or its
// kernels, LLVM or lld (static libraries would not show in NEEDED).
TEST(PlanCli, BitnetRtContainsNoCompilerSymbols) {
  // A symbol belongs to a namespace when its name, or a type or template argument in it, starts there.
  auto forbidden = [](const std::string& name) {
    for (const char* ns : {"bitnet::passes::", "bitnet::codegen::", "bitnet::codegen_cuda::", "bitnet::compiler::",
                           "bitnet::reference::", "bitnet::ref::", "llvm::", "lld::"}) {
      for (size_t at = name.find(ns); at != std::string::npos; at = name.find(ns, at + 1)) {
        if (at == 0 || std::string_view(" (<,").find(name[at - 1]) != std::string_view::npos) return true;
      }
    }
    return false;
  };
  auto symbols_of = [](const std::string& binary) {
    auto r = run_command("nm -C --defined-only " + binary);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  const std::string rt_symbols = symbols_of(rt());
  ASSERT_TRUE(contains(rt_symbols, "bitnet::runtime::Executor::run")) << "nm sees no symbols of bitnet-rt";
  std::istringstream lines(rt_symbols);
  std::string line, found;
  int count = 0;
  while (std::getline(lines, line)) {
    const size_t name = line.find(' ', line.find(' ') + 1);  // "ADDRESS TYPE NAME"
    if (name != std::string::npos && forbidden(line.substr(name + 1))) {
      if (++count <= 10) found += line + "\n";
    }
  }
  EXPECT_EQ(count, 0) << "bitnet-rt defines compiler-side symbols:\n" << found;
  // The check sees them where they are: the full CLI has all of these.
  const std::string cli_symbols = symbols_of(shell_quote(testing::bitnet_cli().string()));
  for (const char* there :
       {"bitnet::passes::", "bitnet::codegen::", "bitnet::compiler::", "bitnet::reference::", "bitnet::ref::"}) {
    EXPECT_TRUE(contains(cli_symbols, there)) << there;
  }
}

TEST(PlanCli, CompileDumpAndRunWithBothBinaries) {
  TempDir dir;
  const std::string plan = shell_quote((dir / "s.bnplan").string());
  auto compiled = run_command(cli(dir) + " compile -m " + stories() + " -o " + plan +
                              " --time-passes --print-after fuse-gated-ffn");
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  EXPECT_TRUE(contains(compiled.out, "compiled") && contains(compiled.out, "cache key")) << compiled.out;
  EXPECT_TRUE(contains(compiled.err, "pass fuse-residual") && contains(compiled.err, "IR after fuse-gated-ffn"))
      << compiled.err;

  for (const std::string& dumper : {cli(dir), rt()}) {
    auto dump = run_command(dumper + " dump-plan " + plan);
    ASSERT_EQ(dump.exit_code, 0) << dump.err;
    for (const char* part : {"provenance:", "target: host", "requires:", "model:", "code: ELF shared object",
                             "bitnet_k0", "graph 'llama' (all logits)", "schedule of", "rope_attention"}) {
      EXPECT_TRUE(contains(dump.out, part)) << part << " missing from:\n" << dump.out;
    }
  }

  const std::string args = " -p 'Once upon a time' -n 16 --greedy -t 2";
  auto jit = run_command(cli(dir) + " run -m " + stories() + args + " --no-cache");
  ASSERT_EQ(jit.exit_code, 0) << jit.err;
  auto with_plan = run_command(cli(dir) + " run --plan " + plan + args);
  ASSERT_EQ(with_plan.exit_code, 0) << with_plan.err;
  auto lean = run_command(rt() + " run --plan " + plan + " -m " + stories() + args);
  ASSERT_EQ(lean.exit_code, 0) << lean.err;
  EXPECT_EQ(with_plan.out, jit.out);
  EXPECT_EQ(lean.out, jit.out);
  EXPECT_TRUE(contains(lean.err, "backend plan")) << lean.err;

  // eval: the same NLL from the plan (the line's timing part differs).
  const std::string ids = " --teacher-force-ids 1,403,407,93,263,3,55,76,11,29";
  auto eval_jit = run_command(cli(dir) + " eval -m " + stories() + ids + " --no-cache");
  auto eval_rt = run_command(rt() + " eval --plan " + plan + ids);
  ASSERT_EQ(eval_rt.exit_code, 0) << eval_rt.err;
  const auto cut = [](const std::string& s) { return s.substr(0, s.find(" | perplexity")); };
  EXPECT_EQ(cut(eval_rt.out), cut(eval_jit.out));
  EXPECT_TRUE(contains(eval_rt.out, "mean NLL")) << eval_rt.out;

  auto bench = run_command(rt() + " bench --plan " + plan + " -p 8 -n 4 -r 2 -t 1 --no-membw --json");
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  const auto rows = nlohmann::json::parse(bench.out, nullptr, false);
  ASSERT_TRUE(rows.is_array() && rows.size() == 2) << bench.out;
  EXPECT_EQ(rows[0]["test"], "pp8");
  EXPECT_EQ(rows[1]["test"], "tg4");
  for (const auto& row : rows) {
    EXPECT_EQ(row["backend"], "plan");
    EXPECT_EQ(row["threads"], 1);
    EXPECT_GT(row["tokens_per_s"].get<double>(), 0);
    EXPECT_GE(row["stddev"].get<double>(), 0);
    ASSERT_EQ(row["samples_tokens_per_s"].size(), 2u) << row.dump();  // one per repetition
  }
}

TEST(PlanCli, RefusalsAreErrorsWithClearMessages) {
  TempDir dir;
  const auto plan = dir / "s.bnplan";
  ASSERT_NO_FATAL_FAILURE(testing::compile_to(testing::stories_model(), plan));
  std::vector<uint8_t> bytes = testing::read_file(plan);
  bytes[bytes.size() / 3] ^= 0x04;
  testing::write_file(dir / "corrupt.bnplan", bytes);
  const std::string corrupt = shell_quote((dir / "corrupt.bnplan").string());
  for (const std::string& binary : {cli(dir), rt()}) {
    auto r = run_command(binary + " run --plan " + corrupt + " -p hello -n 4");
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_TRUE(contains(r.err, "checksum mismatch") && contains(r.err, "corrupt.bnplan")) << r.err;
    EXPECT_TRUE(r.out.empty()) << "nothing ran: " << r.out;
  }
  auto dump = run_command(rt() + " dump-plan " + corrupt);
  EXPECT_EQ(dump.exit_code, 1);
  EXPECT_TRUE(contains(dump.err, "checksum")) << dump.err;

  // Another model than the plan's.
  auto model = testing::make_synthetic_model();
  ASSERT_TRUE(model.writer.write_file_atomic((dir / "other.gguf").string()).ok());
  auto swapped = run_command(rt() + " run --plan " + shell_quote(plan.string()) + " -m " +
                             shell_quote((dir / "other.gguf").string()) + " -p hello -n 4");
  EXPECT_EQ(swapped.exit_code, 1);
  EXPECT_TRUE(contains(swapped.err, "model mismatch")) << swapped.err;

  // bitnet-rt has no compiler and no interpreter: -m alone is an error that says what to do.
  auto no_plan = run_command(rt() + " run -m " + stories() + " -p hello -n 4");
  EXPECT_EQ(no_plan.exit_code, 1);
  EXPECT_TRUE(contains(no_plan.err, "--plan")) << no_plan.err;
  auto interp = run_command(rt() + " run -m " + stories() + " -p hello -n 4 --backend interp");
  EXPECT_EQ(interp.exit_code, 1);
  EXPECT_TRUE(contains(interp.err, "--plan")) << interp.err;
  // Nor passes to print.
  auto print = run_command(rt() + " run --plan " + shell_quote((dir / "none.bnplan").string()) +
                           " -p hello -n 4 --print-after dce");
  EXPECT_EQ(print.exit_code, 2);
  EXPECT_TRUE(contains(print.err, "runs no passes")) << print.err;

  EXPECT_EQ(run_command(cli(dir) + " compile -m " + stories() + " -o x.bnplan --target sparc").exit_code, 2);
  EXPECT_EQ(
      run_command(cli(dir) + " compile -m /no/such.gguf -o " + shell_quote((dir / "x.bnplan").string())).exit_code, 1);
}

// `bitnet compile --target cuda-sm_80` (where NVRTC is installed; elsewhere it says NVRTC is
// missing): dump-plan shows the CUDA code; bitnet and bitnet-rt both load the plan and run it on
// a GPU, or say that there is none.
TEST(PlanCli, CudaPlansCompileDumpAndLoadInBothBinaries) {
  BITNET_REQUIRE_SHARED(shared);
  TempDir dir;
  const std::string model = shell_quote((shared / "models/bitnet-i2s/bitnet-tiny-mha.i2_s.gguf").string());
  const std::string plan = shell_quote((dir / "tiny-cuda.bnplan").string());
  auto llama = run_command(cli(dir) + " compile -m " + stories() + " -o " + plan + " --target cuda-sm_80");
  EXPECT_EQ(llama.exit_code, 1) << llama.err;
  EXPECT_TRUE(contains(llama.err, "the CUDA backend runs BitNet models")) << llama.err;
  auto bad_ctx = run_command(cli(dir) + " compile -m " + model + " -o " + plan + " -c 128");
  EXPECT_EQ(bad_ctx.exit_code, 1) << bad_ctx.err;
  EXPECT_TRUE(contains(bad_ctx.err, "-c applies to cuda targets")) << bad_ctx.err;
  auto cpu_gemm = run_command(cli(dir) + " compile -m " + model + " -o " + plan + " --cuda-gemm mma");
  EXPECT_EQ(cpu_gemm.exit_code, 1) << cpu_gemm.err;
  EXPECT_TRUE(contains(cpu_gemm.err, "--cuda-gemm applies to cuda targets")) << cpu_gemm.err;
  auto bad_gemm =
      run_command(cli(dir) + " compile -m " + model + " -o " + plan + " --target cuda-sm_80 --cuda-gemm wmma");
  EXPECT_EQ(bad_gemm.exit_code, 2) << bad_gemm.err;

  auto compiled = run_command(cli(dir) + " compile -m " + model + " -o " + plan + " --target cuda-sm_80 -c 100");
  if (compiled.exit_code != 0) {
    EXPECT_EQ(compiled.exit_code, 1);
    EXPECT_TRUE(contains(compiled.err, "NVRTC not available")) << compiled.err;
    std::cout << "[cuda] no NVRTC here, no CUDA plan to load: " << compiled.err;
    return;
  }
  EXPECT_TRUE(contains(compiled.out, "for sm_80")) << compiled.out;
  EXPECT_TRUE(contains(compiled.out, "128 cells per sequence")) << compiled.out;
  auto dump = run_command(cli(dir) + " dump-plan " + plan);
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_TRUE(contains(dump.out, "code: CUDA sm_80")) << dump.out;
  EXPECT_TRUE(contains(dump.out, "target: cuda-sm_80 (nvptx64-nvidia-cuda")) << dump.out;
  // The batched steps' GEMMs on tensor cores: recorded in the plan, its kernels in the dump.
  const std::string mma_plan = shell_quote((dir / "tiny-cuda-mma.bnplan").string());
  auto mma = run_command(cli(dir) + " compile -m " + model + " -o " + mma_plan +
                         " --target cuda-sm_80 -c 100 --cuda-gemm mma -v");
  ASSERT_EQ(mma.exit_code, 0) << mma.err;
  EXPECT_TRUE(contains(mma.out, "bn_matmul_i2s_mma_k256_m256_t16_r16_w4_add")) << mma.out;
  EXPECT_FALSE(contains(compiled.out, "bn_matmul_i2s_mma")) << compiled.out;
  auto mma_dump = run_command(cli(dir) + " dump-plan " + mma_plan);
  ASSERT_EQ(mma_dump.exit_code, 0) << mma_dump.err;
  EXPECT_TRUE(contains(mma_dump.out, "gemm=mma")) << mma_dump.out;
  for (const std::string& binary : {cli(dir), rt()}) {
    auto run = run_command(binary + " run --plan " + plan + " -p 'The cat' -n 4 --greedy");
    if (run.exit_code == 0) {
      EXPECT_TRUE(contains(run.err, "backend cuda")) << run.err;
    } else {
      EXPECT_EQ(run.exit_code, 1) << run.err;
      EXPECT_TRUE(contains(run.err, "CUDA") || contains(run.err, "libcuda")) << run.err;
      EXPECT_FALSE(contains(run.err, "this machine is x86_64")) << run.err;  // not the CPU loader's refusal
    }
  }
}

}  // namespace
}  // namespace bitnet
