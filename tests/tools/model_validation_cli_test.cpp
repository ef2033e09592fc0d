// Models the engine cannot run are refused by the real binary with the words compat-check uses
// for them: impossible hyper-parameters, I2_S in the ARM packing, and NaN weights (compat-check
// finds them up front; run and eval stop at the first non-finite logits and name the layer).
#include "frontend_gguf/gguf_file.h"
#include "test_support.h"

#include <cmath>
#include <cstring>

namespace bitnet {
namespace {

using testing::cli;
using testing::make_synthetic_model;
using testing::run_command;
using testing::shell_quote;
using testing::SyntheticModelOptions;

class ModelValidationCli : public ::testing::Test {
 protected:
  std::string write(const gguf::GgufWriter& w, const std::string& name) {
    const auto path = (dir_ / name).string();
    auto s = w.write_file_atomic(path);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return shell_quote(path);
  }
  // Plans go to a private cache, so these tests never see (or leave) a plan elsewhere.
  std::string env() const { return "BITNET_CACHE_DIR=" + shell_quote((dir_ / "cache").string()) + " "; }
  testing::TempDir dir_;
};

SyntheticModelOptions llama_f32() {
  SyntheticModelOptions o;
  o.arch = "llama";
  o.weight_type = gguf::GgmlType::F32;
  return o;
}

TEST_F(ModelValidationCli, ContextLengthZeroIsABadHparamForCompatCheckAndRun) {
  auto m = make_synthetic_model(llama_f32());
  m.writer.set("llama.context_length", uint32_t{0});
  const std::string model = write(m.writer, "ctx0.gguf");
  auto c = run_command(cli() + " compat-check " + model);
  EXPECT_EQ(c.exit_code, 2) << c.out;
  EXPECT_NE(c.out.find("bad-hparam"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("llama.context_length is 0"), std::string::npos) << c.out;
  for (const std::string backend : {"jit", "interp"}) {
    auto r = run_command(env() + cli() + " run -m " + model + " -p hello -n 2 --backend " + backend);
    EXPECT_EQ(r.exit_code, 1) << backend << "\n" << r.err;
    EXPECT_NE(r.err.find("error [bad-hparam] llama.context_length is 0"), std::string::npos) << r.err;
  }
  auto e = run_command(env() + cli() + " eval -m " + model + " --teacher-force-ids 1,5,6");
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_NE(e.err.find("error [bad-hparam] llama.context_length is 0"), std::string::npos) << e.err;
}

TEST_F(ModelValidationCli, EveryBadHparamIsListedAndRunRefusesWithTheFirst) {
  auto m = make_synthetic_model(llama_f32());
  m.writer.set("llama.attention.layer_norm_rms_epsilon", INFINITY);
  m.writer.set("llama.rope.freq_base", -1.0f);
  const std::string model = write(m.writer, "eps.gguf");
  auto c = run_command(cli() + " compat-check " + model);
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.out.find("llama.attention.layer_norm_rms_epsilon is inf"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("llama.rope.freq_base is -1"), std::string::npos) << c.out;
  auto r = run_command(env() + cli() + " run -m " + model + " -p hello -n 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error [bad-hparam] llama.attention.layer_norm_rms_epsilon is inf"), std::string::npos) << r.err;
}

TEST_F(ModelValidationCli, ArmPackedI2sIsRefusedByRunEvalAndCompile) {
  SyntheticModelOptions arm;
  arm.n_embd = 192;
  arm.n_head = 3;
  arm.n_head_kv = 3;
  const std::string model = write(make_synthetic_model(arm).writer, "arm.gguf");
  auto c = run_command(cli() + " compat-check " + model);
  EXPECT_EQ(c.exit_code, 2);
  const std::string message =
      "I2_S tensor 'blk.0.ffn_gate.weight' has rows of 192 weights: a multiple of 64 but not 128, so it can only be "
      "the "
      "ARM (NEON, 64-weight block) packing, which this engine does not read";
  EXPECT_NE(c.out.find("i2s-arm-layout"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find(message), std::string::npos) << c.out;
  const std::vector<std::string> commands = {
      " run -m " + model + " -p hello -n 4", " run -m " + model + " -p hello -n 4 --backend interp",
      " eval -m " + model + " --teacher-force-ids 1,5,6",
      " compile -m " + model + " -o " + shell_quote((dir_ / "p").string()), " bench -m " + model + " -p 4 -n 2 -r 1"};
  for (const std::string& command : commands) {
    auto r = run_command(env() + cli() + command);
    EXPECT_EQ(r.exit_code, 1) << command << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find("error [i2s-arm-layout] " + message), std::string::npos) << command << "\n" << r.err;
    EXPECT_EQ(r.out.find("hello"), std::string::npos) << "nothing is generated: " << r.out;
  }
}

TEST_F(ModelValidationCli, NanWeightsAreFoundByCompatCheckAndStopGeneration) {
  auto m = make_synthetic_model(llama_f32());
  const float nan = std::nanf("");
  std::memcpy(m.data("blk.0.ffn_gate.weight").data() + 4 * 1000, &nan, 4);
  const std::string model = write(m.writer, "nan.gguf");
  auto c = run_command(cli() + " compat-check " + model);
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.out.find("non-finite-weight"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("F32 tensor 'blk.0.ffn_gate.weight' holds a non-finite value (nan) at element 1000"),
            std::string::npos)
      << c.out;
  const std::string located =
      "logits are not finite: the first non-finite value appears in %blk0.gate (matmul with blk.0.ffn_gate.weight) "
      "of layer 0 (blk.0)";
  const std::string weight_note = "the weight 'blk.0.ffn_gate.weight' itself holds a non-finite value at element 1000";
  const std::vector<std::string> commands = {" run -m " + model + " -p hello -n 8 --greedy",
                                             " run -m " + model + " -p hello -n 8 --backend interp",
                                             " eval -m " + model + " --teacher-force-ids 1,5,6,7",
                                             " eval -m " + model + " --teacher-force-ids 1,5,6,7 --mode decode"};
  for (const std::string& command : commands) {
    auto r = run_command(env() + cli() + command + " --no-cache");
    EXPECT_EQ(r.exit_code, 1) << command << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find(located), std::string::npos) << command << "\n" << r.err;
    EXPECT_NE(r.err.find(weight_note), std::string::npos) << command << "\n" << r.err;
  }
}

TEST_F(ModelValidationCli, InfinityInANormIsRefusedAtLoad) {
  auto m = make_synthetic_model(llama_f32());
  const float inf = INFINITY;
  std::memcpy(m.data("blk.0.ffn_norm.weight").data() + 4 * 3, &inf, 4);
  const std::string model = write(m.writer, "inf.gguf");
  auto r = run_command(env() + cli() + " run -m " + model + " -p hello -n 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error [non-finite-weight] F32 tensor 'blk.0.ffn_norm.weight' holds a non-finite value (inf) "
                       "at element 3"),
            std::string::npos)
      << r.err;
}

// Tensor data off general.alignment: compat-check's misaligned-tensor, and run names it alike.
TEST_F(ModelValidationCli, MisalignedTensorDataIsNamedAsCompatCheckNamesIt) {
  auto m = make_synthetic_model(llama_f32());
  const std::string aligned = (dir_ / "aligned.gguf").string();
  ASSERT_TRUE(m.writer.write_file_atomic(aligned).ok());
  // Move the last tensor 4 bytes on (into 32 bytes appended to the file): a valid file
  // otherwise, which the writer cannot produce.
  auto bytes = testing::read_file(aligned);
  auto file = gguf::GgufFile::parse(bytes);
  ASSERT_TRUE(file.ok());
  const gguf::TensorInfo& last = file->tensors().back();
  const uint64_t offset_at = last.info_offset + 8 + last.name.size() + 4 + 8 * last.ne.size() + 4;
  uint64_t offset = 0;
  std::memcpy(&offset, bytes.data() + offset_at, 8);
  ASSERT_EQ(offset, last.offset);
  offset += 4;
  std::memcpy(bytes.data() + offset_at, &offset, 8);
  bytes.resize(bytes.size() + 32, 0);
  testing::write_file(dir_ / "mis.gguf", bytes);
  const std::string model = shell_quote((dir_ / "mis.gguf").string());
  auto c = run_command(cli() + " compat-check " + model);
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.out.find("misaligned-tensor"), std::string::npos) << c.out;
  auto r = run_command(env() + cli() + " run -m " + model + " -p hello -n 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error [misaligned-tensor] 1 tensors start at offsets that are not multiples of "
                       "general.alignment = 32"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace bitnet
