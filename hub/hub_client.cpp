// The hub download protocol of huggingface_hub's hf_hub_download (see hub_client.h).
#include "hub/hub_client.h"

#include "hub/content_digest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bitnet::hub {
namespace fs = std::filesystem;

namespace {

constexpr int kMaxRedirects = 10;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

bool env_true(const char* name) {
  std::string v = env(name);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return v == "1" || v == "ON" || v == "YES" || v == "TRUE";
}

// ETag: "abc" or W/"abc" -> abc.
std::string normalize_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return etag;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool is_redirect(const HttpResponse& r) {
  return r.status >= 300 && r.status < 400 && r.headers.has("Location");
}
bool is_relative(std::string_view location) {
  return location.find("://") == std::string_view::npos && location.substr(0, 2) != "//";
}

// Printable text from a server, short enough for one error line.
std::string printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, 300)) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : ' ';
  return trim(out);
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status write_all(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("cannot write '{}': {}", path, std::strerror(errno));
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::success();
}

// Feeds the first `size` bytes of the file at `fd` to the digest (a resumed download's prefix).
Status hash_prefix(int fd, uint64_t size, ContentDigest& digest, const std::string& path) {
  std::vector<char> buffer(1 << 20);
  uint64_t at = 0;
  while (at < size) {
    const ssize_t n = ::pread(fd, buffer.data(), std::min<uint64_t>(buffer.size(), size - at), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("cannot read '{}': {}", path, n < 0 ? std::strerror(errno) : "it got shorter");
    digest.update({buffer.data(), static_cast<size_t>(n)});
    at += static_cast<uint64_t>(n);
  }
  return Status::success();
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

Status make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("cannot create directory '{}': {}", dir.string(), ec.message());
  return Status::success();
}

std::string repo_url_prefix(RepoType type) {
  return type == RepoType::kModel ? "" : std::string(repo_type_plural(type)) + "/";
}

}  // namespace

struct HubClient::Metadata {
  std::string commit;
  std::string etag;
  EtagKind kind = EtagKind::kSha256;
  uint64_t size = 0;
  Url resolve_url;   // after same-host redirects: where the token may go
  Url download_url;  // the redirect's target (a CDN for LFS files), else resolve_url
  bool unreachable = false;
};

Expected<HubOptions> hub_options_from_environment() {
  HubOptions o;
  if (std::string endpoint = env("HF_ENDPOINT"); !endpoint.empty()) o.endpoint = endpoint;
  o.token = trim(env("HF_TOKEN"));
  if (o.token.empty()) {
    std::string path = env("HF_TOKEN_PATH");
    if (path.empty()) {
      std::string home = env("HF_HOME");
      if (home.empty() && !env("XDG_CACHE_HOME").empty()) home = env("XDG_CACHE_HOME") + "/huggingface";
      if (home.empty() && !env("HOME").empty()) home = env("HOME") + "/.cache/huggingface";
      if (!home.empty()) path = home + "/token";
    }
    if (!path.empty()) {
      std::ifstream in(path);
      std::string token;
      if (in && std::getline(in, token)) o.token = trim(token);
    }
  }
  BITNET_ASSIGN_OR_RETURN(o.cache_dir, default_hub_cache_dir());
  o.offline = env_true("HF_HUB_OFFLINE");
  return o;
}

std::string hub_error_message(const HttpResponse& r, const std::string& what, bool sent_token) {
  const std::string code = r.headers.get("X-Error-Code");
  std::string server = r.headers.get("X-Error-Message");
  if (server.empty()) {
    auto json = nlohmann::json::parse(r.body, nullptr, false);
    if (json.is_object() && json.contains("error") && json["error"].is_string())
      server = json["error"].get<std::string>();
  }
  std::string why;
  if (code == "GatedRepo") {
    why =
        "the repository is gated: accept its conditions on its hub page, then use a token of that account "
        "(HF_TOKEN or --token)";
  } else if (code == "RevisionNotFound") {
    why = "no such revision";
  } else if (code == "EntryNotFound") {
    why = "no such file in the repository at this revision";
  } else if (code == "RepoNotFound" || r.status == 401) {
    why = sent_token ? "the hub refused the token, or the repository does not exist (check HF_TOKEN / --token)"
                     : "the repository does not exist, or it is private or gated and needs a token (set HF_TOKEN or "
                       "pass --token)";
  } else if (r.status == 403) {
    why = "access denied: the token has no permission for this repository";
  } else if (r.status == 404) {
    why = "not found";
  } else {
    why = "the server answered with an error";
  }
  std::string out = fmt::format("{}: {} (HTTP {})", what, why, r.status);
  if (std::string s = printable(server); !s.empty()) out += ": " + s;
  return out;
}

Expected<HttpResponse> HubClient::send(HttpRequest request, const BodySink& sink) {
  ++requests_;
  return http_send(request, sink, options_.http);
}

Expected<HubClient::Metadata> HubClient::head(const std::string& repo_id, const std::string& file,
                                              const std::string& revision) {
  std::string endpoint = options_.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  BITNET_ASSIGN_OR_RETURN(Url url,
                          parse_url(endpoint + "/" + repo_url_prefix(options_.repo_type) + repo_id + "/resolve/" +
                                    percent_encode(revision, "") + "/" + percent_encode(file, "/")));
  const std::string what = fmt::format("cannot fetch '{}' from {} (revision {})", file, repo_id, revision);
  for (int hop = 0;; ++hop) {
    HttpRequest request{"HEAD", url, {}};
    if (!options_.token.empty()) request.headers.set("Authorization", "Bearer " + options_.token);
    request.headers.set("Accept-Encoding", "identity");  // the real size, never a compressed one
    auto response = send(request);
    if (!response.ok()) {
      last_error_ = response.error().message;  // the caller may fall back to the cache
      Metadata unreachable;
      unreachable.unreachable = true;
      unreachable.resolve_url = url;
      return unreachable;
    }
    const HttpResponse& r = *response;
    // Same-host relative redirects (a renamed repository) are followed; an absolute one (the
    // CDN of an LFS file) is where the GET will go, with this response's metadata.
    if (is_redirect(r) && is_relative(r.headers.get("Location"))) {
      if (hop >= kMaxRedirects) return make_error("{}: more than {} redirects", what, kMaxRedirects);
      BITNET_ASSIGN_OR_RETURN(url, resolve_location(url, r.headers.get("Location")));
      continue;
    }
    if (r.status >= 400 || r.status < 200 || (r.status >= 300 && !is_redirect(r))) {
      return make_error("{}", hub_error_message(r, what, !options_.token.empty()));
    }
    Metadata meta;
    meta.resolve_url = url;
    meta.download_url = url;
    if (is_redirect(r)) {
      BITNET_ASSIGN_OR_RETURN(meta.download_url, resolve_location(url, r.headers.get("Location")));
    }
    meta.commit = r.headers.get("X-Repo-Commit");
    if (!is_commit_hash(meta.commit)) {
      return make_error("{}: {} did not answer like a Hugging Face hub (no valid X-Repo-Commit header)", what,
                        url.authority());
    }
    meta.etag = normalize_etag(r.headers.has("X-Linked-Etag") ? r.headers.get("X-Linked-Etag") : r.headers.get("ETag"));
    auto kind = etag_kind(meta.etag);
    if (!kind.ok()) return make_error("{}: {}", what, kind.error().message);
    meta.kind = *kind;
    auto size =
        parse_u64(r.headers.has("X-Linked-Size") ? r.headers.get("X-Linked-Size") : r.headers.get("Content-Length"));
    if (!size) return make_error("{}: the hub reported no file size (X-Linked-Size or Content-Length)", what);
    meta.size = *size;
    return meta;
  }
}

Expected<CachedFile> HubClient::from_cache(const HubCache& cache, const std::string& file, const std::string& revision,
                                           const std::string& why) {
  const auto commit = cache.cached_commit(revision);
  const auto path = commit ? cache.cached_file(*commit, file) : std::nullopt;
  if (!path) return make_error("{}, and '{}' (revision {}) is not in the cache {}", why, file, revision, cache.root());
  std::error_code ec;
  const uint64_t size = fs::file_size(*path, ec);
  return CachedFile{file, *path, *commit, ec ? 0 : size, false, why + "; using the cached copy"};
}

Expected<CachedFile> HubClient::download(const std::string& repo_id, const std::string& file,
                                         const std::string& revision) {
  BITNET_RETURN_IF_ERROR(check_repo_id(repo_id));
  BITNET_RETURN_IF_ERROR(check_repo_file(file));
  BITNET_RETURN_IF_ERROR(check_revision(revision));
  const HubCache cache(options_.cache_dir, options_.repo_type, repo_id);
  if (options_.offline) return from_cache(cache, file, revision, "offline mode (HF_HUB_OFFLINE)");
  // A commit never changes: its cached files need no request.
  if (is_commit_hash(revision)) {
    if (auto path = cache.cached_file(revision, file)) {
      std::error_code ec;
      return CachedFile{file, *path, revision, fs::file_size(*path, ec), false, ""};
    }
  }
  last_error_.clear();
  BITNET_ASSIGN_OR_RETURN(Metadata meta, head(repo_id, file, revision));
  if (meta.unreachable) {
    return from_cache(cache, file, revision, fmt::format("the hub cannot be reached ({})", last_error_));
  }
  BITNET_RETURN_IF_ERROR(cache.write_ref(revision, meta.commit));
  if (auto path = cache.cached_file(meta.commit, file)) {
    std::error_code ec;
    if (fs::file_size(*path, ec) == meta.size && fs::canonical(*path, ec).filename() == meta.etag) {
      return CachedFile{file, *path, meta.commit, meta.size, false, ""};
    }
  }
  std::error_code ec;
  const bool have_blob = fs::is_regular_file(cache.blob_path(meta.etag), ec);
  if (!have_blob) BITNET_RETURN_IF_ERROR(fetch_blob(cache, meta, file));
  BITNET_RETURN_IF_ERROR(cache.link_snapshot(meta.commit, file, meta.etag));
  return CachedFile{file, cache.snapshot_path(meta.commit, file), meta.commit, meta.size, !have_blob, ""};
}

Status HubClient::fetch_blob(const HubCache& cache, const Metadata& meta, const std::string& file) {
  const std::string blob = cache.blob_path(meta.etag);
  const std::string partial = cache.incomplete_path(meta.etag);
  BITNET_RETURN_IF_ERROR(make_dirs(fs::path(blob).parent_path()));
  BITNET_RETURN_IF_ERROR(make_dirs(fs::path(cache.lock_path(meta.etag)).parent_path()));
  // One download per blob at a time, across processes (huggingface_hub takes the same lock file).
  FileDescriptor lock(::open(cache.lock_path(meta.etag).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (lock.get() < 0 || ::flock(lock.get(), LOCK_EX) != 0) {
    return make_error("cannot lock '{}': {}", cache.lock_path(meta.etag), std::strerror(errno));
  }
  std::error_code ec;
  if (fs::is_regular_file(blob, ec)) return Status::success();  // another process finished it

  FileDescriptor fd(::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) return make_error("cannot open '{}': {}", partial, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return make_error("cannot stat '{}': {}", partial, std::strerror(errno));
  uint64_t offset = static_cast<uint64_t>(st.st_size);
  ContentDigest digest(meta.kind, meta.size);
  auto start_over = [&]() -> Status {
    offset = 0;
    digest.restart();
    if (::ftruncate(fd.get(), 0) != 0 || ::lseek(fd.get(), 0, SEEK_SET) != 0) {
      return make_error("cannot truncate '{}': {}", partial, std::strerror(errno));
    }
    return Status::success();
  };
  if (offset > meta.size) BITNET_RETURN_IF_ERROR(start_over());
  if (offset > 0 && !hash_prefix(fd.get(), offset, digest, partial).ok()) BITNET_RETURN_IF_ERROR(start_over());
  const uint64_t resumed_from = offset;
  auto report = [&] {
    if (options_.progress) options_.progress({file, offset, meta.size, resumed_from});
  };
  report();

  Url url = meta.download_url;
  int failures = 0;
  int redirects = 0;
  double delay = options_.retry_delay_s;
  while (offset < meta.size) {
    HttpRequest request{"GET", url, {}};
    // The token goes to the hub's own host only; a CDN's URL is signed and must not see it.
    const bool send_token = !options_.token.empty() && same_origin(url, meta.resolve_url);
    if (send_token) request.headers.set("Authorization", "Bearer " + options_.token);
    request.headers.set("Accept-Encoding", "identity");
    if (offset > 0) request.headers.set("Range", fmt::format("bytes={}-", offset));
    const uint64_t offset_before = offset;
    std::optional<Error> refused;  // the sink's own error: not retried
    bool corrupt = false;
    BodySink sink;
    sink.start = [&](int status, const HttpHeaders& headers) -> Status {
      if (status == 206) {
        // "bytes START-END/TOTAL": the part must start where the file ends.
        const std::string range = headers.get("Content-Range");
        const size_t dash = range.find('-');
        const auto first = range.rfind("bytes ", 0) == 0 && dash != std::string::npos
                               ? parse_u64(std::string_view(range).substr(6, dash - 6))
                               : std::nullopt;
        if (first != offset) {
          refused = make_error("the server sent bytes '{}' of {} when asked for bytes {}-", range, file, offset);
          return *refused;
        }
        return Status::success();
      }
      if (offset > 0) return start_over();  // a 200 to a Range request: the whole file again
      return Status::success();
    };
    sink.write = [&](std::span<const char> chunk) -> Status {
      if (offset + chunk.size() > meta.size) {
        corrupt = true;
        refused = make_error("the server sent more than the {} bytes the hub reported for {}", meta.size, file);
        return *refused;
      }
      if (Status s = write_all(fd.get(), chunk.data(), chunk.size(), partial); !s.ok()) {
        refused = s.error();
        return s;
      }
      digest.update(chunk);
      offset += chunk.size();
      report();
      return Status::success();
    };
    if (::lseek(fd.get(), static_cast<off_t>(offset), SEEK_SET) < 0) {
      return make_error("cannot seek in '{}': {}", partial, std::strerror(errno));
    }
    auto response = send(request, sink);
    std::string problem;
    if (refused) {
      if (corrupt) ::unlink(partial.c_str());
      return make_error("cannot download '{}': {}", file, refused->message);
    }
    if (!response.ok()) {
      problem = response.error().message;
    } else if (is_redirect(*response)) {
      if (++redirects > kMaxRedirects)
        return make_error("cannot download '{}': more than {} redirects", file, kMaxRedirects);
      BITNET_ASSIGN_OR_RETURN(url, resolve_location(url, response->headers.get("Location")));
      continue;
    } else if (response->status == 416) {
      BITNET_RETURN_IF_ERROR(start_over());  // the server does not know our prefix: start again
      problem = "the server refused the resume offset (HTTP 416)";
    } else if (response->status < 200 || response->status >= 300) {
      return make_error("{}", hub_error_message(*response, fmt::format("cannot download '{}'", file), send_token));
    } else if (response->complete && offset < meta.size) {
      ::unlink(partial.c_str());
      return make_error(
          "cannot download '{}': the server sent {} bytes, the hub reported {}; the partial download was "
          "deleted",
          file, offset, meta.size);
    } else if (!response->complete) {
      problem = response->broken_because;
    }
    if (problem.empty()) continue;
    if (offset > offset_before) failures = 0;  // progress was made: the connection is worth retrying
    if (++failures > options_.max_resumes) {
      return make_error("cannot download '{}': {} ({} of {} bytes kept in '{}'; run the command again to resume)", file,
                        problem, offset, meta.size, partial);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    delay = std::min(delay * 2, 8.0);
  }

  const std::string got = digest.finish_hex();
  if (got != meta.etag) {
    ::unlink(partial.c_str());
    return make_error(
        "checksum mismatch for '{}': the hub reported {} {}, the {} bytes received have {}; the partial "
        "download was deleted",
        file, digest.name(), meta.etag, offset, got);
  }
  if (::fsync(fd.get()) != 0) return make_error("cannot write '{}': {}", partial, std::strerror(errno));
  if (::rename(partial.c_str(), blob.c_str()) != 0) {
    return make_error("cannot rename '{}' to its blob: {}", partial, std::strerror(errno));
  }
  fsync_dir(fs::path(blob).parent_path().string());
  return Status::success();
}

Expected<RepoListing> HubClient::list_files(const std::string& repo_id, const std::string& revision) {
  BITNET_RETURN_IF_ERROR(check_repo_id(repo_id));
  BITNET_RETURN_IF_ERROR(check_revision(revision));
  const HubCache cache(options_.cache_dir, options_.repo_type, repo_id);
  auto from_cache = [&](const std::string& why) -> Expected<RepoListing> {
    const auto commit = cache.cached_commit(revision);
    std::vector<std::string> files = commit ? cache.snapshot_files(*commit) : std::vector<std::string>{};
    if (files.empty())
      return make_error("{}, and revision {} of {} is not in the cache {}", why, revision, repo_id, cache.root());
    return RepoListing{*commit, files, why + "; listing the cached snapshot"};
  };
  if (options_.offline) return from_cache("offline mode (HF_HUB_OFFLINE)");
  std::string endpoint = options_.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  BITNET_ASSIGN_OR_RETURN(Url url, parse_url(endpoint + "/api/" + std::string(repo_type_plural(options_.repo_type)) +
                                             "/" + repo_id + "/revision/" + percent_encode(revision, "")));
  const std::string what = fmt::format("cannot list the files of {} (revision {})", repo_id, revision);
  for (int hop = 0;; ++hop) {
    HttpRequest request{"GET", url, {}};
    if (!options_.token.empty()) request.headers.set("Authorization", "Bearer " + options_.token);
    auto response = send(request);
    if (!response.ok()) return from_cache(fmt::format("the hub cannot be reached ({})", response.error().message));
    if (is_redirect(*response) && is_relative(response->headers.get("Location")) && hop < kMaxRedirects) {
      BITNET_ASSIGN_OR_RETURN(url, resolve_location(url, response->headers.get("Location")));
      continue;
    }
    if (response->status != 200) return make_error("{}", hub_error_message(*response, what, !options_.token.empty()));
    if (!response->complete) return make_error("{}: {}", what, response->broken_because);
    const auto json = nlohmann::json::parse(response->body, nullptr, false);
    if (!json.is_object() || !json.contains("sha") || !json["sha"].is_string() || !json.contains("siblings") ||
        !json["siblings"].is_array()) {
      return make_error("{}: the answer is not a repository description (no \"sha\" and \"siblings\")", what);
    }
    RepoListing listing;
    listing.commit = json["sha"].get<std::string>();
    if (!is_commit_hash(listing.commit)) return make_error("{}: bad commit '{}'", what, printable(listing.commit));
    for (const auto& sibling : json["siblings"]) {
      if (!sibling.is_object() || !sibling.contains("rfilename") || !sibling["rfilename"].is_string()) {
        return make_error("{}: a sibling without \"rfilename\"", what);
      }
      std::string name = sibling["rfilename"].get<std::string>();
      BITNET_RETURN_IF_ERROR(check_repo_file(name));
      listing.files.push_back(std::move(name));
    }
    std::sort(listing.files.begin(), listing.files.end());
    BITNET_RETURN_IF_ERROR(cache.write_ref(revision, listing.commit));
    return listing;
  }
}

}  // namespace bitnet::hub
