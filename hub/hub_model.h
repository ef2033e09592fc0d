// `-hf REPO[:FILE]`: the GGUF model a repository names, fetched into the hub cache. Without
// FILE the repository must hold exactly one *.gguf file; otherwise the error lists them.
#pragma once

#include "hub/hub_client.h"

#include <string>

namespace bitnet::hub {

struct ModelSpec {
  std::string repo_id;
  std::string file;  // empty: the repository's only .gguf
};

// "org/name" or "org/name:file.gguf" (checked like the download command's arguments).
Expected<ModelSpec> parse_model_spec(const std::string& text);

// The .gguf file among `files`, or an error naming the repository and the candidates.
Expected<std::string> pick_gguf(const std::string& repo_id, const std::vector<std::string>& files);

// Lists the repository at main when no file is named, then downloads the file.
Expected<CachedFile> fetch_model(HubClient& client, const ModelSpec& spec);

}  // namespace bitnet::hub
