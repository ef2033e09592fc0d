// Helpers shared by the test suites: where ../shared and the repo are, temporary
// directories, running the CLI, and small synthetic GGUF models.
#pragma once

#include "frontend_gguf/gguf_writer.h"
#include "frontend_gguf/model_generator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace bitnet::testing {

// ../shared next to the checkout (or $BITNET_SHARED_DIR); nullopt when absent, which also
// fails the current test when CI is set (CI=true): there the set is always present, so a
// test that skips or trims its checks without it would pass without checking anything.
std::optional<std::filesystem::path> shared_dir();
std::filesystem::path source_dir();
std::filesystem::path binary_dir();
std::filesystem::path bitnet_cli();  // build/bin/bitnet
// For run_command lines: bitnet_cli() and the repo's models/stories260K.gguf, shell-quoted.
std::string cli();
std::string stories();

// Skips the current test with a clear message when ../shared is absent (a failure under CI).
#define BITNET_REQUIRE_SHARED(var)                                                         \
  auto var##_opt = ::bitnet::testing::shared_dir();                                        \
  if (!var##_opt) GTEST_SKIP() << "../shared is absent (set BITNET_SHARED_DIR); skipping"; \
  const std::filesystem::path var = *var##_opt

// Every *.gguf under shared/models (recursively), sorted; fewer than kMinSharedGgufFiles fails
// the calling test.
inline constexpr size_t kMinSharedGgufFiles = 14;
std::vector<std::filesystem::path> shared_gguf_files(const std::filesystem::path& shared);

// A fresh temporary directory removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::vector<uint8_t> read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::vector<uint8_t>& bytes);

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs a command line through /bin/sh; exit_code is the process status (128+signal when killed).
CommandResult run_command(const std::string& command_line);
std::string shell_quote(const std::string& s);

}  // namespace bitnet::testing

namespace bitnet::testing {

// A small, valid model built in memory by the model generator (gguf::build_model): the
// architecture's full tensor set, a synthetic tokenizer, and the writer, to break on purpose
// before writing. Smaller defaults than the generator's presets.
struct SyntheticModelOptions {
  std::string arch = "bitnet-b1.58";
  uint32_t n_embd = 128;
  uint32_t n_ff = 256;
  uint32_t n_head = 4;
  uint32_t n_head_kv = 2;
  uint32_t n_layer = 1;
  uint32_t n_vocab = 300;
  gguf::GgmlType weight_type = gguf::GgmlType::I2_S;
  std::string tokenizer_model = "llama";  // or "gpt2" (adds merges)
  uint32_t seed = 1;
};

using SyntheticModel = gguf::GeneratedModel;
SyntheticModel make_synthetic_model(const SyntheticModelOptions& options = {});
// Random tensor bytes of the right size; I2_S data gets valid codes and a positive scale.
std::vector<uint8_t> random_tensor_data(gguf::GgmlType type, const std::vector<uint64_t>& ne, uint32_t seed);

// Largest single operator-new request since the last reset (tests assert that hostile
// files cannot make the reader allocate a lot).
void reset_peak_allocation();
size_t peak_allocation();

}  // namespace bitnet::testing
