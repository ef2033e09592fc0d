// The huggingface_hub cache layout (see hub_cache.h).
#include "hub/hub_cache.h"

#include "frontend_gguf/output_file.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace bitnet::hub {
namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// Repo paths: relative, '/'-separated, each part a real name.
Status check_path(std::string_view what, std::string_view text) {
  if (text.empty()) return make_error("empty {}", what);
  if (text.size() > 1024) return make_error("{} is too long", what);
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f || c == '\\')
      return make_error("{} '{}' contains a control character or '\\'", what, text);
  }
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find('/', start), text.size());
    const std::string_view part = text.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return make_error("{} '{}' is not a relative path inside the repository", what, text);
    }
    start = end + 1;
  }
  return Status::success();
}

Status make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("cannot create directory '{}': {}", dir.string(), ec.message());
  return Status::success();
}

}  // namespace

Expected<RepoType> parse_repo_type(std::string_view text) {
  if (text == "model") return RepoType::kModel;
  if (text == "dataset") return RepoType::kDataset;
  if (text == "space") return RepoType::kSpace;
  return make_error("unknown repository type '{}' (model, dataset or space)", text);
}

std::string_view repo_type_plural(RepoType type) {
  switch (type) {
    case RepoType::kModel:
      return "models";
    case RepoType::kDataset:
      return "datasets";
    case RepoType::kSpace:
      return "spaces";
  }
  return "models";
}

Status check_repo_id(std::string_view repo_id) {
  auto bad = [&](std::string_view why) {
    return make_error("bad repository id '{}': {} (expected NAME or NAMESPACE/NAME)", repo_id, why);
  };
  if (repo_id.empty() || repo_id.size() > 96) return bad("it must have 1 to 96 characters");
  if (std::count(repo_id.begin(), repo_id.end(), '/') > 1) return bad("more than one '/'");
  if (repo_id.find("--") != std::string_view::npos || repo_id.find("..") != std::string_view::npos) {
    return bad("'--' and '..' are not allowed");
  }
  size_t start = 0;
  while (start <= repo_id.size()) {
    const size_t end = std::min(repo_id.find('/', start), repo_id.size());
    const std::string_view part = repo_id.substr(start, end - start);
    if (part.empty()) return bad("an empty part");
    for (unsigned char c : part) {
      if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.')) return bad("only letters, digits, '-', '_' and '.'");
    }
    if (part.front() == '-' || part.front() == '.' || part.back() == '-' || part.back() == '.') {
      return bad("a part starts or ends with '-' or '.'");
    }
    start = end + 1;
  }
  return Status::success();
}

Status check_repo_file(std::string_view file) {
  return check_path("file name", file);
}
Status check_revision(std::string_view revision) {
  return check_path("revision", revision);
}

bool is_commit_hash(std::string_view revision) {
  return revision.size() == 40 && std::all_of(revision.begin(), revision.end(), [](unsigned char c) {
           return std::isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

Expected<std::string> default_hub_cache_dir() {
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    if (std::string dir = env(name); !dir.empty()) return dir;
  }
  if (std::string home = env("HF_HOME"); !home.empty()) return home + "/hub";
  if (std::string xdg = env("XDG_CACHE_HOME"); !xdg.empty()) return xdg + "/huggingface/hub";
  if (std::string home = env("HOME"); !home.empty()) return home + "/.cache/huggingface/hub";
  return make_error("no hub cache directory: set HF_HUB_CACHE, HF_HOME or HOME");
}

std::string repo_folder_name(RepoType type, std::string_view repo_id) {
  std::string out(repo_type_plural(type));
  size_t start = 0;
  while (start <= repo_id.size()) {
    const size_t end = std::min(repo_id.find('/', start), repo_id.size());
    out += "--";
    out += repo_id.substr(start, end - start);
    start = end + 1;
  }
  return out;
}

HubCache::HubCache(std::string root, RepoType type, std::string repo_id)
    : root_(std::move(root)), folder_(repo_folder_name(type, repo_id)) {}

std::string HubCache::repo_dir() const {
  return root_ + "/" + folder_;
}
std::string HubCache::blob_path(std::string_view etag) const {
  return repo_dir() + "/blobs/" + std::string(etag);
}
std::string HubCache::incomplete_path(std::string_view etag) const {
  return blob_path(etag) + ".incomplete";
}
std::string HubCache::lock_path(std::string_view etag) const {
  return root_ + "/.locks/" + folder_ + "/" + std::string(etag) + ".lock";
}
std::string HubCache::snapshot_path(std::string_view commit, std::string_view file) const {
  return repo_dir() + "/snapshots/" + std::string(commit) + "/" + std::string(file);
}

std::optional<std::string> HubCache::cached_commit(std::string_view revision) const {
  if (is_commit_hash(revision)) return std::string(revision);
  std::ifstream in(repo_dir() + "/refs/" + std::string(revision));
  std::string commit;
  if (!(in >> commit) || !is_commit_hash(commit)) return std::nullopt;
  return commit;
}

Status HubCache::write_ref(std::string_view revision, std::string_view commit) const {
  if (revision == commit) return Status::success();
  if (cached_commit(revision) == std::string(commit)) return Status::success();
  const fs::path ref = fs::path(repo_dir()) / "refs" / std::string(revision);
  BITNET_RETURN_IF_ERROR(make_dirs(ref.parent_path()));
  return gguf::write_output_file(ref.string(), [&](gguf::OutputFile& out) { return out.write(commit); });
}

Status HubCache::link_snapshot(std::string_view commit, std::string_view file, std::string_view etag) const {
  const fs::path link = snapshot_path(commit, file);
  BITNET_RETURN_IF_ERROR(make_dirs(link.parent_path()));
  // snapshots/<commit>/a/b -> ../../../blobs/<etag>: one ".." per directory below the repo folder.
  std::string target = "../../";
  for (char c : file) {
    if (c == '/') target += "../";
  }
  target += "blobs/" + std::string(etag);
  const std::string temp = link.string() + ".tmp." + std::to_string(::getpid());
  ::unlink(temp.c_str());
  if (::symlink(target.c_str(), temp.c_str()) != 0 || ::rename(temp.c_str(), link.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return make_error("cannot link '{}' to its blob: {}", link.string(), std::strerror(error));
  }
  return Status::success();
}

std::optional<std::string> HubCache::cached_file(std::string_view commit, std::string_view file) const {
  const std::string path = snapshot_path(commit, file);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;  // follows the link: a dangling one is absent
  return path;
}

std::vector<std::string> HubCache::snapshot_files(std::string_view commit) const {
  std::vector<std::string> files;
  const fs::path dir = fs::path(repo_dir()) / "snapshots" / std::string(commit);
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (fs::is_regular_file(it->path(), ec)) files.push_back(it->path().lexically_relative(dir).generic_string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace bitnet::hub
