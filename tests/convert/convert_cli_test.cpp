// `bitnet convert` as a user runs it: a model directory to I2_S and (through the ternary
// retyper) TQ2_0, a GGUF input retyped, compat-check on the results, generation with
// `bitnet run`, and the documented exit codes for bad command lines and bad inputs.
#include "convert/synthetic_checkpoint.h"
#include "frontend_gguf/gguf_file.h"
#include "test_support.h"

#include <gtest/gtest.h>

namespace bitnet::testing {
namespace {

CommandResult bitnet(const std::string& args) {
  return run_command(shell_quote(bitnet_cli().string()) + " " + args);
}
std::string q(const std::filesystem::path& p) {
  return shell_quote(p.string());
}

TEST(ConvertCli, DirectoryToI2sIsCleanAndRuns) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "model", HfLayout::kBitNetMaster);
  auto r = bitnet("convert " + q(dir / "model") + " -o " + q(dir / "m.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("BitNetForCausalLM -> bitnet-b1.58"), std::string::npos) << r.out;
  // compat-check: 1 = warnings only (the I2_S-is-not-upstream warning), never errors.
  r = bitnet("compat-check " + q(dir / "m.gguf"));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("(0 errors"), std::string::npos) << r.out;
  r = bitnet("run -m " + q(dir / "m.gguf") + " -p hello -n 4 --temp 0 --no-cache --backend interp");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("generated 4 tokens"), std::string::npos) << r.err;
}

TEST(ConvertCli, DirectoryToTq2ThenGgufRetypeToTq1) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "model", HfLayout::kBitNetMaster);
  auto r = bitnet("convert " + q(dir / "model") + " -o " + q(dir / "t.gguf") + " --type tq2_0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tq = gguf::GgufFile::open((dir / "t.gguf").string());
  ASSERT_TRUE(tq.ok()) << tq.error().message;
  EXPECT_EQ(tq->find_tensor("blk.0.attn_q.weight")->type, gguf::GgmlType::TQ2_0);
  r = bitnet("compat-check " + q(dir / "t.gguf"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;  // TQ2_0: clean
  // Only the output exists: no temp file is left beside it.
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 2);  // model/, t.gguf

  r = bitnet("convert " + q(dir / "t.gguf") + " -o " + q(dir / "t1.gguf") + " --type tq1_0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tq1 = gguf::GgufFile::open((dir / "t1.gguf").string());
  ASSERT_TRUE(tq1.ok());
  EXPECT_EQ(tq1->find_tensor("blk.1.ffn_down.weight")->type, gguf::GgmlType::TQ1_0);
}

TEST(ConvertCli, UsageErrorsExitWith2) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "model", HfLayout::kLlama);
  EXPECT_EQ(bitnet("convert " + q(dir / "model")).exit_code, 2);  // no -o
  EXPECT_EQ(bitnet("convert " + q(dir / "model") + " -o " + q(dir / "x.gguf") + " --type q4_k").exit_code, 2);
  EXPECT_EQ(bitnet("convert " + q(dir / "model") + " -o " + q(dir / "x.gguf") + " --embedding-type i2_s").exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir / "x.gguf"));
}

TEST(ConvertCli, BadInputsExitWith1AndLlamaDefaultsToF16) {
  TempDir dir;
  write_synthetic_checkpoint(dir / "model", HfLayout::kLlama);
  // Full-precision llama weights cannot become I2_S: bad input.
  auto r = bitnet("convert " + q(dir / "model") + " -o " + q(dir / "x.gguf") + " --type i2_s");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs ternary weights"), std::string::npos) << r.err;
  EXPECT_EQ(bitnet("convert " + q(dir / "missing") + " -o " + q(dir / "x.gguf")).exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir / "x.gguf"));
  // The llama default (f16) works and is clean.
  r = bitnet("convert " + q(dir / "model") + " -o " + q(dir / "x.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(bitnet("compat-check " + q(dir / "x.gguf")).exit_code, 0);
}

}  // namespace
}  // namespace bitnet::testing
