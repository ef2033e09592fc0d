// The plan cache of `bitnet run -m`: a miss compiles and stores, a hit loads the plan; a
// refused entry is rebuilt; two processes compiling the same key leave one good entry; a cache
// that cannot be written leaves a warning and an in-memory JIT; list, clear and prune.
#include "runtime/plan_cache.h"
#include "plan_test_util.h"
#include "runtime/cuda_module_file.h"

namespace bitnet {
namespace {

using testing::run_command;
using testing::shell_quote;
using testing::TempDir;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string run_line(const std::filesystem::path& cache, const std::string& extra = "") {
  return "BITNET_CACHE_DIR=" + shell_quote(cache.string()) + " " + shell_quote(testing::bitnet_cli().string()) +
         " run -m " + shell_quote(testing::stories_model().string()) +
         " -p 'Once upon a time' -n 12 --greedy -t 2 -v " + extra;
}

// `bitnet cache ` on the cache directory `cache`.
std::string cache_cli(const std::filesystem::path& cache) {
  return "BITNET_CACHE_DIR=" + shell_quote(cache.string()) + " " + shell_quote(testing::bitnet_cli().string()) +
         " cache ";
}

std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(PlanCache, MissStoresHitLoadsAndTheTextIsTheSame) {
  TempDir dir;
  const auto cache = dir / "cache";
  auto miss = run_command(run_line(cache));
  ASSERT_EQ(miss.exit_code, 0) << miss.err;
  EXPECT_TRUE(contains(miss.err, "plan cache: miss")) << miss.err;
  const auto plans = files_in(cache / "plans");
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_TRUE(runtime::read_plan(plans[0].string()).ok());
  auto hit = run_command(run_line(cache));
  ASSERT_EQ(hit.exit_code, 0) << hit.err;
  EXPECT_TRUE(contains(hit.err, "plan cache: hit")) << hit.err;
  EXPECT_TRUE(contains(hit.err, "backend plan")) << hit.err;
  EXPECT_EQ(hit.out, miss.out);
  auto uncached = run_command(run_line(cache, "--no-cache"));
  ASSERT_EQ(uncached.exit_code, 0) << uncached.err;
  EXPECT_FALSE(contains(uncached.err, "plan cache")) << uncached.err;
  EXPECT_EQ(uncached.out, miss.out);
  // Another target is another key.
  auto v3 = run_command(run_line(cache, "--target x86-64-v3"));
  ASSERT_EQ(v3.exit_code, 0) << v3.err;
  EXPECT_TRUE(contains(v3.err, "plan cache: miss")) << v3.err;
  EXPECT_EQ(files_in(cache / "plans").size(), 2u);
}

TEST(PlanCache, ARefusedEntryIsRebuilt) {
  TempDir dir;
  const auto cache = dir / "cache";
  ASSERT_EQ(run_command(run_line(cache)).exit_code, 0);
  const auto plan = files_in(cache / "plans").at(0);
  std::vector<uint8_t> bytes = testing::read_file(plan);
  bytes[bytes.size() / 2] ^= 0x10;
  testing::write_file(plan, bytes);
  auto rebuilt = run_command(run_line(cache));
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.err;
  EXPECT_TRUE(contains(rebuilt.err, "refusing the cached plan") && contains(rebuilt.err, "checksum")) << rebuilt.err;
  EXPECT_TRUE(runtime::read_plan(plan.string()).ok()) << "the entry was replaced by a good one";
  auto hit = run_command(run_line(cache));
  EXPECT_TRUE(contains(hit.err, "plan cache: hit")) << hit.err;
}

TEST(PlanCache, ConcurrentWritersLeaveOneGoodEntry) {
  TempDir dir;
  const auto cache = dir / "cache";
  const std::string script = "(" + run_line(cache) + " >" + shell_quote((dir / "out1").string()) + " 2>&1) & p1=$!; (" +
                             run_line(cache) + " >" + shell_quote((dir / "out2").string()) +
                             " 2>&1) & p2=$!; wait $p1; r1=$?; wait $p2; r2=$?; echo $r1 $r2";
  auto both = run_command(script);
  ASSERT_EQ(both.exit_code, 0);
  const auto out1 = testing::read_file(dir / "out1");
  EXPECT_EQ(both.out, "0 0\n") << std::string(out1.begin(), out1.end());
  const auto plans = files_in(cache / "plans");
  ASSERT_EQ(plans.size(), 1u) << "one entry, no temp files left";
  EXPECT_TRUE(runtime::read_plan(plans[0].string()).ok());
  auto hit = run_command(run_line(cache));
  EXPECT_TRUE(contains(hit.err, "plan cache: hit")) << hit.err;
}

TEST(PlanCache, AnUnwritableCacheFallsBackToTheJitInMemory) {
  TempDir dir;
  testing::write_file(dir / "file", {1, 2, 3});
  const auto cache = dir / "file" / "cache";  // under a regular file: cannot be created, even by root
  auto r = run_command(run_line(cache));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "warning") && contains(r.err, "not usable")) << r.err;
  EXPECT_TRUE(contains(r.err, "backend jit")) << r.err;
  auto uncached = run_command(run_line(dir / "other", "--no-cache"));
  EXPECT_EQ(r.out, uncached.out);
}

TEST(PlanCache, ListClearAndPrune) {
  TempDir dir;
  const auto cache = dir / "cache";
  const std::string cli = cache_cli(cache);
  auto empty = run_command(cli + "list");
  ASSERT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_TRUE(contains(empty.out, "0 plans")) << empty.out;
  ASSERT_EQ(run_command(run_line(cache)).exit_code, 0);
  ASSERT_EQ(run_command(run_line(cache, "--target x86-64-v3")).exit_code, 0);
  testing::write_file(cache / "plans" / "0123456789abcdef0123456789abcdef.bnplan", {'j', 'u', 'n', 'k'});
  testing::write_file(cache / "plans" / ".dead.bnplan.tmp.1.2", {1});
  std::filesystem::last_write_time(cache / "plans" / ".dead.bnplan.tmp.1.2",
                                   std::filesystem::file_time_type::clock::now() - std::chrono::hours(2));
  const std::string memo = "1 2 3 4\n00000000000000000000000000000000\n/no/such/model.gguf\n";
  testing::write_file(cache / "hashes" / "0000000000000000.hash", {memo.begin(), memo.end()});
  const size_t memos = files_in(cache / "hashes").size();
  auto list = run_command(cli + "list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(contains(list.out, "3 plans")) << list.out;
  EXPECT_TRUE(contains(list.out, "INVALID")) << list.out;
  EXPECT_TRUE(contains(list.out, "stories260K.gguf for host")) << list.out;

  auto prune = run_command(cli + "prune");
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  // The junk plan, the stale temp file and the memo of a model that is gone; the live memo stays.
  EXPECT_TRUE(contains(prune.out, "removed 3 files")) << prune.out;
  EXPECT_EQ(files_in(cache / "hashes").size(), memos - 1);
  EXPECT_TRUE(contains(run_command(cli + "list").out, "2 plans"));
  // Over the limit, the least recently used plan goes first.
  const auto plans = files_in(cache / "plans");
  ASSERT_EQ(plans.size(), 2u);
  std::filesystem::last_write_time(plans[0], std::filesystem::file_time_type::clock::now() - std::chrono::hours(5));
  const uint64_t keep = std::filesystem::file_size(plans[1]);
  auto trimmed = run_command(cli + "prune --max-size " + std::to_string(keep));
  ASSERT_EQ(trimmed.exit_code, 0) << trimmed.err;
  EXPECT_EQ(files_in(cache / "plans"), std::vector<std::filesystem::path>{plans[1]});
  EXPECT_EQ(run_command(cli + "prune --max-size lots").exit_code, 2);

  auto clear = run_command(cli + "clear");
  ASSERT_EQ(clear.exit_code, 0) << clear.err;
  EXPECT_TRUE(files_in(cache / "plans").empty());
  EXPECT_TRUE(files_in(cache / "hashes").empty());
}

// CUDA modules (cuda/KEY.cumod, what `--backend cuda` keeps of NVRTC's work) are entries too:
// listed with their target and note, damaged ones pruned, trimmed by size with the plans, cleared.
TEST(PlanCache, CudaModulesAreListedPrunedAndCleared) {
  TempDir dir;
  const auto cache = dir / "cache";
  const std::string cli = cache_cli(cache);
  const runtime::PlanCache plans(cache.string());
  ASSERT_TRUE(plans.prepare().ok());
  const runtime::CudaModuleFile module{.sm = 90,
                                       .material = "key text",
                                       .note = "21 kernels, 4096 cells, first for m.gguf",
                                       .cubin = std::vector<uint8_t>(1000, 7),
                                       .ptx = ".version 8.0"};
  const std::string good = plans.cuda_module_path("11111111111111111111111111111111");
  const std::string old = plans.cuda_module_path("22222222222222222222222222222222");
  ASSERT_TRUE(runtime::write_cuda_module(good, module).ok());
  ASSERT_TRUE(runtime::write_cuda_module(old, module).ok());
  std::filesystem::last_write_time(old, std::filesystem::file_time_type::clock::now() - std::chrono::hours(5));
  testing::write_file(cache / "cuda" / "33333333333333333333333333333333.cumod", {'B', 'N', 'C', 'U'});
  auto list = run_command(cli + "list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(contains(list.out, "0 plans, 3 CUDA modules")) << list.out;
  EXPECT_TRUE(contains(list.out, "CUDA module for cuda-sm_90: 21 kernels, 4096 cells, first for m.gguf")) << list.out;
  EXPECT_TRUE(contains(list.out, "INVALID: ")) << list.out;

  auto prune = run_command(cli + "prune");
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  EXPECT_TRUE(contains(prune.out, "removed 1 files")) << prune.out;
  EXPECT_EQ(files_in(cache / "cuda").size(), 2u);
  // Over the limit, the least recently used module goes first.
  auto trimmed = run_command(cli + "prune --max-size " + std::to_string(std::filesystem::file_size(good)));
  ASSERT_EQ(trimmed.exit_code, 0) << trimmed.err;
  EXPECT_EQ(files_in(cache / "cuda"), std::vector<std::filesystem::path>{good});
  auto clear = run_command(cli + "clear");
  ASSERT_EQ(clear.exit_code, 0) << clear.err;
  EXPECT_TRUE(files_in(cache / "cuda").empty());
}

TEST(PlanCache, Sizes) {
  EXPECT_EQ(*runtime::parse_size("4096"), 4096u);
  EXPECT_EQ(*runtime::parse_size("500M"), 500ull << 20);
  EXPECT_EQ(*runtime::parse_size("2G"), 2ull << 30);
  EXPECT_EQ(*runtime::parse_size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(*runtime::parse_size("10kB"), 10240u);
  EXPECT_EQ(*runtime::parse_size("7B"), 7u);
  for (const char* bad : {"", "M", "-1G", "1X", "1GG", "nan", "1e30T"})
    EXPECT_FALSE(runtime::parse_size(bad).ok()) << bad;
}

TEST(PlanCache, Directory) {
  // Restores the variables it changes: other tests of this process run `bitnet` with them.
  struct Saved {
    std::string name;
    std::optional<std::string> value;
  };
  std::vector<Saved> saved;
  for (const char* name : {"BITNET_CACHE_DIR", "XDG_CACHE_HOME", "HOME"}) {
    const char* v = std::getenv(name);
    saved.push_back({name, v ? std::optional<std::string>(v) : std::nullopt});
  }
  ::setenv("BITNET_CACHE_DIR", "/x/y", 1);
  EXPECT_EQ(*runtime::default_cache_dir(), "/x/y");
  ::unsetenv("BITNET_CACHE_DIR");
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  EXPECT_EQ(*runtime::default_cache_dir(), "/xdg/bitnet");
  ::unsetenv("XDG_CACHE_HOME");
  ::setenv("HOME", "/home/u", 1);
  EXPECT_EQ(*runtime::default_cache_dir(), "/home/u/.cache/bitnet");
  for (const Saved& s : saved) {
    if (s.value)
      ::setenv(s.name.c_str(), s.value->c_str(), 1);
    else
      ::unsetenv(s.name.c_str());
  }
}

}  // namespace
}  // namespace bitnet
