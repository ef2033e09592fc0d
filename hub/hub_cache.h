// The Hugging Face hub cache on disk, laid out as huggingface_hub lays it out, so that files
// fetched by `bitnet download` are found by Python tools and the other way round:
//
//   <cache>/models--ORG--NAME/blobs/<etag>                 file contents, named by the hub's ETag
//   <cache>/models--ORG--NAME/blobs/<etag>.incomplete      a download in progress (resumed from its size)
//   <cache>/models--ORG--NAME/snapshots/<commit>/<file>    -> ../../blobs/<etag> (relative symlinks)
//   <cache>/models--ORG--NAME/refs/<revision>              the commit a branch or tag last resolved to
//   <cache>/.locks/models--ORG--NAME/<etag>.lock           held while a blob is downloaded
//
// Datasets and spaces use "datasets--" and "spaces--". Names that reach the file system (repo
// ids, file names, revisions, ETags, commits) are checked first: none may climb out of the cache.
#pragma once

#include "ir/support/expected.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::hub {

enum class RepoType { kModel, kDataset, kSpace };
Expected<RepoType> parse_repo_type(std::string_view text);  // model | dataset | space
std::string_view repo_type_plural(RepoType type);           // models | datasets | spaces

// "name" or "namespace/name": letters, digits, '-', '_', '.'; no "--" or ".." (huggingface_hub's rules).
Status check_repo_id(std::string_view repo_id);
// A path inside a repo: '/'-separated, relative, no empty, "." or ".." parts, no control characters.
Status check_repo_file(std::string_view file);
// A branch, tag or commit: like a repo file (a branch may contain '/', as in refs/pr/1).
Status check_revision(std::string_view revision);
bool is_commit_hash(std::string_view revision);  // 40 lower-case hex digits

// $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
Expected<std::string> default_hub_cache_dir();

class HubCache {
 public:
  HubCache(std::string root, RepoType type, std::string repo_id);

  const std::string& root() const { return root_; }
  std::string repo_dir() const;  // <root>/models--ORG--NAME
  std::string blob_path(std::string_view etag) const;
  std::string incomplete_path(std::string_view etag) const;
  std::string lock_path(std::string_view etag) const;
  std::string snapshot_path(std::string_view commit, std::string_view file) const;

  // The commit `revision` names in the cache: itself when it is a commit hash, else the content
  // of refs/<revision>; nullopt when unknown.
  std::optional<std::string> cached_commit(std::string_view revision) const;
  // Records that `revision` resolved to `commit` (nothing for a commit hash; the file is replaced
  // atomically and only when it changed).
  Status write_ref(std::string_view revision, std::string_view commit) const;
  // snapshots/<commit>/<file> -> the blob, as a relative symlink, replacing what was there.
  Status link_snapshot(std::string_view commit, std::string_view file, std::string_view etag) const;
  // The snapshot's file when it exists and leads to a blob (a dangling link counts as absent).
  std::optional<std::string> cached_file(std::string_view commit, std::string_view file) const;
  // Every file of a cached snapshot, as repo paths, sorted.
  std::vector<std::string> snapshot_files(std::string_view commit) const;

 private:
  std::string root_;
  std::string folder_;  // models--ORG--NAME
};

// repo_folder_name: "models--ORG--NAME".
std::string repo_folder_name(RepoType type, std::string_view repo_id);

}  // namespace bitnet::hub
