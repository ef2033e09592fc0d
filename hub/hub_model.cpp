// Choosing and fetching a repository's GGUF file (see hub_model.h).
#include "hub/hub_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>

namespace bitnet::hub {

Expected<ModelSpec> parse_model_spec(const std::string& text) {
  const size_t colon = text.find(':');
  ModelSpec spec{text.substr(0, colon), colon == std::string::npos ? "" : text.substr(colon + 1)};
  BITNET_RETURN_IF_ERROR(check_repo_id(spec.repo_id));
  if (colon != std::string::npos) BITNET_RETURN_IF_ERROR(check_repo_file(spec.file));
  return spec;
}

Expected<std::string> pick_gguf(const std::string& repo_id, const std::vector<std::string>& files) {
  std::vector<std::string> ggufs;
  for (const auto& f : files) {
    std::string lower = f;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower.size() > 5 && lower.ends_with(".gguf")) ggufs.push_back(f);
  }
  if (ggufs.size() == 1) return ggufs.front();
  if (ggufs.empty()) return make_error("{} has no .gguf file (files: {})", repo_id, fmt::join(files, ", "));
  return make_error("{} has {} .gguf files: {}; choose one with -hf {}:FILE", repo_id, ggufs.size(),
                    fmt::join(ggufs, ", "), repo_id);
}

Expected<CachedFile> fetch_model(HubClient& client, const ModelSpec& spec) {
  std::string file = spec.file;
  std::string revision = "main";
  if (file.empty()) {
    BITNET_ASSIGN_OR_RETURN(RepoListing listing, client.list_files(spec.repo_id, revision));
    BITNET_ASSIGN_OR_RETURN(file, pick_gguf(spec.repo_id, listing.files));
    revision = listing.commit;  // the file of the commit that was listed
  }
  return client.download(spec.repo_id, file, revision);
}

}  // namespace bitnet::hub
