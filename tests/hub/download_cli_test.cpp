// `bitnet download` and `bitnet run -hf` as a user runs them, against the fake hub: the paths
// printed, -o DIR, exit codes (0, 1 for a refused download, 2 for a bad command line), and a
// model fetched by -hf generating what the same model from disk generates.
#include "fake_hub.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace bitnet::testing {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct DownloadCli : ::testing::Test {
  FakeHub hub;
  TempDir tmp;

  // The CLI with the hub's environment pointed at the fake hub and a private cache (and no
  // token or offline setting inherited from the machine running the tests).
  std::string bitnet(const std::string& extra_env = "") const {
    return "env -u HF_TOKEN -u HF_HUB_OFFLINE -u HF_TOKEN_PATH -u HF_HUB_CACHE " + extra_env +
           " HF_HOME=" + shell_quote((tmp / "hf").string()) + " HF_ENDPOINT=" + shell_quote(hub.endpoint()) +
           " HF_HUB_DISABLE_PROGRESS_BARS=1 " + cli();
  }
  std::string repo_dir(const std::string& folder) const { return (tmp / "hf" / "hub" / folder).string(); }
};

TEST_F(DownloadCli, PrintsCachedPathsAndPlacesFilesInADirectory) {
  hub.add_file("org/tiny", "model.gguf", std::string(70000, 'w'));
  hub.add_file("org/tiny", "docs/README.md", "# tiny\n", /*lfs=*/false);
  const std::string out = (tmp / "out").string();
  auto r = run_command(bitnet() + " download org/tiny -o " + shell_quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, out + "/docs/README.md\n" + out + "/model.gguf\n");  // every file, sorted
  EXPECT_TRUE(fs::is_symlink(out + "/model.gguf"));
  EXPECT_EQ(fs::file_size(out + "/model.gguf"), 70000u);
  EXPECT_EQ(read_file(out + "/docs/README.md").size(), 7u);

  auto one = run_command(bitnet() + " download org/tiny model.gguf");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, repo_dir("models--org--tiny") + "/snapshots/" + hub.commit("org/tiny") + "/model.gguf\n");
}

TEST_F(DownloadCli, WrongChecksumExitsOneAndLeavesNoPartialFile) {
  hub.add_file("org/tiny", "model.gguf", std::string(70000, 'w'));
  hub.report_etag("org/tiny", "model.gguf", FakeHub::sha256_hex("other"));
  auto r = run_command(bitnet() + " download org/tiny model.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "bitnet download: error: checksum mismatch")) << r.err;
  EXPECT_EQ(r.out, "");
  for (const auto& e : fs::recursive_directory_iterator(repo_dir("models--org--tiny"))) {
    EXPECT_FALSE(contains(e.path().string(), ".incomplete")) << e.path();
  }
}

TEST_F(DownloadCli, RefusedTokenExitsOne) {
  hub.add_file("org/private", "model.gguf", "x");
  hub.require_token("org/private", "hf_good");
  auto bad = run_command(bitnet() + " download org/private model.gguf --token hf_bad");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(contains(bad.err, "refused the token")) << bad.err;
  auto good = run_command(bitnet("HF_TOKEN=hf_good") + " download org/private model.gguf");
  EXPECT_EQ(good.exit_code, 0) << good.err;
}

TEST_F(DownloadCli, BadArgumentsAreUsageErrors) {
  for (const char* args : {"download ../etc model.gguf", "download org/tiny --revision ..", "download org/tiny --copy",
                           "run -hf org/a:../b -p x"}) {
    auto r = run_command(bitnet() + " " + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
  }
  EXPECT_TRUE(hub.requests().empty());
}

TEST_F(DownloadCli, RunHfUsesTheRepositorysOnlyGguf) {
  const std::vector<uint8_t> model = read_file(source_dir() / "models" / "stories260K.gguf");
  hub.add_file("org/stories", "stories260K.gguf", std::string(model.begin(), model.end()));
  hub.add_file("org/stories", "README.md", "stories\n", /*lfs=*/false);
  // The interpreter: no JIT compile, so each run costs a fraction of a second.
  const std::string args = " -p 'Once upon a time' -n 8 --greedy --no-display-prompt --backend interp";
  auto from_hub = run_command(bitnet() + " run -hf org/stories" + args);
  // (-hf REPO:FILE names the file: HubModel.NamedFileSkipsTheListing checks that path.)
  ASSERT_EQ(from_hub.exit_code, 0) << from_hub.err;
  auto from_disk = run_command(cli() + " run -m " + stories() + args);
  ASSERT_EQ(from_disk.exit_code, 0) << from_disk.err;
  EXPECT_FALSE(from_hub.out.empty());
  EXPECT_EQ(from_hub.out, from_disk.out);

  hub.add_file("org/stories", "copy.gguf", "GGUF");
  auto ambiguous = run_command(bitnet() + " run -hf org/stories" + args);
  EXPECT_EQ(ambiguous.exit_code, 1);
  EXPECT_TRUE(contains(ambiguous.err, "copy.gguf, stories260K.gguf; choose one with -hf org/stories:FILE"))
      << ambiguous.err;
}

}  // namespace
}  // namespace bitnet::testing
