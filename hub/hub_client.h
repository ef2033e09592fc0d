// Downloading files from a Hugging Face hub (huggingface.co or $HF_ENDPOINT) into the shared
// huggingface_hub cache (hub_cache.h), the way `huggingface-cli download` does:
//
//  1. HEAD {endpoint}/{repo}/resolve/{revision}/{file} (Accept-Encoding: identity), following
//     only same-host relative redirects (a renamed repo). The answer's X-Repo-Commit is the
//     commit, X-Linked-Etag (else ETag) the file's identity and X-Linked-Size (else
//     Content-Length) its size; a redirect's Location (the CDN, for LFS files) is where to GET.
//  2. A file whose blob is cached is linked into the snapshot without a download.
//  3. Else GET into blobs/<etag>.incomplete, resuming with "Range: bytes=N-" from what an
//     earlier attempt left, and again (up to max_resumes times) when the connection breaks.
//     The Authorization header goes only to the endpoint's own host, never to a CDN.
//  4. The received bytes must have the reported size and checksum (content_digest.h); if not,
//     the partial file is deleted and nothing enters the cache. Else it is renamed to its blob
//     and snapshots/<commit>/<file> links to it.
//
// Offline (HF_HUB_OFFLINE=1) or when the hub cannot be reached, files come from the cache as
// the revision's last recorded commit has them. The library prints nothing: progress goes to
// a callback.
#pragma once

#include "hub/http_client.h"
#include "hub/hub_cache.h"
#include "ir/support/expected.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bitnet::hub {

inline constexpr std::string_view kDefaultEndpoint = "https://huggingface.co";

struct DownloadProgress {
  std::string file;
  uint64_t done = 0;   // bytes of the file on disk so far (resumed bytes included)
  uint64_t total = 0;  // the file's size
  uint64_t resumed_from = 0;
};

struct HubOptions {
  std::string endpoint{kDefaultEndpoint};
  std::string token;      // empty: anonymous
  std::string cache_dir;  // the hub cache's root
  RepoType repo_type = RepoType::kModel;
  bool offline = false;      // use the cache only, make no request
  int max_resumes = 5;       // reconnections after a transfer broke off, per file
  double retry_delay_s = 1;  // before the first reconnection (doubling, at most 8 s)
  HttpOptions http;
  std::function<void(const DownloadProgress&)> progress;  // called as bytes arrive
};

// The options from the environment, as huggingface_hub reads it: HF_ENDPOINT; HF_TOKEN, else
// the token file `huggingface-cli login` writes ($HF_TOKEN_PATH, else $HF_HOME/token, else
// ~/.cache/huggingface/token); the cache (default_hub_cache_dir()); HF_HUB_OFFLINE=1.
Expected<HubOptions> hub_options_from_environment();

struct CachedFile {
  std::string file;  // its path in the repo
  std::string path;  // snapshots/<commit>/<file> in the cache
  std::string commit;
  uint64_t size = 0;
  bool downloaded = false;  // false: it was in the cache already
  std::string note;         // e.g. why the cache was used without asking the hub
};

struct RepoListing {
  std::string commit;
  std::vector<std::string> files;  // repo paths, sorted
  std::string note;
};

class HubClient {
 public:
  explicit HubClient(HubOptions options) : options_(std::move(options)) {}
  const HubOptions& options() const { return options_; }

  // Fetches one file (or finds it in the cache) and returns where it is.
  Expected<CachedFile> download(const std::string& repo_id, const std::string& file, const std::string& revision);
  // The repo's files at `revision` from {endpoint}/api/{models|datasets|spaces}/{repo}/revision/{rev}
  // ("siblings"), or from the cached snapshot when offline.
  Expected<RepoListing> list_files(const std::string& repo_id, const std::string& revision);
  // Requests sent so far (tests check that cached files cost none).
  int requests_sent() const { return requests_; }

 private:
  struct Metadata;
  Expected<HttpResponse> send(HttpRequest request, const BodySink& sink = {});
  Expected<Metadata> head(const std::string& repo_id, const std::string& file, const std::string& revision);
  Expected<CachedFile> from_cache(const HubCache& cache, const std::string& file, const std::string& revision,
                                  const std::string& why);
  Status fetch_blob(const HubCache& cache, const Metadata& meta, const std::string& file);

  HubOptions options_;
  int requests_ = 0;
  std::string last_error_;  // why the last HEAD got no answer
};

// The hub's answer as a message: X-Error-Code (RepoNotFound, GatedRepo, RevisionNotFound,
// EntryNotFound), else the status (401: no or a refused token, 403: no access), and the
// server's X-Error-Message or JSON "error" when it sent one.
std::string hub_error_message(const HttpResponse& response, const std::string& what, bool sent_token);

}  // namespace bitnet::hub
