// SHA-256 against FIPS 180-4 example vectors and a published file hash.
#include "frontend_gguf/sha256.h"

#include "test_support.h"

namespace bitnet::gguf {
namespace {

std::string hash_of(std::string_view s) {
  return sha256_hex({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(hash_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hash_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hash_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hash_of(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 7);
  Sha256 h;
  size_t pos = 0;
  for (size_t step : {1, 63, 64, 65, 3, 200, 604}) {
    h.update({reinterpret_cast<const uint8_t*>(data.data()) + pos, step});
    pos += step;
  }
  ASSERT_EQ(pos, data.size());
  EXPECT_EQ(to_hex(h.finish()), hash_of(data));
}

TEST(Sha256, PublishedModelHash) {
  BITNET_REQUIRE_SHARED(shared);
  auto h = sha256_file_hex((shared / "models/stories260K.gguf").string());
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_EQ(*h, "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d");  // models/PROVENANCE.md
}

}  // namespace
}  // namespace bitnet::gguf
