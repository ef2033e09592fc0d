// The hub client's pure parts: URLs, names that reach the file system, checksums, the progress line.
#include "hub/content_digest.h"
#include "hub/hub_cache.h"
#include "hub/progress_bar.h"
#include "hub/url.h"

#include "fake_hub.h"

#include <gtest/gtest.h>

namespace bitnet::hub {
namespace {

using bitnet::testing::FakeHub;

TEST(HubUrl, ParsesHostPortAndTarget) {
  auto url = parse_url("https://Huggingface.co/org/m/resolve/main/a.gguf?x=1#frag");
  ASSERT_TRUE(url.ok()) << url.error().message;
  EXPECT_EQ(url->host, "huggingface.co");
  EXPECT_EQ(url->port, 443);
  EXPECT_EQ(url->target, "/org/m/resolve/main/a.gguf?x=1");
  EXPECT_EQ(url->authority(), "huggingface.co");
  auto local = parse_url("http://127.0.0.1:8080");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->port, 8080);
  EXPECT_EQ(local->target, "/");
  EXPECT_EQ(local->str(), "http://127.0.0.1:8080/");
  for (const char* bad :
       {"ftp://x/y", "huggingface.co/x", "http://user@host/", "http://:80/", "http://h:99999/", "http://h/a b"}) {
    EXPECT_FALSE(parse_url(bad).ok()) << bad;
  }
}

TEST(HubUrl, ResolvesRedirectLocations) {
  auto base = parse_url("https://hub.test/org/m/resolve/main/dir/f.gguf");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(resolve_location(*base, "/org/new/resolve/main/f")->str(), "https://hub.test/org/new/resolve/main/f");
  EXPECT_EQ(resolve_location(*base, "g.gguf")->str(), "https://hub.test/org/m/resolve/main/dir/g.gguf");
  EXPECT_EQ(resolve_location(*base, "//cdn.test/b?s=1")->str(), "https://cdn.test/b?s=1");
  EXPECT_EQ(resolve_location(*base, "http://cdn.test:81/b")->str(), "http://cdn.test:81/b");
  EXPECT_FALSE(resolve_location(*base, "").ok());
  EXPECT_TRUE(same_origin(*base, *resolve_location(*base, "/x")));
  EXPECT_FALSE(same_origin(*base, *resolve_location(*base, "//cdn.test/b")));
  EXPECT_FALSE(same_origin(*parse_url("http://127.0.0.1:1/"), *parse_url("http://127.0.0.1:2/")));
}

TEST(HubUrl, PercentEncodesLikePythonQuote) {
  EXPECT_EQ(percent_encode("refs/pr/1", ""), "refs%2Fpr%2F1");  // revisions: nothing is safe
  EXPECT_EQ(percent_encode("sub dir/a+b.gguf", "/"), "sub%20dir/a%2Bb.gguf");
  EXPECT_EQ(percent_encode("A-z_0.9~", ""), "A-z_0.9~");
  EXPECT_EQ(percent_encode("\xc3\xa9", ""), "%C3%A9");
}

TEST(HubNames, RepoIdsFilesAndRevisionsCannotLeaveTheCache) {
  for (const char* good : {"gpt2", "org/model-1.5B_q", "microsoft/bitnet-b1.58-2B-4T-gguf"}) {
    EXPECT_TRUE(check_repo_id(good).ok()) << good;
  }
  for (const char* bad : {"", "a/b/c", "../x", "org/..", "a--b/c", "/abs", "org/", "o rg/m", ".hidden/m", "org/m-"}) {
    EXPECT_FALSE(check_repo_id(bad).ok()) << bad;
  }
  for (const char* good : {"model.gguf", "sub/dir/model.gguf", "refs/pr/1"}) EXPECT_TRUE(check_repo_file(good).ok());
  for (const char* bad : {"", "../etc/passwd", "a/../../b", "/abs", "a//b", "a/", "./a", "a\\b", "a\nb"}) {
    EXPECT_FALSE(check_repo_file(bad).ok()) << bad;
    EXPECT_FALSE(check_revision(bad).ok()) << bad;
  }
  EXPECT_TRUE(is_commit_hash(std::string(40, 'f')));
  EXPECT_FALSE(is_commit_hash(std::string(40, 'F')));
  EXPECT_FALSE(is_commit_hash("main"));
  EXPECT_EQ(repo_folder_name(RepoType::kModel, "org/name"), "models--org--name");
  EXPECT_EQ(repo_folder_name(RepoType::kDataset, "gpt2"), "datasets--gpt2");
}

TEST(HubDigest, EtagsAreSha256OrGitBlobIds) {
  EXPECT_EQ(*etag_kind(std::string(64, 'a')), EtagKind::kSha256);
  EXPECT_EQ(*etag_kind(std::string(40, '0')), EtagKind::kGitBlobSha1);
  for (const std::string& bad : {std::string("../../x"), std::string(64, 'g'), std::string(63, 'a'), std::string()}) {
    EXPECT_FALSE(etag_kind(bad).ok()) << bad;
  }
}

TEST(HubDigest, MatchesGitAndSha256) {
  // `printf 'hello\n' | git hash-object --stdin` prints this git blob id.
  ContentDigest blob(EtagKind::kGitBlobSha1, 6);
  blob.update(std::string_view("hel"));
  blob.update(std::string_view("lo\n"));
  EXPECT_EQ(blob.finish_hex(), "ce013625030ba8dba906f756967f9e9ca394464a");
  // Fed in pieces, with a restart (a server that ignored Range), it equals a one-shot hash.
  const std::string content(100000, 'x');
  ContentDigest sha(EtagKind::kSha256, content.size());
  sha.update(std::string_view("garbage"));
  sha.restart();
  sha.update(std::string_view(content).substr(0, 777));
  sha.update(std::string_view(content).substr(777));
  EXPECT_EQ(sha.finish_hex(), FakeHub::sha256_hex(content));
  EXPECT_EQ(FakeHub::git_blob_sha1_hex("hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
}

TEST(HubProgress, LineShowsPercentBytesRateAndEta) {
  DownloadProgress p{"model.gguf", 512ull << 20, 1ull << 30, 0};
  const std::string line = ProgressBar::render(p, 4.0);
  EXPECT_NE(line.find("model.gguf"), std::string::npos) << line;
  EXPECT_NE(line.find(" 50%"), std::string::npos) << line;
  EXPECT_NE(line.find("512.0 MiB / 1.0 GiB"), std::string::npos) << line;
  EXPECT_NE(line.find("128.0 MiB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("0:04"), std::string::npos) << line;  // 512 MiB left at 128 MiB/s
  // Resumed bytes do not count as speed.
  DownloadProgress resumed{"m", 600, 1000, 500};
  EXPECT_NE(ProgressBar::render(resumed, 1.0).find("100 B/s"), std::string::npos);
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
}

}  // namespace
}  // namespace bitnet::hub
