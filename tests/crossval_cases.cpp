#include "crossval_cases.h"

#include <nlohmann/json.hpp>

#include <fstream>

namespace bitnet::testing {

std::vector<CrossvalCase> load_crossval_cases(const std::filesystem::path& shared) {
  std::ifstream in(shared / "crossval/index.json");
  const auto index = nlohmann::json::parse(in);
  std::vector<CrossvalCase> cases;
  for (const auto& c : index["cases"]) {
    CrossvalCase x;
    x.model = c["model"].get<std::string>();
    x.seq = c["sequence"].get<std::string>();
    x.tokens = index["sequences"][x.seq].get<std::vector<int32_t>>();
    x.has_gen_logits = c.contains("gen_logits");
    if (c.contains("greedy_ids")) {
      x.greedy_ids = c["greedy_ids"].get<std::vector<int32_t>>();
      x.margins = c["greedy_top2_margin"].get<std::vector<double>>();
    }
    cases.push_back(std::move(x));
  }
  return cases;
}

}  // namespace bitnet::testing
