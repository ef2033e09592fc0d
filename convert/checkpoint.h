// A Hugging Face model directory: config.json and the weights of `model.safetensors`, or of
// the shards `model.safetensors.index.json` names (its "weight_map": tensor -> shard file).
// Every shard is mapped; a tensor is found by name across all of them.
#pragma once

#include "convert/safetensors.h"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace bitnet::convert {

class HfCheckpoint {
 public:
  // Fails on a missing or invalid config.json, no weights, a shard the index names that is
  // missing or unreadable, a tensor the index places in a shard that does not hold it, and a
  // tensor name found in two shards.
  static Expected<HfCheckpoint> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  // Names in shard order, then header order.
  const std::vector<const StTensor*>& tensors() const { return order_; }
  const StTensor* find(const std::string& name) const;

  // Optional JSON files beside the weights (tokenizer_config.json, generation_config.json, ...):
  // null when absent, an error when present but not valid JSON.
  Expected<nlohmann::json> read_optional_json(const std::string& file_name) const;

 private:
  std::string dir_;
  nlohmann::json config_;
  std::vector<SafetensorsFile> shards_;
  std::vector<const StTensor*> order_;
  std::map<std::string, const StTensor*, std::less<>> by_name_;
};

// Reads a whole small JSON file (config, tokenizer files); refuses files over `max_bytes`.
Expected<nlohmann::json> read_json_file(const std::string& path, uint64_t max_bytes = 1ull << 30);

}  // namespace bitnet::convert
