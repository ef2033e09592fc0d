// Writer -> reader round trips: every metadata value type (arrays of arrays too) and
// every tensor type, bit for bit.
#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/gguf_writer.h"

#include "test_support.h"

#include <cmath>
#include <limits>

namespace bitnet::gguf {
namespace {

using testing::random_tensor_data;

GgufWriter writer_with_every_value_type() {
  GgufWriter w;
  w.set("u8", uint8_t{250});
  w.set("i8", int8_t{-7});
  w.set("u16", uint16_t{65000});
  w.set("i16", int16_t{-32000});
  w.set("u32", uint32_t{4000000000u});
  w.set("i32", int32_t{-2000000000});
  w.set("f32", 1.5f);
  w.set("f32.nan", std::numeric_limits<float>::quiet_NaN());
  w.set("f32.denormal", std::numeric_limits<float>::denorm_min());
  w.set("bool.true", true);
  w.set("bool.false", false);
  w.set("string", std::string("héllo \0 world", 14));
  w.set("string.empty", std::string());
  w.set("u64", uint64_t{18000000000000000000ull});
  w.set("i64", int64_t{-9000000000000000000ll});
  w.set("f64", -2.25e300);
  w.set("array.u8", Array::of(std::vector<uint8_t>{1, 2, 255}));
  w.set("array.i8", Array::of(std::vector<int8_t>{-128, 0, 127}));
  w.set("array.u16", Array::of(std::vector<uint16_t>{0, 65535}));
  w.set("array.i16", Array::of(std::vector<int16_t>{-32768, 32767}));
  w.set("array.u32", Array::of(std::vector<uint32_t>{7, 4294967295u}));
  w.set("array.i32", Array::of(std::vector<int32_t>{-1, 1}));
  w.set("array.f32", Array::of(std::vector<float>{0.5f, -0.0f, std::numeric_limits<float>::infinity()}));
  w.set("array.bool", Array::of(std::vector<bool>{true, false, true}));
  w.set("array.u64", Array::of(std::vector<uint64_t>{0, ~uint64_t{0}}));
  w.set("array.i64", Array::of(std::vector<int64_t>{std::numeric_limits<int64_t>::min()}));
  w.set("array.f64", Array::of(std::vector<double>{1e-300, 3.0}));
  w.set("array.string", Array::of_strings({"a", "", "ccc"}));
  w.set("array.empty", Array::of(std::vector<int32_t>{}));
  Array inner1 = Array::of(std::vector<int32_t>{1, 2});
  Array inner2 = Array::of_strings({"x"});
  Array nested;
  nested.elem_type = ValueType::Array;
  nested.arrays = {inner1, inner2};
  Array nested2;
  nested2.elem_type = ValueType::Array;
  nested2.arrays = {nested, Array::of(std::vector<float>{})};
  w.set("array.of.arrays", nested);
  w.set("array.of.arrays.of.arrays", nested2);
  return w;
}

bool same_bits(const Value& a, const Value& b) {
  // Value::operator== compares floats by value (NaN != NaN); compare the encoded bytes.
  GgufWriter wa, wb;
  wa.set("k", a);
  wb.set("k", b);
  return *wa.to_bytes() == *wb.to_bytes();
}

TEST(GgufRoundTrip, EveryValueType) {
  const GgufWriter w = writer_with_every_value_type();
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  auto file = GgufFile::parse(*bytes);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->version(), 3u);
  ASSERT_EQ(file->metadata().size(), w.metadata().size());
  for (size_t i = 0; i < w.metadata().size(); ++i) {
    const auto& want = w.metadata()[i];
    const auto& got = file->metadata()[i];
    EXPECT_EQ(got.key, want.key);
    EXPECT_EQ(got.value.type(), want.value.type()) << want.key;
    EXPECT_TRUE(same_bits(got.value, want.value)) << want.key;
  }
  EXPECT_EQ(*file->find("u32")->as_uint(), 4000000000u);
  EXPECT_EQ(*file->find("i64")->as_int(), -9000000000000000000ll);
  EXPECT_TRUE(std::isnan(*file->get_float("f32.nan")));
  EXPECT_EQ(file->get_string("string")->size(), 14u);
  const Array* nested = file->get_array("array.of.arrays.of.arrays");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->arrays[0].arrays[1].strings[0], "x");
  // Re-writing what was read gives the same bytes.
  auto again = GgufWriter::from_file(*file).to_bytes();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *bytes);
}

TEST(GgufRoundTrip, EveryTensorTypeBitForBit) {
  std::vector<std::vector<uint8_t>> buffers;
  buffers.reserve(64);
  GgufWriter w;
  w.set("general.architecture", std::string("test"));
  uint32_t seed = 1;
  for (const auto& row : ggml_type_table()) {
    if (row.size_rule == SizeRule::kNotInFile) continue;
    // Shapes valid for every type: 256-multiples along ne[0] (TL2 needs >= 256).
    std::vector<uint64_t> ne = {512, 3};
    if (row.size_rule == SizeRule::kBlocks && row.block_size == 1) ne = {17, 5, 2};
    buffers.push_back(random_tensor_data(row.type, ne, seed++));
    auto s = w.add_tensor({fmt::format("t.{}", row.name), row.type, ne, buffers.back()});
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  auto file = GgufFile::parse(*bytes);
  ASSERT_TRUE(file.ok()) << file.error().message;
  ASSERT_EQ(file->tensors().size(), w.tensors().size());
  for (size_t i = 0; i < w.tensors().size(); ++i) {
    const auto& want = w.tensors()[i];
    const auto& got = file->tensors()[i];
    EXPECT_EQ(got.name, want.name);
    EXPECT_EQ(got.type, want.type);
    EXPECT_EQ(got.ne, want.ne);
    EXPECT_EQ(got.offset % 32, 0u);
    ASSERT_EQ(got.data.size(), want.data.size()) << want.name;
    EXPECT_TRUE(std::equal(got.data.begin(), got.data.end(), want.data.begin())) << want.name;
    // Zero-copy: the view points into the parsed bytes.
    EXPECT_GE(got.data.data(), bytes->data());
    EXPECT_LE(got.data.data() + got.data.size(), bytes->data() + bytes->size());
  }
  EXPECT_EQ(bytes->size() % 32, 0u);
}

TEST(GgufRoundTrip, CustomAlignment) {
  std::vector<uint8_t> a(24, 1), b(8, 2);
  GgufWriter w;
  w.set("general.alignment", uint32_t{64});
  ASSERT_TRUE(w.add_tensor({"a", GgmlType::F32, {6}, a}).ok());
  ASSERT_TRUE(w.add_tensor({"b", GgmlType::F16, {4}, b}).ok());
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok());
  auto file = GgufFile::parse(*bytes);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(file->data_offset() % 64, 0u);
  EXPECT_EQ(file->find_tensor("b")->offset, 64u);
}

TEST(GgufRoundTrip, WriterRejectsInconsistentTensors) {
  std::vector<uint8_t> data(10);
  GgufWriter w;
  EXPECT_FALSE(w.add_tensor({"x", GgmlType::F32, {4}, data}).ok());    // needs 16 bytes
  EXPECT_FALSE(w.add_tensor({"q", GgmlType::Q8_0, {10}, data}).ok());  // 10 not a multiple of 32
  EXPECT_FALSE(w.add_tensor({"s", GgmlType::I8_S, {10}, data}).ok());  // never in files
  std::vector<uint8_t> ok(16);
  EXPECT_TRUE(w.add_tensor({"x", GgmlType::F32, {4}, ok}).ok());
  EXPECT_FALSE(w.add_tensor({"x", GgmlType::F32, {4}, ok}).ok());  // duplicate
  w.set("general.alignment", uint32_t{48});                        // not a power of two
  EXPECT_FALSE(w.to_bytes().ok());
  w.set("general.alignment", uint64_t{64});  // must be u32
  EXPECT_FALSE(w.to_bytes().ok());
}

// The writer refuses tensor names the GGUF spec (and every reader) refuses: over 64 bytes.
TEST(GgufRoundTrip, WriterRejectsTensorNamesOver64Bytes) {
  const std::vector<uint8_t> data(32, 0);
  GgufWriter w;
  auto ok = w.add_tensor({std::string(64, 'a'), GgmlType::F32, {8}, data});
  EXPECT_TRUE(ok.ok()) << ok.error().message;
  auto bad = w.add_tensor({std::string(65, 'b'), GgmlType::F32, {8}, data});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("65 bytes; GGUF allows at most 64"), std::string::npos) << bad.error().message;
  EXPECT_EQ(w.tensors().size(), 1u);
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok());
  EXPECT_TRUE(GgufFile::parse(*bytes).ok());
}

TEST(GgufRoundTrip, AtomicFileWrite) {
  testing::TempDir dir;
  GgufWriter w = writer_with_every_value_type();
  const auto path = dir / "out.gguf";
  ASSERT_TRUE(w.write_file_atomic(path.string()).ok());
  auto file = GgufFile::open(path.string());
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->metadata().size(), w.metadata().size());
  // No temporary files are left behind.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1u);
  // A directory that does not exist fails cleanly.
  EXPECT_FALSE(w.write_file_atomic((dir / "missing/out.gguf").string()).ok());
}

// Real files written by llama.cpp/gguf-py read back and re-write to identical bytes.
TEST(GgufRoundTrip, SharedModelsRewriteIdentically) {
  BITNET_REQUIRE_SHARED(shared);
  const auto files = testing::shared_gguf_files(shared);
  ASSERT_GE(files.size(), testing::kMinSharedGgufFiles);
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    auto file = GgufFile::open(path.string());
    ASSERT_TRUE(file.ok()) << file.error().message;
    auto bytes = GgufWriter::from_file(*file).to_bytes();
    ASSERT_TRUE(bytes.ok()) << bytes.error().message;
    ASSERT_EQ(bytes->size(), file->file_size());
    // I2_S trailers hold leftover bytes (spec 6) but they are tensor data, so they round-trip too.
    EXPECT_TRUE(std::equal(bytes->begin(), bytes->end(), file->bytes().begin()));
  }
}

}  // namespace
}  // namespace bitnet::gguf
