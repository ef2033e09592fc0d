// Hugging Face model directories (see checkpoint.h).
#include "convert/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace bitnet::convert {
namespace fs = std::filesystem;
using nlohmann::json;

Expected<json> read_json_file(const std::string& path, uint64_t max_bytes) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return make_error("cannot read {}: {}", path, ec.message());
  if (size > max_bytes)
    return make_error("{} is {} bytes, more than the {} this reader accepts", path, size, max_bytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot open {}", path);
  std::ostringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("{} is not valid JSON", path);
  return j;
}

Expected<HfCheckpoint> HfCheckpoint::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return make_error("{} is not a directory", dir);
  HfCheckpoint c;
  c.dir_ = dir;
  const fs::path root(dir);
  if (!fs::exists(root / "config.json", ec)) return make_error("{} has no config.json", dir);
  BITNET_ASSIGN_OR_RETURN(c.config_, read_json_file((root / "config.json").string()));
  if (!c.config_.is_object()) return make_error("{}/config.json is not a JSON object", dir);

  // Which files hold the weights, and which tensor each shard must hold.
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  const fs::path index = root / "model.safetensors.index.json";
  if (fs::exists(index, ec)) {
    BITNET_ASSIGN_OR_RETURN(json j, read_json_file(index.string()));
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      return make_error("{}: no \"weight_map\" object", index.string());
    std::set<std::string> seen;
    for (const auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string()) return make_error("{}: the shard of '{}' is not a string", index.string(), tensor);
      const std::string name = file.get<std::string>();
      // A shard is a plain file name beside the index, never a path out of the directory.
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        return make_error("{}: shard name '{}' is not a file name in the model directory", index.string(), name);
      weight_map[tensor] = name;
      if (seen.insert(name).second) files.push_back(name);
    }
    if (files.empty()) return make_error("{}: the weight map is empty", index.string());
  } else if (fs::exists(root / "model.safetensors", ec)) {
    files.push_back("model.safetensors");
  } else {
    return make_error("{} has neither model.safetensors nor model.safetensors.index.json", dir);
  }

  c.shards_.reserve(files.size());
  for (const auto& file : files) {
    const fs::path path = root / file;
    if (!fs::exists(path, ec)) return make_error("shard {} is missing (named by the index)", path.string());
    BITNET_ASSIGN_OR_RETURN(SafetensorsFile shard, SafetensorsFile::open(path.string()));
    c.shards_.push_back(std::move(shard));
  }
  for (const auto& shard : c.shards_) {
    for (const auto& t : shard.tensors()) {
      auto [it, inserted] = c.by_name_.emplace(t.name, &t);
      if (!inserted) return make_error("tensor '{}' is in both {} and {}", t.name, it->second->file, t.file);
      c.order_.push_back(&t);
    }
  }
  for (const auto& [tensor, file] : weight_map) {
    auto it = c.by_name_.find(tensor);
    if (it == c.by_name_.end())
      return make_error("tensor '{}' is missing: the index places it in {}, which does not hold it", tensor, file);
    if (fs::path(it->second->file).filename() != file)
      return make_error("tensor '{}' is in {}, but the index places it in {}", tensor, it->second->file, file);
  }
  return c;
}

const StTensor* HfCheckpoint::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

Expected<json> HfCheckpoint::read_optional_json(const std::string& file_name) const {
  const fs::path path = fs::path(dir_) / file_name;
  std::error_code ec;
  if (!fs::exists(path, ec)) return json();
  return read_json_file(path.string());
}

}  // namespace bitnet::convert
