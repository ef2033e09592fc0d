// Helpers of the pass tests: the models every semantic test runs on, interpreting a graph
// over a prompt and a few decode steps, and bit-for-bit comparison of the logits.
#pragma once

#include "frontend_gguf/lowering.h"
#include "reference/interpreter.h"
#include "test_support.h"

#include <cstring>
#include <vector>

namespace bitnet::testing {

// The real small models: the three shared BitNet I2_S models and stories260K (llama, F32).
inline std::vector<std::filesystem::path> semantic_models(const std::filesystem::path& shared) {
  std::vector<std::filesystem::path> out;
  for (const char* name : {"b158-tiny-gqa", "b158-small-gqa", "bitnet-tiny-mha"}) {
    out.push_back(shared / "models/bitnet-i2s" / (std::string(name) + ".i2_s.gguf"));
  }
  out.push_back(source_dir() / "models/stories260K.gguf");
  return out;
}

// Logits of a 7-token prompt (one call, every row) then three single-token decode calls, all
// concatenated: what "the same results" means for a pass.
inline std::vector<float> run_prompt_and_decode(const ir::Graph& graph, const gguf::GgufFile& file,
                                                reference::InterpreterOptions options = {64, 2}) {
  auto interp = reference::Interpreter::create(graph, file, options);
  EXPECT_TRUE(interp.ok()) << interp.error().message;
  if (!interp.ok()) return {};
  std::vector<float> all;
  const auto append = [&](std::span<const int32_t> tokens) {
    auto out = (*interp)->run(tokens);
    EXPECT_TRUE(out.ok()) << out.error().message;
    if (out.ok()) all.insert(all.end(), out->at("logits").data.begin(), out->at("logits").data.end());
  };
  const std::vector<int32_t> prompt = {1, 13, 29, 7, 211, 64, 5};
  append(prompt);
  for (int32_t id : {17, 3, 250}) append(std::span<const int32_t>(&id, 1));
  return all;
}

inline bool bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace bitnet::testing
