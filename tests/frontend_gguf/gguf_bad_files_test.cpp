// Hostile and broken GGUF files: every failure class must give a clean error that
// names the problem, never a crash, and never a large allocation.
#include "frontend_gguf/gguf_file.h"

#include "test_support.h"

namespace bitnet::gguf {
namespace {

// Builds GGUF bytes field by field, including fields no valid writer would produce.
class Raw {
 public:
  Raw& u8(uint8_t v) { return put(&v, 1); }
  Raw& u32(uint32_t v) { return put(&v, 4); }
  Raw& u64(uint64_t v) { return put(&v, 8); }
  Raw& f32(float v) { return put(&v, 4); }
  Raw& str(std::string_view s) {
    u64(s.size());
    return put(s.data(), s.size());
  }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    put("GGUF", 4);
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  Raw& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  Raw& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  Raw& pad_to(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Raw& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
  std::vector<uint8_t> b;

 private:
  Raw& put(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
};

// Parses `bytes`, expects failure with `needle` in the message and a small peak allocation.
void expect_rejected(const std::vector<uint8_t>& bytes, std::string_view needle) {
  testing::reset_peak_allocation();
  auto file = GgufFile::parse(bytes);
  const size_t peak = testing::peak_allocation();
  ASSERT_FALSE(file.ok()) << "accepted a bad file; expected error containing: " << needle;
  EXPECT_NE(file.error().message.find(needle), std::string::npos)
      << "message: " << file.error().message << "\nexpected to contain: " << needle;
  EXPECT_LT(peak, size_t{1} << 20) << "a " << bytes.size() << "-byte file made the reader allocate " << peak
                                   << " bytes at once";
}

// A valid file with two F32 tensors of 8 elements, for mutation tests.
Raw valid_two_tensors(uint64_t offset_a = 0, uint64_t offset_b = 32) {
  Raw r;
  r.header(2, 1).kv_u32("general.alignment", 32);
  r.tensor("a", {8}, 0, offset_a).tensor("b", {8}, 0, offset_b).pad_to(32).zeros(64);
  return r;
}

TEST(GgufBadFiles, ValidBaseParses) {
  auto r = valid_two_tensors();
  auto file = GgufFile::parse(r.b);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->tensors().size(), 2u);
}

TEST(GgufBadFiles, Magic) {
  expect_rejected({}, "too short");
  expect_rejected({'G', 'G'}, "too short");
  Raw r;
  r.u32(0x58554747).u32(3).u64(0).u64(0);  // "GGUX"
  expect_rejected(r.b, "bad magic");
}

TEST(GgufBadFiles, Versions) {
  expect_rejected(Raw().header(0, 0, 1).b, "version 1");
  expect_rejected(Raw().header(0, 0, 4).b, "unsupported GGUF version 4");
  expect_rejected(Raw().header(0, 0, 0xffffffffu).b, "unsupported GGUF version 4294967295");
  expect_rejected(Raw().header(0, 0, 0x03000000).b, "big-endian");
  expect_rejected(Raw().u32(0x46554747).b, "version");         // ends after the magic
  EXPECT_TRUE(GgufFile::parse(Raw().header(0, 0, 2).b).ok());  // v2 is fine
}

TEST(GgufBadFiles, HugeCounts) {
  expect_rejected(Raw().header(~uint64_t{0}, 0).b, "tensor count");
  expect_rejected(Raw().header(0, ~uint64_t{0}).b, "metadata count");
  expect_rejected(Raw().header(uint64_t{1} << 62, 1).b, "tensor count");
  expect_rejected(Raw().header(0, 3).kv_u32("a", 1).b, "metadata count 3");
  // Fewer entries than announced, with enough bytes left to pass the count check.
  expect_rejected(Raw().header(0, 2).kv_u32("a", 1).u64(100).zeros(3).b, "key of metadata entry #1");
}

TEST(GgufBadFiles, StringLengths) {
  // (Each file carries a few spare bytes so that the up-front count check passes.)
  expect_rejected(Raw().header(0, 1).u64(1000).zeros(8).b, "runs past the end");  // key length past EOF
  expect_rejected(Raw().header(0, 1).u64(~uint64_t{0}).zeros(8).b, "exceeds the limit");
  expect_rejected(Raw().header(0, 1).str("k").u32(8).u64(uint64_t{1} << 40).b, "value of 'k'");
  expect_rejected(Raw().header(0, 1).str("k").u32(8).u64(5).b, "runs past the end");
  expect_rejected(Raw().header(0, 1).str("").u32(4).u32(1).b, "empty key");
}

TEST(GgufBadFiles, ValueTypes) {
  expect_rejected(Raw().header(0, 1).str("k").u32(13).u32(0).b, "invalid value type 13");
  expect_rejected(Raw().header(0, 1).str("k").u32(0xffffffff).zeros(2).b, "invalid value type");
  expect_rejected(Raw().header(0, 1).str("k").u32(9).u32(99).u64(0).b, "invalid array element type 99");
  expect_rejected(Raw().header(0, 1).str("k").u32(7).u8(2).b, "bool byte is 2");
  expect_rejected(Raw().header(0, 1).str("key").u32(10).u32(0).b, "value of 'key'");  // u64 cut short
}

TEST(GgufBadFiles, HugeArrays) {
  expect_rejected(Raw().header(0, 1).str("k").u32(9).u32(4).u64(uint64_t{1} << 61).b, "array count");
  expect_rejected(Raw().header(0, 1).str("k").u32(9).u32(8).u64(~uint64_t{0}).b, "array count");
  expect_rejected(Raw().header(0, 1).str("k").u32(9).u32(9).u64(uint64_t{1} << 59).b, "array count");
  // A count that fits the file but exceeds the total element limit.
  ParseOptions tight;
  tight.max_array_elements = 4;
  Raw r;
  r.header(0, 1).str("k").u32(9).u32(0).u64(8).zeros(8);
  auto file = GgufFile::parse(r.b, tight);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message.find("exceeds the limit"), std::string::npos);
}

TEST(GgufBadFiles, NestedArrayBomb) {
  // 200 levels of array-of-one-array: rejected at the depth limit, not by recursion overflow.
  Raw r;
  r.header(0, 1).str("bomb").u32(9);
  for (int i = 0; i < 200; ++i) r.u32(9).u64(1);
  r.u32(0).u64(0);
  expect_rejected(r.b, "nested deeper than");
  // Wide nesting: many empty inner arrays is bounded by the nested-array limit.
  ParseOptions tight;
  tight.max_nested_arrays = 10;
  Raw w;
  w.header(0, 1).str("wide").u32(9).u32(9).u64(100);
  for (int i = 0; i < 100; ++i) w.u32(0).u64(0);
  auto file = GgufFile::parse(w.b, tight);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message.find("nested arrays"), std::string::npos);
  EXPECT_TRUE(GgufFile::parse(w.b).ok());  // within the default limits it is a valid (odd) file
}

TEST(GgufBadFiles, DuplicateKeysAndNames) {
  expect_rejected(Raw().header(0, 2).kv_u32("k", 1).kv_u32("k", 2).b, "duplicate key 'k'");
  Raw r;
  r.header(2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad_to(32).zeros(64);
  expect_rejected(r.b, "duplicate tensor name 't'");
  Raw e;
  e.header(1, 0).tensor("", {8}, 0, 0).pad_to(32).zeros(32);
  expect_rejected(e.b, "empty name");
}

// The GGUF spec limits tensor names to 64 bytes.
TEST(GgufBadFiles, TensorNameLongerThan64Bytes) {
  const std::string longest(64, 'n');
  Raw ok;
  ok.header(1, 0).tensor(longest, {8}, 0, 0).pad_to(32).zeros(32);
  auto file = GgufFile::parse(ok.b);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->tensors()[0].name, longest);
  Raw bad;
  bad.header(1, 0).tensor(longest + "x", {8}, 0, 0).pad_to(32).zeros(32);
  expect_rejected(bad.b, "name of tensor #0 at offset 24: length 65 exceeds the limit of 64 bytes");
  // A caller cannot raise the spec's limit.
  ParseOptions lax;
  lax.max_tensor_name_bytes = 4096;
  EXPECT_FALSE(GgufFile::parse(bad.b, lax).ok());
}

TEST(GgufBadFiles, Alignment) {
  for (uint32_t a : {0u, 3u, 48u, 0x80000001u}) {
    Raw r;
    r.header(0, 1).kv_u32("general.alignment", a);
    expect_rejected(r.b, "power of two");
  }
  Raw wrong_type;
  wrong_type.header(0, 1).str("general.alignment").u32(10).u64(32);
  expect_rejected(wrong_type.b, "expected u32");
  Raw ok;
  ok.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {16}, 0, 0).pad_to(64).zeros(64);
  auto file = GgufFile::parse(ok.b);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->data_offset() % 64, 0u);
}

TEST(GgufBadFiles, TensorOffsets) {
  expect_rejected(valid_two_tensors(0, 40).b, "not a multiple of the alignment 32");
  expect_rejected(valid_two_tensors(0, 64).b, "runs past the end");
  expect_rejected(valid_two_tensors(0, ~uint64_t{0} - 31).b, "runs past the end");
  Raw overlap;
  overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad_to(32).zeros(96);
  expect_rejected(overlap.b, "overlaps");
  // Misaligned offsets are accepted only when asked for (compat-check diagnoses them).
  ParseOptions lenient;
  lenient.allow_misaligned_tensors = true;
  auto file = GgufFile::parse(valid_two_tensors(0, 40).b, lenient);
  ASSERT_FALSE(file.ok());  // 40 + 32 runs past the 64 data bytes
  Raw r;
  r.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 40).pad_to(32).zeros(80);
  auto relaxed = GgufFile::parse(r.b, lenient);
  ASSERT_TRUE(relaxed.ok()) << relaxed.error().message;
  EXPECT_EQ(relaxed->misaligned_tensor_count(), 1u);
  // Data section start past the end of a file with tensors.
  Raw no_data;
  no_data.header(1, 0).tensor("a", {8}, 0, 0);
  expect_rejected(no_data.b, "past the end of the file");
}

TEST(GgufBadFiles, Dimensions) {
  Raw overflow;
  overflow.header(1, 0).tensor("t", {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0).pad_to(32).zeros(32);
  expect_rejected(overflow.b, "overflow");
  Raw huge;
  huge.header(1, 0).tensor("t", {~uint64_t{0}}, 0, 0).pad_to(32).zeros(32);
  expect_rejected(huge.b, "too large");
  Raw zero_dims;
  zero_dims.header(1, 0).str("t").u32(0).u32(0).u64(0).pad_to(32).zeros(32);
  expect_rejected(zero_dims.b, "n_dims 0");
  Raw five_dims;
  five_dims.header(1, 0).tensor("t", {1, 1, 1, 1, 1}, 0, 0).pad_to(32).zeros(32);
  expect_rejected(five_dims.b, "n_dims 5");
  Raw big_dims;
  big_dims.header(1, 0).str("t").u32(0xffffffff).b.resize(big_dims.b.size() + 64);
  expect_rejected(big_dims.b, "n_dims 4294967295");
  Raw empty;
  empty.header(1, 0).tensor("t", {0}, 0, 0).pad_to(32).zeros(32);
  expect_rejected(empty.b, "is 0");
  Raw block;
  block.header(1, 0).tensor("t", {33}, 8, 0).pad_to(32).zeros(64);  // Q8_0 needs ne[0] % 32 == 0
  expect_rejected(block.b, "block size 32");
}

TEST(GgufBadFiles, TensorTypes) {
  for (uint32_t id : {4u, 5u, 40u, 1000u, 0xffffffffu}) {
    Raw r;
    r.header(1, 0).tensor("blk.0.attn_q.weight", {32}, id, 0).pad_to(32).zeros(256);
    expect_rejected(r.b, fmt::format("tensor 'blk.0.attn_q.weight': unknown ggml type id {}", id));
  }
  Raw i8s;
  i8s.header(1, 0).tensor("x", {32}, 37, 0).pad_to(32).zeros(64);
  expect_rejected(i8s.b, "never valid in a file");
}

TEST(GgufBadFiles, ErrorsNameOffsets) {
  auto r = valid_two_tensors(0, 40);
  auto file = GgufFile::parse(r.b);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message.find("tensor 'b'"), std::string::npos);
  EXPECT_NE(file.error().message.find("at offset"), std::string::npos);
}

TEST(GgufBadFiles, OpenErrors) {
  auto missing = GgufFile::open("/nonexistent/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot open"), std::string::npos);
  auto dir = GgufFile::open("/");
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message.find("not a regular file"), std::string::npos);
  testing::TempDir tmp;
  testing::write_file(tmp / "empty.gguf", {});
  auto empty = GgufFile::open((tmp / "empty.gguf").string());
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("empty.gguf"), std::string::npos);  // errors name the file
}

// Every prefix of the header of a real file, and many prefixes of its data, is rejected cleanly.
TEST(GgufBadFiles, TruncatedRealFile) {
  BITNET_REQUIRE_SHARED(shared);
  const auto bytes = testing::read_file(shared / "models/stories260K.gguf");
  auto full = GgufFile::parse(bytes);
  ASSERT_TRUE(full.ok()) << full.error().message;
  const size_t header_end = full->data_offset();
  size_t rejected = 0;
  for (size_t n = 0; n < bytes.size(); n += (n < header_end ? 1 : 997)) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    auto file = GgufFile::parse(prefix);
    ASSERT_FALSE(file.ok()) << "a " << n << "-byte prefix parsed";
    ASSERT_FALSE(file.error().message.empty());
    ++rejected;
  }
  EXPECT_GT(rejected, header_end);
}

// Single-byte corruptions of a real header never crash; the result is either an error
// or a file whose tensors all lie inside the buffer.
TEST(GgufBadFiles, ByteFlipsInRealHeader) {
  BITNET_REQUIRE_SHARED(shared);
  const auto original = testing::read_file(shared / "models/stories260K.gguf");
  auto full = GgufFile::parse(original);
  ASSERT_TRUE(full.ok());
  auto bytes = original;
  for (size_t i = 0; i < full->data_offset(); i += 7) {
    for (uint8_t flip : {0x01, 0x80, 0xff}) {
      bytes[i] ^= flip;
      auto file = GgufFile::parse(bytes);
      if (file.ok()) {
        for (const auto& t : file->tensors()) {
          ASSERT_GE(t.data.data(), bytes.data());
          ASSERT_LE(t.data.data() + t.data.size(), bytes.data() + bytes.size());
        }
      }
      bytes[i] = original[i];
    }
  }
}

}  // namespace
}  // namespace bitnet::gguf
