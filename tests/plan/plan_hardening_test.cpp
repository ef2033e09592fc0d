// Hardening of the JIT path and the plan cache (issue 9): the CPU check before any compiled
// code runs (BITNET_CPU_DISABLE stands in for a CPU without AVX-512), one compile of several
// processes missing the same key, a model rewritten in place with its mtime put back,
// `compile -o` leaving the cache alone, `cache ACTION --dir DIR`, and a bad --tokenizer
// reported as what it is. Each test has its own cache directory.
#include "plan_test_util.h"
#include "runtime/plan_cache.h"
#include "runtime/plan_cpu.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace bitnet {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::shell_quote;
using testing::TempDir;

// Every AVX-512 feature x86-64-v4 needs: with these hidden, no machine can run its code.
constexpr const char* kNoAvx512 = "BITNET_CPU_DISABLE=avx512f,avx512bw,avx512cd,avx512dq,avx512vl ";

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

std::string cli(const fs::path& cache) {
  return "BITNET_CACHE_DIR=" + shell_quote(cache.string()) + " " + shell_quote(testing::bitnet_cli().string());
}

std::string model_arg(const fs::path& model = testing::stories_model()) {
  return " -m " + shell_quote(model.string());
}

// Regular files under `dir`, recursively (none when it does not exist).
std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file()) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> plans_in(const fs::path& cache) {
  std::vector<fs::path> out;
  for (const fs::path& p : files_under(cache / "plans")) {
    if (p.extension() == ".bnplan") out.push_back(p);
  }
  return out;
}

TEST(PlanHardening, TheJitRefusesATargetThisCpuLacksBeforeCompiling) {
  TempDir dir;
  const fs::path cache = dir / "cache";
  const std::string v4 = " --target x86-64-v4";
  for (const std::string& command :
       {"run" + model_arg() + v4 + " -p hi -n 2", "run" + model_arg() + v4 + " -p hi -n 2 --no-cache",
        "eval" + model_arg() + v4 + " --teacher-force-ids 1,403,407,93",
        "bench" + model_arg() + v4 + " -p 8 -n 4 -r 1 -t 1 --no-membw"}) {
    auto r = run_command(kNoAvx512 + cli(cache) + " " + command);
    EXPECT_EQ(r.exit_code, 1) << command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "needs CPU features this machine lacks") && contains(r.err, "avx512f") &&
                contains(r.err, "avx512bw") && contains(r.err, "x86-64-v4"))
        << command << "\n"
        << r.err;
    EXPECT_FALSE(contains(r.err, "Illegal instruction")) << r.err;
    EXPECT_TRUE(plans_in(cache).empty()) << command << ": nothing unusable is cached";
  }
  // The same message as a plan for that target gets (--plan): one check for both.
  const fs::path plan = dir / "v4.bnplan";
  auto compiled = run_command(cli(cache) + " compile" + model_arg() + v4 + " -o " + shell_quote(plan.string()));
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  auto with_plan = run_command(kNoAvx512 + cli(cache) + " run --plan " + shell_quote(plan.string()) + " -p hi -n 2");
  EXPECT_EQ(with_plan.exit_code, 1) << with_plan.err;
  EXPECT_TRUE(contains(with_plan.err, "needs CPU features this machine lacks: avx512bw, avx512cd, avx512dq, avx512f"))
      << with_plan.err;

  // An unknown name is an error, not a silently ignored one.
  auto unknown = run_command("BITNET_CPU_DISABLE=avx512f,avx9000 " + cli(cache) + " run" + model_arg() + " -p hi -n 2");
  EXPECT_EQ(unknown.exit_code, 1) << unknown.err;
  EXPECT_TRUE(contains(unknown.err, "BITNET_CPU_DISABLE") && contains(unknown.err, "avx9000")) << unknown.err;
  EXPECT_TRUE(plans_in(cache).empty());
}

TEST(PlanHardening, HostCodeUnderBitnetCpuDisableUsesNoHiddenFeature) {
  TempDir dir;
  const fs::path cache = dir / "cache";
  auto r = run_command(kNoAvx512 + cli(cache) + " run" + model_arg() + " -p 'Once upon' -n 4 --greedy -v");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "plan cache: miss")) << r.err;
  const auto plans = plans_in(cache);
  ASSERT_EQ(plans.size(), 1u);
  auto plan = testing::unpack_file(plans[0]);
  ASSERT_TRUE(plan && plan->target && plan->provenance);
  EXPECT_EQ(plan->target->name, "host");
  for (const std::string& f : plan->target->required) EXPECT_FALSE(f.starts_with("avx512")) << f;
  EXPECT_FALSE(contains(plan->target->llvm_features, "+avx512")) << plan->target->llvm_features;
  // The variable's value is part of the key: without it, host code is another entry.
  EXPECT_TRUE(contains(plan->provenance->key_material,
                       "codegen_env=BITNET_CPU_DISABLE=avx512bw,avx512cd,avx512dq,avx512f,avx512vl\n"))
      << plan->provenance->key_material;
  auto hit = run_command(kNoAvx512 + cli(cache) + " run" + model_arg() + " -p 'Once upon' -n 4 --greedy -v");
  ASSERT_EQ(hit.exit_code, 0) << hit.err;
  EXPECT_TRUE(contains(hit.err, "plan cache: hit")) << hit.err;
  EXPECT_EQ(hit.out, r.out);
  auto plain = run_command(cli(cache) + " run" + model_arg() + " -p 'Once upon' -n 4 --greedy -v");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_TRUE(contains(plain.err, "plan cache: miss")) << plain.err;
  EXPECT_EQ(plans_in(cache).size(), 2u);
}

TEST(PlanHardening, CpuDisableHidesFeaturesAndWhatNeedsThem) {
  const char* saved = std::getenv(runtime::kCpuDisableEnv);
  const std::optional<std::string> old = saved ? std::optional<std::string>(saved) : std::nullopt;
  ::setenv(runtime::kCpuDisableEnv, "avx2, avx2,sse4.2", 1);
  auto names = runtime::cpu_disabled_features();
  ASSERT_TRUE(names.ok()) << names.error().message;
  EXPECT_EQ(*names, (std::vector<std::string>{"avx2", "sse4.2"}));
  for (const char* hidden : {"avx2", "avx512f", "avx512bw", "avx512vnni", "avxvnni", "vaes", "sse4.2", "avx", "fma"}) {
    EXPECT_FALSE(runtime::cpu_has_feature(hidden)) << hidden;
    EXPECT_TRUE(runtime::cpu_feature_disabled(hidden)) << hidden;
  }
  EXPECT_TRUE(runtime::cpu_has_feature("sse2"));
  EXPECT_FALSE(runtime::cpu_feature_disabled("sse4.1"));
  const Status s = runtime::check_cpu_features({"sse2", "avx2"});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.error().message, "lacks: avx2") && contains(s.error().message, "BITNET_CPU_DISABLE"))
      << s.error().message;
  ::setenv(runtime::kCpuDisableEnv, "avx2,nonsense", 1);
  EXPECT_FALSE(runtime::cpu_disabled_features().ok());
  EXPECT_FALSE(runtime::check_cpu_features({"sse2"}).ok()) << "an invalid value is an error, also for a plan";
  if (old)
    ::setenv(runtime::kCpuDisableEnv, old->c_str(), 1);
  else
    ::unsetenv(runtime::kCpuDisableEnv);
}

TEST(PlanHardening, CacheListMarksAndPruneRemovesPlansThisCpuCannotRun) {
  TempDir dir;
  const fs::path cache = dir / "cache";
  ASSERT_EQ(run_command(cli(cache) + " run" + model_arg() + " -p hi -n 2 --target x86-64-v3").exit_code, 0);
  // An x86-64-v4 entry compiled without the variable (with `compile`, so that this works on a
  // CPU without AVX-512 too), under the name `run` would give it.
  const fs::path v4 = dir / "v4.bnplan";
  auto compiled =
      run_command(cli(dir / "other") + " compile" + model_arg() + " --target x86-64-v4 -o " + shell_quote(v4.string()));
  ASSERT_EQ(compiled.exit_code, 0) << compiled.err;
  const std::string key = compiled.out.substr(compiled.out.find("cache key ") + 10, 32);
  fs::copy_file(v4, cache / "plans" / (key + ".bnplan"));
  ASSERT_EQ(plans_in(cache).size(), 2u);

  auto list = run_command(kNoAvx512 + cli(cache) + " cache list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(count(list.out, "UNUSABLE on this CPU: needs avx512bw, avx512cd, avx512dq, avx512f, avx512vl"), 1u)
      << list.out;
  EXPECT_TRUE(contains(list.out, "for x86-64-v4  UNUSABLE")) << list.out;
  if (runtime::cpu_has_feature("avx512f") && runtime::cpu_has_feature("avx512bw") &&
      runtime::cpu_has_feature("avx512vl") && runtime::cpu_has_feature("avx512dq") &&
      runtime::cpu_has_feature("avx512cd")) {
    auto plain = run_command(cli(cache) + " cache list");
    EXPECT_FALSE(contains(plain.out, "UNUSABLE")) << "this CPU has AVX-512:\n" << plain.out;
  }
  auto prune = run_command(kNoAvx512 + cli(cache) + " cache prune");
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  const auto left = plans_in(cache);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_NE(left[0].filename().string(), key + ".bnplan");
  auto after = run_command(kNoAvx512 + cli(cache) + " cache list");
  EXPECT_TRUE(contains(after.out, "1 plans") && !contains(after.out, "UNUSABLE")) << after.out;
}

TEST(PlanHardening, ProcessesMissingTheSameKeyCompileOnce) {
  TempDir dir;
  const fs::path cache = dir / "cache";
  constexpr int kProcesses = 4;
  std::string script;
  for (int i = 0; i < kProcesses; ++i) {
    script += "(" + cli(cache) + " run" + model_arg() + " -p 'Once upon a time' -n 8 --greedy -t 1 -v >" +
              shell_quote((dir / ("out" + std::to_string(i))).string()) + " 2>" +
              shell_quote((dir / ("err" + std::to_string(i))).string()) + ") & p" + std::to_string(i) + "=$!; ";
  }
  for (int i = 0; i < kProcesses; ++i) script += "wait $p" + std::to_string(i) + "; echo $?; ";
  auto all = run_command("(" + script + ")");  // run_command redirects the last command only
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(all.out, "0\n0\n0\n0\n");
  int misses = 0, hits = 0;
  std::string texts, errs;
  for (int i = 0; i < kProcesses; ++i) {
    const auto err = testing::read_file(dir / ("err" + std::to_string(i)));
    const auto out = testing::read_file(dir / ("out" + std::to_string(i)));
    const std::string e(err.begin(), err.end());
    misses += contains(e, "plan cache: miss");
    hits += contains(e, "plan cache: hit");
    errs += e;
    if (i == 0) {
      texts.assign(out.begin(), out.end());
    } else {
      EXPECT_EQ(std::string(out.begin(), out.end()), texts) << "the same text from every process";
    }
  }
  EXPECT_EQ(misses, 1) << errs;
  EXPECT_EQ(hits, kProcesses - 1) << errs;
  EXPECT_EQ(plans_in(cache).size(), 1u);
  EXPECT_TRUE(files_under(cache / "locks").empty()) << "the compiling process removes its lock file";
}

TEST(PlanHardening, AWaiterGivesUpAfterTheTimeoutAndPruneRemovesStaleLocks) {
  TempDir dir;
  const fs::path cache = dir / "cache";
  const std::string run = cli(cache) + " run" + model_arg() + " -p hi -n 2 -v";
  ASSERT_EQ(run_command(run).exit_code, 0);
  const auto plans = plans_in(cache);
  ASSERT_EQ(plans.size(), 1u);
  const std::string key = plans[0].stem().string();
  fs::remove(plans[0]);
  // Another "compiler" holds the key's lock (and never removes its file, as one that died).
  const fs::path lock = cache / "locks" / (key + ".lock");
  const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  const auto start = std::chrono::steady_clock::now();
  auto waited = run_command("BITNET_CACHE_LOCK_TIMEOUT=1 " + run);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_TRUE(contains(waited.err, "waiting for another process") && contains(waited.err, lock.string())) << waited.err;
  EXPECT_TRUE(contains(waited.err, "gave up waiting") && contains(waited.err, "plan cache: miss")) << waited.err;
  EXPECT_GE(s, 1.0);
  EXPECT_EQ(plans_in(cache).size(), 1u) << "compiled and stored anyway";
  // A held lock survives prune; once its holder is gone, the file is stale and prune removes it.
  ASSERT_EQ(run_command(cli(cache) + " cache prune").exit_code, 0);
  EXPECT_TRUE(fs::exists(lock));
  ::close(fd);
  auto prune = run_command(cli(cache) + " cache prune");
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  EXPECT_FALSE(fs::exists(lock));
  // A stale lock file does not make anyone wait.
  testing::write_file(lock, {});
  fs::remove(plans_in(cache).at(0));
  auto again = run_command(run);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_FALSE(contains(again.err, "waiting")) << again.err;
  EXPECT_TRUE(contains(again.err, "plan cache: miss")) << again.err;
}

// Overwrites `path` in place (same inode, same size) with `bytes` and puts its mtime back.
void rewrite_in_place_keeping_mtime(const fs::path& path, const std::vector<uint8_t>& bytes) {
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
  const timespec times[2] = {before.st_atim, before.st_mtim};  // as `touch -d` with the old time
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  ASSERT_EQ(after.st_ino, before.st_ino);
  ASSERT_EQ(after.st_size, before.st_size);
  ASSERT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
}

// A memo is written only for a file whose last change is over a second old.
void let_it_settle() {
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
}

TEST(PlanHardening, AHashMemoSeesAnInPlaceRewriteWithItsMtimePutBack) {
  TempDir dir;
  const fs::path file = dir / "data.bin";
  std::vector<uint8_t> a(4096), b(4096);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<uint8_t>(i * 7);
    b[i] = static_cast<uint8_t>(i * 7 + (i == 1000));
  }
  testing::write_file(file, a);
  fs::create_directories(dir / "memo");
  let_it_settle();
  auto first = runtime::file_content_hash(file.string(), (dir / "memo").string(), "data");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(files_under(dir / "memo").size(), 1u) << "the hash was memoised";
  ASSERT_NO_FATAL_FAILURE(rewrite_in_place_keeping_mtime(file, b));
  auto second = runtime::file_content_hash(file.string(), (dir / "memo").string(), "data");
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_NE(*second, *first);
  EXPECT_EQ(*second, runtime::xxh3_128(b));
}

TEST(PlanHardening, AModelRewrittenInPlaceDoesNotKeepItsOldPlan) {
  TempDir dir;
  const fs::path cache = dir / "cache";
  const fs::path model = dir / "model.gguf";
  fs::copy_file(testing::stories_model(), model);
  let_it_settle();
  const std::string run = cli(cache) + " run" + model_arg(model) + " -p hi -n 2 --greedy -v";
  auto first = run_command(run);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_TRUE(contains(first.err, "plan cache: miss")) << first.err;
  EXPECT_EQ(files_under(cache / "hashes").size(), 1u) << "the model's hash was memoised";
  // Another model of the same size: the same file with one weight's lowest byte changed.
  std::vector<uint8_t> bytes = testing::read_file(model);
  bytes[bytes.size() - 4] ^= 0x01;
  ASSERT_NO_FATAL_FAILURE(rewrite_in_place_keeping_mtime(model, bytes));
  auto second = run_command(run);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_TRUE(contains(second.err, "plan cache: miss")) << "the old model's plan was used:\n" << second.err;
  EXPECT_EQ(plans_in(cache).size(), 2u);
}

TEST(PlanHardening, CompileToAFileLeavesThePlanCacheAlone) {
  TempDir dir;
  const fs::path cache = dir / "cache";
  fs::create_directories(cache);
  auto r = run_command(cli(cache) + " compile" + model_arg() + " -o " + shell_quote((dir / "s.bnplan").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "s.bnplan"));
  EXPECT_TRUE(fs::is_empty(cache)) << "compile -o wrote into the plan cache";
}

TEST(PlanHardening, CacheActionsTakeDirBeforeOrAfterTheAction) {
  TempDir dir;
  const fs::path cache = dir / "cache";
  const fs::path elsewhere = dir / "elsewhere";  // $BITNET_CACHE_DIR: must stay untouched
  const std::string bitnet = cli(elsewhere) + " cache ";
  const std::string d = " --dir " + shell_quote(cache.string());
  auto populate = [&] {
    ASSERT_EQ(run_command(cli(cache) + " run" + model_arg() + " -p hi -n 2").exit_code, 0);
    ASSERT_EQ(plans_in(cache).size(), 1u);
  };
  ASSERT_NO_FATAL_FAILURE(populate());
  for (const std::string& list : {"list" + d, d + " list"}) {
    auto r = run_command(bitnet + list);
    ASSERT_EQ(r.exit_code, 0) << list << ": " << r.err;
    EXPECT_TRUE(contains(r.out, "1 plans") && contains(r.out, cache.string())) << r.out;
  }
  for (const std::string& prune :
       {"prune" + d + " --max-size 1", d + " prune --max-size 1", "prune --max-size 1" + d}) {
    ASSERT_NO_FATAL_FAILURE(populate());
    auto r = run_command(bitnet + prune);
    ASSERT_EQ(r.exit_code, 0) << prune << ": " << r.err;
    EXPECT_TRUE(plans_in(cache).empty()) << prune;
  }
  for (const std::string& clear : {"clear" + d, d + " clear"}) {
    ASSERT_NO_FATAL_FAILURE(populate());
    auto r = run_command(bitnet + clear);
    ASSERT_EQ(r.exit_code, 0) << clear << ": " << r.err;
    EXPECT_TRUE(plans_in(cache).empty()) << clear;
    EXPECT_TRUE(files_under(cache / "hashes").empty()) << clear;
  }
  EXPECT_FALSE(fs::exists(elsewhere));
  EXPECT_EQ(run_command(bitnet + "list --dir").exit_code, 2) << "--dir needs a value";
}

TEST(PlanHardening, ABadTokenizerIsReportedAsSuchNotAsARefusedPlan) {
  TempDir dir;
  const fs::path cache = dir / "cache";
  const fs::path bad = dir / "broken-tokenizer.json";
  const std::string junk = "{\"model\": ";
  testing::write_file(bad, {junk.begin(), junk.end()});
  const std::string run = cli(cache) + " run" + model_arg() + " -p hi -n 2 -v";
  ASSERT_EQ(run_command(run).exit_code, 0);
  const auto plans = plans_in(cache);
  ASSERT_EQ(plans.size(), 1u);
  const auto before = fs::last_write_time(plans[0]);

  auto hit = run_command(run + " --tokenizer " + shell_quote(bad.string()));
  EXPECT_EQ(hit.exit_code, 1) << hit.err;
  EXPECT_TRUE(contains(hit.err, "broken-tokenizer.json") && contains(hit.err, "not valid JSON")) << hit.err;
  EXPECT_FALSE(contains(hit.err, "refusing")) << hit.err;
  EXPECT_FALSE(contains(hit.err, "compil")) << "nothing is compiled again:\n" << hit.err;
  EXPECT_EQ(plans_in(cache), plans);
  EXPECT_EQ(fs::last_write_time(plans[0]), before) << "the entry was not replaced";

  const fs::path plan = dir / "s.bnplan";
  ASSERT_NO_FATAL_FAILURE(testing::compile_to(testing::stories_model(), plan));
  auto with_plan = run_command(cli(cache) + " run --plan " + shell_quote(plan.string()) + " -p hi -n 2 --tokenizer " +
                               shell_quote(bad.string()));
  EXPECT_EQ(with_plan.exit_code, 1) << with_plan.err;
  EXPECT_TRUE(contains(with_plan.err, "broken-tokenizer.json") && contains(with_plan.err, "not valid JSON"))
      << with_plan.err;
  EXPECT_FALSE(contains(with_plan.err, "refusing")) << with_plan.err;
}

}  // namespace
}  // namespace bitnet
