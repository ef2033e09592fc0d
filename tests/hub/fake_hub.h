// A stand-in for huggingface.co in tests: two HTTP servers on 127.0.0.1 (ports chosen by the
// system), one answering as the hub (resolve URLs with X-Repo-Commit, X-Linked-Etag,
// X-Linked-Size; the repo listing API; 401/404 with X-Error-Code) and one as its CDN (the
// LFS files the hub redirects to, with Range support). Faults are switched on per test: a
// connection dropped mid-file, a wrong reported checksum, a required token, a server that
// ignores Range. Every request is recorded. Beast stays in fake_hub.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bitnet::testing {

class FakeHub {
 public:
  struct Request {
    std::string server;  // "hub" or "cdn"
    std::string method;
    std::string target;
    std::string authorization;
    std::string range;
  };

  FakeHub();
  ~FakeHub();
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  std::string endpoint() const;  // http://127.0.0.1:PORT
  std::string cdn_endpoint() const;

  // A file of `repo` at its current commit: LFS files are redirected to the CDN and identified
  // by their SHA-256; small (git) files are served by the hub with their git blob id as ETag.
  void add_file(const std::string& repo, const std::string& file, const std::string& content, bool lfs = true);
  // Moves `repo` to a new commit (its files stay): what a push does.
  void set_commit(const std::string& repo, const std::string& commit);
  std::string commit(const std::string& repo) const;
  // Requests for `repo` without "Authorization: Bearer TOKEN" get 401.
  void require_token(const std::string& repo, const std::string& token);
  // The hub reports this ETag for the file instead of the content's own checksum.
  void report_etag(const std::string& repo, const std::string& file, const std::string& etag);
  // The next `times` GETs of the file's content send `bytes` bytes of the body and close.
  void drop_after(const std::string& repo, const std::string& file, uint64_t bytes, int times = 1);
  // The CDN answers Range requests with the whole file (200).
  void ignore_range(bool ignore);
  // Requests to /OLD/resolve/... get a relative 307 to /NEW/resolve/... (a renamed repository).
  void rename_repo(const std::string& old_repo, const std::string& new_repo);

  std::vector<Request> requests() const;
  void clear_requests();

  // The checksums the hub uses as ETags.
  static std::string sha256_hex(const std::string& content);
  static std::string git_blob_sha1_hex(const std::string& content);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace bitnet::testing
