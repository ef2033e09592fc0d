// The cases of ../shared/crossval/index.json (the C++ reference's outputs), for the suites that
// check an engine against them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bitnet::testing {

// A model (the crossval directory and model file stem), a token sequence and, where the
// reference generated from it, its greedy ids and each choice's top-1 minus top-2 logit.
struct CrossvalCase {
  std::string model, seq;
  std::vector<int32_t> tokens, greedy_ids;
  std::vector<double> margins;
  bool has_gen_logits = false;  // <seq>.gen_logits.npy holds the logits of each greedy step
};

std::vector<CrossvalCase> load_crossval_cases(const std::filesystem::path& shared);

}  // namespace bitnet::testing
