// The safetensors reader and the model directory: good files read back exactly; every kind
// of bad file is a clear error naming the problem (never a crash or a silent partial read).
#include "convert/safetensors.h"
#include "convert/checkpoint.h"
#include "convert/checkpoint_writer.h"

#include <gtest/gtest.h>

#include <unistd.h>

namespace bitnet::convert {
namespace {

namespace fs = std::filesystem;
using testing::StEntry;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("bitnet-st-{}-{}", getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) {
    testing::write_file(dir_ / name, bytes);
    return (dir_ / name).string();
  }
  // The error of opening a file holding `bytes` (empty when it opened).
  std::string error_of(const std::vector<uint8_t>& bytes) {
    auto f = SafetensorsFile::open(write("t.safetensors", bytes));
    return f.ok() ? std::string() : f.error().message;
  }
  static std::vector<StEntry> two_tensors() {
    return {{"a", "F32", {2, 3}, testing::f32_bytes({1, 2, 3, 4, 5, 6})},
            {"b", "BF16", {4}, testing::bf16_bytes({1.5f, -2, 0.25f, 8})}};
  }
  fs::path dir_;
};

TEST_F(SafetensorsTest, ReadsTensorsAndMetadata) {
  auto f = SafetensorsFile::open(write("t.safetensors", testing::safetensors_bytes(two_tensors())));
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f->tensors().size(), 2u);
  const StTensor* a = f->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, StDtype::kF32);
  EXPECT_EQ(a->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(a->elements(), 6u);
  float v[6];
  std::memcpy(v, a->data.data(), 24);
  EXPECT_EQ(v[5], 6.0f);
  EXPECT_EQ(f->find("b")->data.size(), 8u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->find("c"), nullptr);
}

TEST_F(SafetensorsTest, TooShortAndTruncatedFilesAreErrors) {
  EXPECT_NE(error_of({1, 2, 3}).find("too short"), std::string::npos);
  auto bytes = testing::safetensors_bytes(two_tensors());
  bytes.resize(bytes.size() - 4);  // the last tensor's end is past the data
  EXPECT_NE(error_of(bytes).find("run past the end of the data"), std::string::npos) << error_of(bytes);
}

TEST_F(SafetensorsTest, HeaderLengthPastTheEndIsAnError) {
  auto bytes = testing::safetensors_bytes(two_tensors());
  bytes[0] = 0xff, bytes[1] = 0xff, bytes[2] = 0x0f;  // ~1 MB header in a ~100-byte file
  EXPECT_NE(error_of(bytes).find("runs past the end of the file"), std::string::npos) << error_of(bytes);
}

TEST_F(SafetensorsTest, HeaderOverTheFormatLimitIsRefusedBeforeParsing) {
  // A header length of 100 MiB (the file is short: the limit is checked first).
  std::vector<uint8_t> bytes(16, ' ');
  const uint64_t n = 100ull << 20;
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(n >> (8 * i));
  EXPECT_NE(error_of(bytes).find("larger than the format's limit"), std::string::npos) << error_of(bytes);
}

TEST_F(SafetensorsTest, OffsetsPastTheEndAreErrors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4000]}})";
  auto bytes = testing::safetensors_bytes({{"a", "F32", {2}, testing::f32_bytes({1, 2})}}, &header);
  EXPECT_NE(error_of(bytes).find("run past the end of the data"), std::string::npos) << error_of(bytes);
}

TEST_F(SafetensorsTest, DtypeAndShapeMismatchesAreErrors) {
  // 8 bytes cannot be 3 F32 values, nor 2 F64 ones... nor an unknown dtype.
  const std::string wrong_shape = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  const std::string wrong_dtype = R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})";
  const std::string unknown = R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})";
  const std::vector<StEntry> data = {{"a", "F32", {2}, testing::f32_bytes({1, 2})}};
  EXPECT_NE(error_of(testing::safetensors_bytes(data, &wrong_shape)).find("expected 12"), std::string::npos);
  EXPECT_NE(error_of(testing::safetensors_bytes(data, &wrong_dtype)).find("expected 16"), std::string::npos);
  EXPECT_NE(error_of(testing::safetensors_bytes(data, &unknown)).find("unknown dtype 'Q4'"), std::string::npos);
}

TEST_F(SafetensorsTest, DuplicateNamesAndOverlapsAreErrors) {
  const std::string duplicate =
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  const std::string overlap =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  const std::vector<StEntry> data = {{"a", "F32", {2}, testing::f32_bytes({1, 2})}};
  EXPECT_NE(error_of(testing::safetensors_bytes(data, &duplicate)).find("'a' appears twice"), std::string::npos);
  EXPECT_NE(error_of(testing::safetensors_bytes(data, &overlap)).find("overlap"), std::string::npos);
}

TEST_F(SafetensorsTest, MalformedHeadersAreErrors) {
  const std::vector<StEntry> data = {{"a", "F32", {2}, testing::f32_bytes({1, 2})}};
  for (const std::string header : {R"({"a":)", R"([1,2])", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                                   R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})",
                                   R"({"a":{"dtype":"F32","shape":[2]}})", R"({"a":5})"}) {
    EXPECT_FALSE(error_of(testing::safetensors_bytes(data, &header)).empty()) << header;
  }
}

TEST_F(SafetensorsTest, ShardedCheckpointReadsEveryShard) {
  testing::write_text(dir_ / "config.json", R"({"architectures":["LlamaForCausalLM"]})");
  write("model-00001-of-00002.safetensors", testing::safetensors_bytes({two_tensors()[0]}));
  write("model-00002-of-00002.safetensors", testing::safetensors_bytes({two_tensors()[1]}));
  testing::write_text(dir_ / "model.safetensors.index.json",
                      R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors",
                          "b":"model-00002-of-00002.safetensors"}})");
  auto c = HfCheckpoint::open(dir_.string());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->tensors().size(), 2u);
  ASSERT_NE(c->find("b"), nullptr);
  EXPECT_EQ(c->find("b")->dtype, StDtype::kBF16);
}

TEST_F(SafetensorsTest, ShardingErrorsAreNamed) {
  testing::write_text(dir_ / "config.json", R"({"architectures":["LlamaForCausalLM"]})");
  write("s1.safetensors", testing::safetensors_bytes({two_tensors()[0]}));
  auto error_with_index = [&](const std::string& index) {
    testing::write_text(dir_ / "model.safetensors.index.json", index);
    auto c = HfCheckpoint::open(dir_.string());
    return c.ok() ? std::string() : c.error().message;
  };
  EXPECT_NE(error_with_index(R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})")
                .find("s2.safetensors is missing"),
            std::string::npos);
  EXPECT_NE(error_with_index(R"({"weight_map":{"a":"s1.safetensors","z":"s1.safetensors"}})").find("'z' is missing"),
            std::string::npos);
  EXPECT_NE(error_with_index(R"({"weight_map":{"a":"../s1.safetensors"}})").find("not a file name"), std::string::npos);
  // The same name in two shards.
  write("s2.safetensors", testing::safetensors_bytes({two_tensors()[0]}));
  EXPECT_NE(error_with_index(R"({"weight_map":{"a":"s1.safetensors","q":"s2.safetensors"}})").find("in both"),
            std::string::npos);
}

TEST_F(SafetensorsTest, DirectoryWithoutConfigOrWeightsIsAnError) {
  auto c = HfCheckpoint::open(dir_.string());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("config.json"), std::string::npos);
  testing::write_text(dir_ / "config.json", "{}");
  c = HfCheckpoint::open(dir_.string());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("neither model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace bitnet::convert
