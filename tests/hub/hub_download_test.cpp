// HubClient against the fake hub on 127.0.0.1: the cache layout huggingface_hub uses, redirects
// and where the token goes, resuming a broken transfer, refusing a wrong checksum, errors for
// tokens and missing files, and cached files that cost no download.
#include "hub/hub_client.h"
#include "hub/hub_model.h"
#include "hub/local_dir.h"

#include "fake_hub.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace bitnet::hub {
namespace {

namespace fs = std::filesystem;
using bitnet::testing::FakeHub;
using bitnet::testing::TempDir;

constexpr const char* kRepo = "org/tiny";

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Bytes that differ at every position, so a resumed file with a wrong offset cannot match.
std::string pattern(size_t n, unsigned seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

struct HubTest : ::testing::Test {
  FakeHub hub;
  TempDir tmp;
  std::string cache = (tmp / "hub").string();

  HubOptions options(const std::string& token = "") const {
    HubOptions o;
    o.endpoint = hub.endpoint();
    o.token = token;
    o.cache_dir = cache;
    o.retry_delay_s = 0;
    o.http.read_timeout_s = 5;
    o.http.connect_timeout_s = 5;
    return o;
  }
  std::string repo_dir() const { return cache + "/models--org--tiny"; }
  int count(const std::string& server, const std::string& method) const {
    int n = 0;
    for (const auto& r : hub.requests()) n += r.server == server && r.method == method;
    return n;
  }
};

TEST_F(HubTest, CacheLayoutIsHuggingfaceHubs) {
  const std::string weights = pattern(300000);
  const std::string config = R"({"model_type": "llama"})";
  hub.add_file(kRepo, "model.gguf", weights, /*lfs=*/true);
  hub.add_file(kRepo, "sub/config.json", config, /*lfs=*/false);
  HubClient client(options());
  auto model = client.download(kRepo, "model.gguf", "main");
  ASSERT_TRUE(model.ok()) << model.error().message;
  auto cfg = client.download(kRepo, "sub/config.json", "main");
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;

  const std::string commit = hub.commit(kRepo);
  const std::string sha256 = FakeHub::sha256_hex(weights);
  const std::string git_sha1 = FakeHub::git_blob_sha1_hex(config);
  EXPECT_TRUE(model->downloaded);
  EXPECT_EQ(model->commit, commit);
  EXPECT_EQ(model->path, repo_dir() + "/snapshots/" + commit + "/model.gguf");
  EXPECT_EQ(model->size, weights.size());
  EXPECT_TRUE(slurp(repo_dir() + "/blobs/" + sha256) == weights);
  EXPECT_EQ(slurp(repo_dir() + "/blobs/" + git_sha1), config);
  EXPECT_EQ(fs::read_symlink(model->path).string(), "../../blobs/" + sha256);
  EXPECT_EQ(fs::read_symlink(cfg->path).string(), "../../../blobs/" + git_sha1);
  EXPECT_EQ(slurp(cfg->path), config);
  EXPECT_EQ(slurp(repo_dir() + "/refs/main"), commit);
  EXPECT_TRUE(fs::exists(cache + "/.locks/models--org--tiny/" + sha256 + ".lock"));
  for (const auto& entry : fs::recursive_directory_iterator(repo_dir())) {
    EXPECT_EQ(entry.path().string().find(".incomplete"), std::string::npos) << entry.path();
    EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();
  }
  // The HEAD asked for the real size; the LFS file came from the CDN.
  EXPECT_EQ(count("hub", "HEAD"), 2);
  EXPECT_EQ(count("cdn", "GET"), 1);
  EXPECT_EQ(count("hub", "GET"), 1);  // the small file, from the hub itself
}

TEST_F(HubTest, TokenGoesToTheHubButNeverToTheCdn) {
  hub.add_file(kRepo, "model.gguf", pattern(5000));
  hub.require_token(kRepo, "hf_secret");
  HubClient client(options("hf_secret"));
  auto got = client.download(kRepo, "model.gguf", "main");
  ASSERT_TRUE(got.ok()) << got.error().message;
  for (const auto& r : hub.requests()) {
    EXPECT_EQ(r.authorization, r.server == "hub" ? "Bearer hf_secret" : "") << r.server << " " << r.target;
  }
  EXPECT_EQ(count("cdn", "GET"), 1);
}

TEST_F(HubTest, BadOrMissingTokenIs401WithAClearMessage) {
  hub.add_file(kRepo, "model.gguf", pattern(100));
  hub.require_token(kRepo, "hf_right");
  auto wrong = HubClient(options("hf_wrong")).download(kRepo, "model.gguf", "main");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("refused the token"), std::string::npos) << wrong.error().message;
  EXPECT_NE(wrong.error().message.find("HTTP 401"), std::string::npos) << wrong.error().message;
  EXPECT_NE(wrong.error().message.find("Invalid credentials"), std::string::npos) << wrong.error().message;
  auto injected = HubClient(options("hf_right\r\nX-Evil: 1")).download(kRepo, "model.gguf", "main");
  ASSERT_FALSE(injected.ok());
  EXPECT_NE(injected.error().message.find("control character"), std::string::npos) << injected.error().message;
  auto none = HubClient(options()).download(kRepo, "model.gguf", "main");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("gated"), std::string::npos) << none.error().message;
  EXPECT_FALSE(fs::exists(repo_dir() + "/blobs"));
}

TEST_F(HubTest, MissingFileRevisionAndRepoAreNamed) {
  hub.add_file(kRepo, "model.gguf", pattern(100));
  HubClient client(options());
  auto file = client.download(kRepo, "nope.gguf", "main");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message.find("no such file"), std::string::npos) << file.error().message;
  auto revision = client.download(kRepo, "model.gguf", "v9");
  ASSERT_FALSE(revision.ok());
  EXPECT_NE(revision.error().message.find("no such revision"), std::string::npos) << revision.error().message;
  auto repo = client.download("org/absent", "model.gguf", "main");
  ASSERT_FALSE(repo.ok());
  EXPECT_NE(repo.error().message.find("does not exist"), std::string::npos) << repo.error().message;
}

TEST_F(HubTest, ResumesWithRangeAfterADroppedConnection) {
  const std::string weights = pattern(200000, 7);
  hub.add_file(kRepo, "model.gguf", weights);
  hub.drop_after(kRepo, "model.gguf", 65536 + 123, 2);  // two broken transfers, then a good one
  std::vector<uint64_t> seen;
  HubOptions o = options();
  o.progress = [&](const DownloadProgress& p) { seen.push_back(p.done); };
  auto got = HubClient(o).download(kRepo, "model.gguf", "main");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_TRUE(slurp(got->path) == weights);
  std::vector<std::string> ranges;
  for (const auto& r : hub.requests()) {
    if (r.server == "cdn") ranges.push_back(r.range);
  }
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0], "");
  EXPECT_EQ(ranges[1], "bytes=65659-");
  EXPECT_EQ(ranges[2], "bytes=131318-");
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), weights.size());
}

TEST_F(HubTest, KeepsThePartialFileAndTheNextRunResumesIt) {
  const std::string weights = pattern(100000, 3);
  const std::string sha256 = FakeHub::sha256_hex(weights);
  hub.add_file(kRepo, "model.gguf", weights);
  hub.drop_after(kRepo, "model.gguf", 40000, 1);
  HubOptions o = options();
  o.max_resumes = 0;
  auto first = HubClient(o).download(kRepo, "model.gguf", "main");
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.error().message.find("run the command again to resume"), std::string::npos) << first.error().message;
  const std::string partial = repo_dir() + "/blobs/" + sha256 + ".incomplete";
  ASSERT_TRUE(fs::exists(partial));
  EXPECT_EQ(fs::file_size(partial), 40000u);
  EXPECT_FALSE(fs::exists(repo_dir() + "/blobs/" + sha256));

  hub.clear_requests();
  auto second = HubClient(options()).download(kRepo, "model.gguf", "main");
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_TRUE(slurp(second->path) == weights);
  EXPECT_FALSE(fs::exists(partial));
  ASSERT_EQ(count("cdn", "GET"), 1);
  EXPECT_EQ(hub.requests().back().range, "bytes=40000-");
}

TEST_F(HubTest, ServerIgnoringRangeRestartsFromZero) {
  const std::string weights = pattern(90000, 5);
  hub.add_file(kRepo, "model.gguf", weights);
  hub.drop_after(kRepo, "model.gguf", 70000, 1);
  hub.ignore_range(true);
  auto got = HubClient(options()).download(kRepo, "model.gguf", "main");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_TRUE(slurp(got->path) == weights);
}

TEST_F(HubTest, WrongChecksumIsRefusedAndLeavesNothing) {
  const std::string weights = pattern(50000, 9);
  hub.add_file(kRepo, "model.gguf", weights);
  const std::string claimed = FakeHub::sha256_hex("something else");
  hub.report_etag(kRepo, "model.gguf", claimed);
  auto got = HubClient(options()).download(kRepo, "model.gguf", "main");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("checksum mismatch"), std::string::npos) << got.error().message;
  EXPECT_NE(got.error().message.find(claimed), std::string::npos) << got.error().message;
  EXPECT_NE(got.error().message.find(FakeHub::sha256_hex(weights)), std::string::npos) << got.error().message;
  EXPECT_FALSE(fs::exists(repo_dir() + "/blobs/" + claimed + ".incomplete"));
  EXPECT_FALSE(fs::exists(repo_dir() + "/blobs/" + claimed));
  EXPECT_FALSE(fs::exists(fs::symlink_status(repo_dir() + "/snapshots/" + hub.commit(kRepo) + "/model.gguf")));
}

TEST_F(HubTest, WrongGitBlobIdIsRefusedToo) {
  hub.add_file(kRepo, "config.json", "{}", /*lfs=*/false);
  hub.report_etag(kRepo, "config.json", FakeHub::git_blob_sha1_hex("[]"));
  auto got = HubClient(options()).download(kRepo, "config.json", "main");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("git blob sha1"), std::string::npos) << got.error().message;
}

TEST_F(HubTest, CachedFilesNeedNoDownload) {
  const std::string weights = pattern(20000);
  hub.add_file(kRepo, "model.gguf", weights);
  ASSERT_TRUE(HubClient(options()).download(kRepo, "model.gguf", "main").ok());

  // A branch: one HEAD to learn its commit, no GET.
  hub.clear_requests();
  HubClient again(options());
  auto second = again.download(kRepo, "model.gguf", "main");
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_FALSE(second->downloaded);
  EXPECT_EQ(again.requests_sent(), 1);
  EXPECT_EQ(count("hub", "HEAD"), 1);
  EXPECT_EQ(count("cdn", "GET") + count("hub", "GET"), 0);

  // A commit, or offline mode: no request at all.
  hub.clear_requests();
  HubClient pinned(options());
  auto by_commit = pinned.download(kRepo, "model.gguf", hub.commit(kRepo));
  ASSERT_TRUE(by_commit.ok()) << by_commit.error().message;
  EXPECT_EQ(pinned.requests_sent(), 0);
  HubOptions offline = options();
  offline.offline = true;
  HubClient off(offline);
  auto cached = off.download(kRepo, "model.gguf", "main");
  ASSERT_TRUE(cached.ok()) << cached.error().message;
  EXPECT_TRUE(slurp(cached->path) == weights);
  EXPECT_EQ(off.requests_sent(), 0);
  EXPECT_TRUE(hub.requests().empty());
  EXPECT_FALSE(off.download(kRepo, "other.gguf", "main").ok());

  // A new commit with the same content reuses the blob: a new snapshot, no GET.
  hub.set_commit(kRepo, std::string(40, 'b'));
  hub.clear_requests();
  auto moved = HubClient(options()).download(kRepo, "model.gguf", "main");
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  EXPECT_FALSE(moved->downloaded);
  EXPECT_EQ(moved->commit, std::string(40, 'b'));
  EXPECT_EQ(slurp(repo_dir() + "/refs/main"), std::string(40, 'b'));
  EXPECT_EQ(count("cdn", "GET"), 0);
}

TEST_F(HubTest, UnreachableHubFallsBackToTheCache) {
  hub.add_file(kRepo, "model.gguf", pattern(1000));
  ASSERT_TRUE(HubClient(options()).download(kRepo, "model.gguf", "main").ok());
  HubOptions o = options();
  o.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  auto got = HubClient(o).download(kRepo, "model.gguf", "main");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_NE(got->note.find("cannot be reached"), std::string::npos) << got->note;
  auto absent = HubClient(o).download(kRepo, "other.gguf", "main");
  ASSERT_FALSE(absent.ok());
  EXPECT_NE(absent.error().message.find("not in the cache"), std::string::npos) << absent.error().message;
}

TEST_F(HubTest, FollowsARenamedRepositorysRelativeRedirect) {
  hub.add_file("org/new-name", "model.gguf", pattern(3000));
  hub.rename_repo("org/old-name", "org/new-name");
  auto got = HubClient(options()).download("org/old-name", "model.gguf", "main");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_NE(got->path.find("models--org--old-name"), std::string::npos);  // cached under the name asked for
}

TEST_F(HubTest, ListsFilesAndPlacesThemIntoADirectory) {
  hub.add_file(kRepo, "b.gguf", pattern(100, 2));
  hub.add_file(kRepo, "a/readme.md", "hi", false);
  HubClient client(options());
  auto listing = client.list_files(kRepo, "main");
  ASSERT_TRUE(listing.ok()) << listing.error().message;
  EXPECT_EQ(listing->commit, hub.commit(kRepo));
  EXPECT_EQ(listing->files, (std::vector<std::string>{"a/readme.md", "b.gguf"}));

  auto got = client.download(kRepo, "a/readme.md", listing->commit);
  ASSERT_TRUE(got.ok()) << got.error().message;
  const std::string out = (tmp / "out").string();
  auto linked = place_in_dir(got->path, out, got->file, PlaceMode::kLink);
  ASSERT_TRUE(linked.ok()) << linked.error().message;
  EXPECT_TRUE(fs::is_symlink(*linked));
  EXPECT_EQ(slurp(*linked), "hi");
  auto copied = place_in_dir(got->path, out, got->file, PlaceMode::kCopy);  // replaces the link
  ASSERT_TRUE(copied.ok()) << copied.error().message;
  EXPECT_FALSE(fs::is_symlink(*copied));
  EXPECT_EQ(slurp(*copied), "hi");

  HubOptions offline = options();
  offline.offline = true;
  auto cached = HubClient(offline).list_files(kRepo, "main");
  ASSERT_TRUE(cached.ok()) << cached.error().message;
  EXPECT_EQ(cached->files, (std::vector<std::string>{"a/readme.md"}));  // what the cache holds
}

TEST(HubModel, SpecsAndTheChoiceOfGguf) {
  auto spec = parse_model_spec("org/m:sub/q8.gguf");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->repo_id, "org/m");
  EXPECT_EQ(spec->file, "sub/q8.gguf");
  EXPECT_EQ(parse_model_spec("org/m")->file, "");
  EXPECT_FALSE(parse_model_spec("org/m:").ok());
  EXPECT_FALSE(parse_model_spec("../m").ok());
  EXPECT_EQ(*pick_gguf("org/m", {"README.md", "model.GGUF"}), "model.GGUF");
  auto none = pick_gguf("org/m", {"README.md", "config.json"});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("no .gguf file (files: README.md, config.json)"), std::string::npos);
  auto two = pick_gguf("org/m", {"a.gguf", "b.gguf", "x.txt"});
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.error().message.find("2 .gguf files: a.gguf, b.gguf; choose one with -hf org/m:FILE"),
            std::string::npos)
      << two.error().message;
}

TEST_F(HubTest, NamedFileSkipsTheListing) {
  hub.add_file(kRepo, "a.gguf", pattern(1000, 1));
  hub.add_file(kRepo, "b.gguf", pattern(1000, 2));
  HubClient client(options());
  auto named = fetch_model(client, {kRepo, "b.gguf"});
  ASSERT_TRUE(named.ok()) << named.error().message;
  EXPECT_TRUE(slurp(named->path) == pattern(1000, 2));
  for (const auto& r : hub.requests()) EXPECT_EQ(r.target.find("/api/"), std::string::npos) << r.target;
  EXPECT_FALSE(fetch_model(client, {kRepo, ""}).ok());  // two .gguf files: which one?

  hub.add_file("org/single", "only.gguf", pattern(500, 3));
  hub.clear_requests();
  auto only = fetch_model(client, {"org/single", ""});
  ASSERT_TRUE(only.ok()) << only.error().message;
  EXPECT_EQ(only->file, "only.gguf");
  ASSERT_FALSE(hub.requests().empty());
  EXPECT_EQ(hub.requests().front().target, "/api/models/org/single/revision/main");
  // The file is fetched at the commit the listing named.
  EXPECT_NE(hub.requests()[1].target.find("/resolve/" + hub.commit("org/single") + "/only.gguf"), std::string::npos)
      << hub.requests()[1].target;
}

TEST_F(HubTest, HttpsToAPlainHttpServerFailsTheTlsHandshake) {
  hub.add_file(kRepo, "model.gguf", "x");
  HubOptions o = options();
  o.endpoint = "https" + hub.endpoint().substr(4);  // the fake hub speaks plain HTTP
  auto got = HubClient(o).download(kRepo, "model.gguf", "main");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("TLS handshake with 127.0.0.1"), std::string::npos) << got.error().message;
}

// The environment as huggingface_hub reads it (each test runs in its own process under ctest).
TEST_F(HubTest, OptionsFromTheEnvironment) {
  for (const char* name : {"HF_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE"}) {
    ::unsetenv(name);
  }
  const std::string home = (tmp / "hf-home").string();
  fs::create_directories(home);
  std::ofstream(home + "/token") << "hf_from_file\n";
  ::setenv("HF_HOME", home.c_str(), 1);
  ::setenv("HF_ENDPOINT", "https://mirror.test/", 1);
  auto o = hub_options_from_environment();
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->token, "hf_from_file");
  EXPECT_EQ(o->cache_dir, home + "/hub");
  EXPECT_EQ(o->endpoint, "https://mirror.test/");
  EXPECT_FALSE(o->offline);
  ::setenv("HF_TOKEN", "hf_from_env", 1);
  ::setenv("HF_HUB_CACHE", "/elsewhere", 1);
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  o = hub_options_from_environment();
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->token, "hf_from_env");
  EXPECT_EQ(o->cache_dir, "/elsewhere");
  EXPECT_TRUE(o->offline);
  for (const char* name : {"HF_TOKEN", "HF_HOME", "HF_ENDPOINT", "HF_HUB_CACHE", "HF_HUB_OFFLINE"}) ::unsetenv(name);
}

}  // namespace
}  // namespace bitnet::hub
