// Ternary retyping (I2_S <-> TQ2_0 <-> TQ1_0): the packings against the engine's own decoders
// (ir/dtype), lossless round trips on synthetic and shared models, metadata, and refusals.
#include "frontend_gguf/retype_ternary.h"
#include "frontend_gguf/compat.h"
#include "frontend_gguf/ternary_codec.h"
#include "ir/dtype.h"
#include "ir/support/half.h"

#include "test_support.h"

#include <cmath>
#include <cstring>
#include <random>

namespace bitnet::gguf {
namespace {

using testing::make_synthetic_model;
using testing::SyntheticModelOptions;
using testing::TempDir;

std::vector<int8_t> random_values(size_t n, uint32_t seed, int zero_percent = 40) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pct(0, 99);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = pct(rng) < zero_percent ? 0 : (pct(rng) < 50 ? -1 : 1);
  return v;
}

std::vector<float> decode_with_ir(ir::DType type, const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> out(n);
  ir::dtype_info(type).to_float(bytes.data(), static_cast<int64_t>(n), out.data());
  return out;
}

TEST(ParseTernaryType, AcceptsTheThreeNamesInAnyCase) {
  EXPECT_EQ(parse_ternary_type("i2_s"), TernaryType::I2_S);
  EXPECT_EQ(parse_ternary_type("TQ1_0"), TernaryType::TQ1_0);
  EXPECT_EQ(parse_ternary_type("Tq2_0"), TernaryType::TQ2_0);
  EXPECT_FALSE(parse_ternary_type("q8_0").has_value());
  EXPECT_FALSE(parse_ternary_type("tq2").has_value());
  EXPECT_FALSE(parse_ternary_type("").has_value());
  for (auto t : {TernaryType::I2_S, TernaryType::TQ1_0, TernaryType::TQ2_0}) {
    EXPECT_EQ(parse_ternary_type(ternary_type_name(t)), t);
  }
}

// Every block of every packing decodes, with the engine's decoders, to value * scale.
TEST(TernaryCodec, PackingsMatchTheEngineDecoders) {
  constexpr size_t n = 256 * 6;
  const auto values = random_values(n, 7);
  std::vector<uint16_t> scales;
  for (size_t b = 0; b < n / 256; ++b) scales.push_back(half::from_float(0.01f * static_cast<float>(b + 1)));

  const auto tq2 = ternary::encode_tq2_0(values, scales);
  const auto tq1 = ternary::encode_tq1_0(values, scales);
  const auto i2s = ternary::encode_i2s(values, 0.5f);
  ASSERT_EQ(tq2.size(), n / 256 * 66);
  ASSERT_EQ(tq1.size(), n / 256 * 54);
  ASSERT_EQ(i2s.size(), n / 4 + 32);

  const auto f_tq2 = decode_with_ir(ir::DType::TQ2_0, tq2, n);
  const auto f_tq1 = decode_with_ir(ir::DType::TQ1_0, tq1, n);
  const auto f_i2s = decode_with_ir(ir::DType::I2_S, i2s, n);
  for (size_t i = 0; i < n; ++i) {
    const float d = half::to_float(scales[i / 256]);
    ASSERT_EQ(f_tq2[i], static_cast<float>(values[i]) * d) << "TQ2_0 element " << i;
    ASSERT_EQ(f_tq1[i], static_cast<float>(values[i]) * d) << "TQ1_0 element " << i;
    ASSERT_EQ(f_i2s[i], static_cast<float>(values[i])) << "I2_S element " << i;
  }
  float i2s_scale = 0;
  std::memcpy(&i2s_scale, i2s.data() + n / 4, 4);
  EXPECT_EQ(i2s_scale, 0.5f);

  // And our own decoders give back the values and scales.
  std::vector<int8_t> back;
  std::vector<uint16_t> back_scales;
  ASSERT_TRUE(ternary::decode_tq2_0(tq2, n, back, back_scales).ok());
  EXPECT_EQ(back, values);
  EXPECT_EQ(back_scales, scales);
  ASSERT_TRUE(ternary::decode_tq1_0(tq1, n, back, back_scales).ok());
  EXPECT_EQ(back, values);
  EXPECT_EQ(back_scales, scales);
  float s = 0;
  ASSERT_TRUE(ternary::decode_i2s(i2s, n, back, s).ok());
  EXPECT_EQ(back, values);
  EXPECT_EQ(s, 0.5f);
}

// Each TQ1_0 byte holds five base-3 digits; all 3^5 combinations survive, in every byte group
// (the 32-byte part, the 16-byte part and the 4-digit qh bytes).
TEST(TernaryCodec, Tq1AllDigitCombinationsRoundTrip) {
  for (int combo = 0; combo < 243; ++combo) {
    std::vector<int8_t> values(256);
    for (size_t i = 0; i < 256; ++i) {
      // digit position of element i inside its byte
      int digit;
      if (i < 160) {
        digit = static_cast<int>(i / 32);
      } else if (i < 240) {
        digit = static_cast<int>((i - 160) / 16);
      } else {
        digit = static_cast<int>((i - 240) / 4);
      }
      int c = combo;
      for (int k = 4; k > digit; --k) c /= 3;
      values[i] = static_cast<int8_t>(c % 3 - 1);
    }
    const uint16_t one = half::from_float(1.0f);
    const auto bytes = ternary::encode_tq1_0(values, std::span<const uint16_t>(&one, 1));
    const auto decoded = decode_with_ir(ir::DType::TQ1_0, bytes, 256);
    for (size_t i = 0; i < 256; ++i) ASSERT_EQ(decoded[i], values[i]) << "combo " << combo << " element " << i;
  }
  // ggml's encoding of the extremes: all -1 -> 0, all 0 -> ceil(121 * 256 / 243) = 128, all +1 -> 255.
  for (const auto& [v, byte] : {std::pair{-1, 0}, std::pair{0, 128}, std::pair{1, 255}}) {
    std::vector<int8_t> values(256, static_cast<int8_t>(v));
    const uint16_t one = half::from_float(1.0f);
    const auto bytes = ternary::encode_tq1_0(values, std::span<const uint16_t>(&one, 1));
    EXPECT_EQ(bytes[0], byte);
    EXPECT_EQ(bytes[47], byte);
  }
}

TEST(TernaryCodec, CodeThreeAndShortDataAreErrors) {
  std::vector<uint8_t> i2s(64 / 4 + 32 + 32 * 2, 0x55);  // 128 weights of code 1 (zero)
  std::vector<int8_t> values;
  float scale = 0;
  ASSERT_TRUE(ternary::decode_i2s(i2s, 128, values, scale).ok());
  i2s[5] = 0x57;  // bits 1..0 = 3: weight 96 + 5
  auto st = ternary::decode_i2s(i2s, 128, values, scale);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("element 101"), std::string::npos) << st.error().message;

  std::vector<uint8_t> tq2(66, 0x55);
  std::vector<uint16_t> scales;
  ASSERT_TRUE(ternary::decode_tq2_0(tq2, 256, values, scales).ok());
  tq2[40] = 0xd5;  // bits 7..6 = 3: second half, l = 3, m = 8 -> element 128 + 96 + 8
  st = ternary::decode_tq2_0(tq2, 256, values, scales);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("element 232"), std::string::npos) << st.error().message;

  EXPECT_FALSE(ternary::decode_tq2_0(std::span<const uint8_t>(tq2).first(65), 256, values, scales).ok());
  EXPECT_FALSE(ternary::decode_tq1_0(std::vector<uint8_t>(54, 0), 200, values, scales).ok());
}

// ---- whole files ----

class RetypeTest : public ::testing::Test {
 protected:
  std::string synthetic(SyntheticModelOptions o = {}, const std::string& name = "in.gguf") {
    if (o.n_embd == 128 && o.n_ff == 256) {  // rows of 256 so that every projection fits TQ*
      o.n_embd = 256;
      o.n_ff = 512;
    }
    auto m = make_synthetic_model(o);
    const auto path = (dir_ / name).string();
    auto st = m.writer.write_file_atomic(path);
    EXPECT_TRUE(st.ok()) << st.error().message;
    return path;
  }
  std::string convert(const std::string& in, TernaryType t, const std::string& name, RetypeReport* report = nullptr) {
    const auto out = (dir_ / name).string();
    auto r = retype_ternary(in, out, t);
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (r.ok() && report) *report = *r;
    return out;
  }
  TempDir dir_;
};

GgufFile open_or_die(const std::string& path) {
  auto f = GgufFile::open(path);
  if (!f.ok()) ADD_FAILURE() << f.error().message;
  return std::move(f).value();
}

bool is_ternary(GgmlType t) {
  return t == GgmlType::I2_S || t == GgmlType::TQ1_0 || t == GgmlType::TQ2_0;
}

// The ternary values of a tensor (any of the three types).
std::vector<int8_t> values_of(const TensorInfo& t) {
  std::vector<int8_t> v;
  std::vector<uint16_t> scales;
  float scale = 0;
  Status st;
  if (t.type == GgmlType::I2_S) st = ternary::decode_i2s(t.data, t.element_count(), v, scale);
  if (t.type == GgmlType::TQ2_0) st = ternary::decode_tq2_0(t.data, t.element_count(), v, scales);
  if (t.type == GgmlType::TQ1_0) st = ternary::decode_tq1_0(t.data, t.element_count(), v, scales);
  EXPECT_TRUE(st.ok()) << t.name;
  return v;
}

float i2s_scale_of(const TensorInfo& t) {
  float s = 0;
  std::memcpy(&s, t.data.data() + t.element_count() / 4, 4);
  return s;
}

// Checks `out` against `in`: same metadata except general.file_type, same tensors in the same
// order, ternary ones in `type` with the same values, all others byte for byte.
void expect_retyped(const GgufFile& in, const GgufFile& out, GgmlType type, uint32_t file_type) {
  ASSERT_EQ(in.metadata().size() + (in.find("general.file_type") ? 0 : 1), out.metadata().size());
  for (const auto& kv : in.metadata()) {
    if (kv.key == "general.file_type") continue;
    const Value* v = out.find(kv.key);
    ASSERT_NE(v, nullptr) << kv.key;
    EXPECT_TRUE(*v == kv.value) << kv.key;
  }
  EXPECT_EQ(out.get_uint("general.file_type"), file_type);
  ASSERT_EQ(in.tensors().size(), out.tensors().size());
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const TensorInfo& a = in.tensors()[i];
    const TensorInfo& b = out.tensors()[i];
    ASSERT_EQ(a.name, b.name);
    EXPECT_EQ(a.ne, b.ne) << a.name;
    if (is_ternary(a.type)) {
      EXPECT_EQ(b.type, type) << a.name;
      EXPECT_EQ(values_of(a), values_of(b)) << a.name;
    } else {
      EXPECT_EQ(a.type, b.type) << a.name;
      ASSERT_EQ(a.data.size(), b.data.size()) << a.name;
      EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size()), 0) << a.name;
    }
  }
}

TEST_F(RetypeTest, I2sToTq2ToI2sKeepsCodesAndRoundsOnlyTheScale) {
  const auto in_path = synthetic();
  RetypeReport to_tq2, back_report;
  const auto tq2_path = convert(in_path, TernaryType::TQ2_0, "tq2.gguf", &to_tq2);
  const auto back_path = convert(tq2_path, TernaryType::I2_S, "back.gguf", &back_report);
  const GgufFile in = open_or_die(in_path);
  const GgufFile tq2 = open_or_die(tq2_path);
  const GgufFile back = open_or_die(back_path);
  expect_retyped(in, tq2, GgmlType::TQ2_0, 37);
  expect_retyped(tq2, back, GgmlType::I2_S, 40);

  int ternary = 0;
  double max_rel = 0;
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const TensorInfo& a = in.tensors()[i];
    if (a.type != GgmlType::I2_S) continue;
    ++ternary;
    const TensorInfo& b = back.tensors()[i];
    const uint64_t code_bytes = a.element_count() / 4;
    // The same 2-bit codes, byte for byte; the scale is the f32 scale rounded to f16.
    EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), code_bytes), 0) << a.name;
    const float s = i2s_scale_of(a);
    const float rounded = half::to_float(half::from_float(s));
    EXPECT_EQ(i2s_scale_of(b), rounded) << a.name;
    EXPECT_LE(std::fabs(rounded - s), std::ldexp(std::fabs(s), -11)) << a.name;  // half an f16 ulp
    max_rel = std::max(max_rel, std::fabs(static_cast<double>(rounded) - s) / s);
    // Every TQ2_0 block carries that same rounded scale.
    const TensorInfo& t = tq2.tensors()[i];
    for (uint64_t blk = 0; blk < t.element_count() / 256; ++blk) {
      uint16_t h = 0;
      std::memcpy(&h, t.data.data() + blk * 66 + 64, 2);
      ASSERT_EQ(half::to_float(h), rounded) << a.name << " block " << blk;
    }
  }
  EXPECT_EQ(to_tq2.tensors_retyped, ternary);
  EXPECT_EQ(to_tq2.tensors_copied, static_cast<int>(in.tensors().size()) - ternary);
  EXPECT_EQ(to_tq2.max_scale_rel_error, max_rel);
  EXPECT_GT(to_tq2.max_scale_rel_error, 0.0);  // random scales are not f16 values
  EXPECT_EQ(back_report.tensors_retyped, ternary);
  EXPECT_EQ(back_report.max_scale_rel_error, 0.0);  // f16 -> f32 is exact
}

TEST_F(RetypeTest, Tq2AndTq1ConvertIntoEachOtherExactly) {
  const auto in_path = synthetic();
  const auto tq2_path = convert(in_path, TernaryType::TQ2_0, "tq2.gguf");
  RetypeReport r1, r2;
  const auto tq1_path = convert(tq2_path, TernaryType::TQ1_0, "tq1.gguf", &r1);
  const auto tq2_again = convert(tq1_path, TernaryType::TQ2_0, "tq2b.gguf", &r2);
  const GgufFile tq2 = open_or_die(tq2_path);
  const GgufFile tq1 = open_or_die(tq1_path);
  expect_retyped(tq2, tq1, GgmlType::TQ1_0, 36);
  EXPECT_EQ(r1.max_scale_rel_error, 0.0);
  EXPECT_EQ(r2.max_scale_rel_error, 0.0);
  // TQ2_0 -> TQ1_0 -> TQ2_0 gives the same file back.
  EXPECT_EQ(testing::read_file(tq2_path), testing::read_file(tq2_again));
  // I2_S -> TQ1_0 directly equals I2_S -> TQ2_0 -> TQ1_0.
  const auto tq1_direct = convert(in_path, TernaryType::TQ1_0, "tq1d.gguf");
  EXPECT_EQ(testing::read_file(tq1_path), testing::read_file(tq1_direct));
}

TEST_F(RetypeTest, SameTypeCopiesTheTensors) {
  const auto in_path = synthetic();
  RetypeReport r;
  const auto out_path = convert(in_path, TernaryType::I2_S, "same.gguf", &r);
  EXPECT_EQ(r.tensors_retyped, 0);
  EXPECT_EQ(testing::read_file(in_path), testing::read_file(out_path));  // file_type was already 40
}

TEST_F(RetypeTest, TqBlocksWithDifferentScalesCannotBecomeI2s) {
  const auto tq2_path = convert(synthetic(), TernaryType::TQ2_0, "tq2.gguf");
  auto bytes = testing::read_file(tq2_path);
  const GgufFile f = open_or_die(tq2_path);
  const TensorInfo* t = f.find_tensor("blk.0.ffn_up.weight");
  ASSERT_NE(t, nullptr);
  // Block 1's scale, in the file: double it.
  const uint64_t at = f.data_offset() + t->offset + 66 + 64;
  uint16_t h = 0;
  std::memcpy(&h, bytes.data() + at, 2);
  h = half::from_float(2 * half::to_float(h));
  std::memcpy(bytes.data() + at, &h, 2);
  const auto edited = (dir_ / "edited.gguf").string();
  testing::write_file(edited, bytes);
  const auto out = (dir_ / "out.gguf").string();
  auto r = retype_ternary(edited, out, TernaryType::I2_S);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("blk.0.ffn_up.weight"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("different scales"), std::string::npos) << r.error().message;
  EXPECT_FALSE(std::filesystem::exists(out));
  // To TQ1_0 it is still lossless: the per-block scales carry over.
  EXPECT_TRUE(retype_ternary(edited, out, TernaryType::TQ1_0).ok());
}

TEST_F(RetypeTest, AllZeroBlocksDoNotConstrainTheScale) {
  auto m = make_synthetic_model([] {
    SyntheticModelOptions o;
    o.n_embd = 256;
    o.n_ff = 512;
    return o;
  }());
  // Zero the first 256 weights of one projection, then give that block a different scale.
  auto data = m.data("blk.0.attn_q.weight");
  for (int i = 0; i < 64; ++i) data[i] = 0x55;
  const auto in = (dir_ / "in.gguf").string();
  ASSERT_TRUE(m.writer.write_file_atomic(in).ok());
  const auto tq2_path = convert(in, TernaryType::TQ2_0, "tq2.gguf");
  auto bytes = testing::read_file(tq2_path);
  const GgufFile f = open_or_die(tq2_path);
  const uint64_t at = f.data_offset() + f.find_tensor("blk.0.attn_q.weight")->offset + 64;
  const uint16_t other = half::from_float(123.0f);
  std::memcpy(bytes.data() + at, &other, 2);
  const auto edited = (dir_ / "edited.gguf").string();
  testing::write_file(edited, bytes);
  const auto back = convert(edited, TernaryType::I2_S, "back.gguf");
  const GgufFile a = open_or_die(in);
  const GgufFile b = open_or_die(back);
  const TensorInfo* ta = a.find_tensor("blk.0.attn_q.weight");
  const TensorInfo* tb = b.find_tensor("blk.0.attn_q.weight");
  EXPECT_EQ(std::memcmp(ta->data.data(), tb->data.data(), ta->element_count() / 4), 0);
  EXPECT_EQ(i2s_scale_of(*tb), half::to_float(half::from_float(i2s_scale_of(*ta))));
}

// ternary_as_i2s (what the CUDA backend reads): I2_S as stored; TQ2_0 / TQ1_0 with one scale in
// every block as the I2_S bytes of the same codes and that scale. Stricter than convert: an
// all-zero block with another scale is refused, since the engine's TQ product then sums block by
// block (reference::matmul_i8q_rows_tq), which one I2_S scale does not reproduce.
TEST_F(RetypeTest, TernaryAsI2sIsExactOrRefused) {
  const auto i2s_path = synthetic();
  const auto tq2_path = convert(i2s_path, TernaryType::TQ2_0, "tq2.gguf");
  const auto tq1_path = convert(tq2_path, TernaryType::TQ1_0, "tq1.gguf");
  const auto round_trip = convert(tq2_path, TernaryType::I2_S, "back.gguf");  // the scale rounded to f16
  const GgufFile i2s = open_or_die(i2s_path), tq2 = open_or_die(tq2_path), tq1 = open_or_die(tq1_path),
                 back = open_or_die(round_trip);
  const char* name = "blk.0.ffn_down.weight";
  const TensorInfo& want = *back.find_tensor(name);
  const uint64_t n = want.element_count();
  auto same = ternary_as_i2s(*i2s.find_tensor(name));
  ASSERT_TRUE(same) << same.error().message;
  EXPECT_TRUE(std::equal(same->begin(), same->end(), i2s.find_tensor(name)->data.begin()));
  for (const GgufFile* f : {&tq2, &tq1}) {
    auto got = ternary_as_i2s(*f->find_tensor(name));
    ASSERT_TRUE(got) << got.error().message;
    ASSERT_EQ(got->size(), ternary::i2s_bytes(n));
    EXPECT_TRUE(std::equal(got->begin(), got->begin() + static_cast<ptrdiff_t>(n / 4 + 4), want.data.begin()));
  }
  EXPECT_FALSE(ternary_as_i2s(*i2s.find_tensor("token_embd.weight")).ok());

  // Block 2 all zeros with scale 0: convert takes it, ternary_as_i2s does not.
  auto bytes = testing::read_file(tq2_path);
  const TensorInfo& t = *tq2.find_tensor(name);
  const uint64_t block = tq2.data_offset() + t.offset + 2 * 66;
  std::memset(bytes.data() + block, 0x55, 64);  // code 1 = value 0
  std::memset(bytes.data() + block + 64, 0, 2);
  const auto edited = (dir_ / "zero-block.gguf").string();
  testing::write_file(edited, bytes);
  const GgufFile e = open_or_die(edited);
  auto refused = ternary_as_i2s(*e.find_tensor(name));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("blocks 0 and 2 have different scales"), std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(check_ternary_as_i2s(*e.find_tensor(name)).ok());
  EXPECT_TRUE(retype_ternary(edited, (dir_ / "e.gguf").string(), TernaryType::I2_S).ok());
  // A code 3 (not ternary) in a block with the common scale.
  bytes = testing::read_file(tq2_path);
  bytes[tq2.data_offset() + t.offset] |= 0x03;
  testing::write_file(edited, bytes);
  const GgufFile c = open_or_die(edited);
  EXPECT_TRUE(check_ternary_as_i2s(*c.find_tensor(name)).ok());  // only the scales are read
  EXPECT_FALSE(ternary_as_i2s(*c.find_tensor(name)).ok());
}

TEST_F(RetypeTest, Refusals) {
  const auto in_path = synthetic();
  // output == input, also spelled differently
  auto r = retype_ternary(in_path, in_path, TernaryType::TQ2_0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("input"), std::string::npos);
  const auto dotted = (dir_.path() / "." / "in.gguf").string();
  EXPECT_FALSE(retype_ternary(in_path, dotted, TernaryType::TQ2_0).ok());

  // a model without ternary tensors
  SyntheticModelOptions f16;
  f16.arch = "llama";
  f16.weight_type = GgmlType::F16;
  const auto f16_path = synthetic(f16, "f16.gguf");
  const auto out = (dir_ / "out.gguf").string();
  r = retype_ternary(f16_path, out, TernaryType::TQ2_0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a ternary model"), std::string::npos) << r.error().message;

  // rows of 128: fine for I2_S, not for TQ*
  SyntheticModelOptions narrow;
  narrow.n_embd = 128;
  narrow.n_ff = 384;
  const auto narrow_path = synthetic(narrow, "narrow.gguf");
  for (auto t : {TernaryType::TQ2_0, TernaryType::TQ1_0}) {
    r = retype_ternary(narrow_path, out, t);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("multiple of 256"), std::string::npos) << r.error().message;
  }

  // a corrupt (truncated) file
  auto bytes = testing::read_file(in_path);
  bytes.resize(bytes.size() / 2);
  const auto cut = (dir_ / "cut.gguf").string();
  testing::write_file(cut, bytes);
  r = retype_ternary(cut, out, TernaryType::TQ2_0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cannot read"), std::string::npos) << r.error().message;

  // an I2_S code 3 is not a ternary value
  auto m = make_synthetic_model([] {
    SyntheticModelOptions o;
    o.n_embd = 256;
    o.n_ff = 512;
    return o;
  }());
  m.data("blk.0.ffn_down.weight")[3] = 0xff;
  const auto bad = (dir_ / "bad.gguf").string();
  ASSERT_TRUE(m.writer.write_file_atomic(bad).ok());
  r = retype_ternary(bad, out, TernaryType::TQ2_0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("blk.0.ffn_down.weight"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("code 3"), std::string::npos) << r.error().message;

  // a scale f16 cannot hold
  auto big = make_synthetic_model([] {
    SyntheticModelOptions o;
    o.n_embd = 256;
    o.n_ff = 512;
    return o;
  }());
  auto q = big.data("blk.0.attn_q.weight");
  const float huge = 1e6f;
  std::memcpy(q.data() + 256 * 256 / 4, &huge, 4);
  const auto big_path = (dir_ / "big.gguf").string();
  ASSERT_TRUE(big.writer.write_file_atomic(big_path).ok());
  r = retype_ternary(big_path, out, TernaryType::TQ2_0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("f16"), std::string::npos) << r.error().message;

  EXPECT_FALSE(std::filesystem::exists(out));  // no refusal wrote anything
}

// The shared I2_S models (reference-tool output): round trips through TQ2_0 and TQ1_0 keep every
// ternary code; b158-small-gqa (n_embd 384) has rows TQ* cannot hold.
TEST_F(RetypeTest, SharedModelsRoundTrip) {
  BITNET_REQUIRE_SHARED(shared);
  const auto dir = shared / "models" / "bitnet-i2s";
  for (const char* name : {"bitnet-tiny-mha.i2_s.gguf", "b158-tiny-gqa.i2_s.gguf"}) {
    SCOPED_TRACE(name);
    const auto in_path = (dir / name).string();
    RetypeReport r;
    const auto tq2_path = convert(in_path, TernaryType::TQ2_0, "tq2.gguf", &r);
    EXPECT_EQ(r.tensors_retyped, 28);  // 4 layers x 7 projections
    EXPECT_LE(r.max_scale_rel_error, std::ldexp(1.0, -11));
    const auto tq1_path = convert(tq2_path, TernaryType::TQ1_0, "tq1.gguf");
    const auto back_path = convert(tq1_path, TernaryType::I2_S, "back.gguf");
    const GgufFile in = open_or_die(in_path);
    const GgufFile tq1 = open_or_die(tq1_path);
    const GgufFile back = open_or_die(back_path);
    expect_retyped(in, tq1, GgmlType::TQ1_0, 36);
    expect_retyped(in, back, GgmlType::I2_S, 40);
    EXPECT_EQ(back.architecture(), in.architecture());
    for (size_t i = 0; i < in.tensors().size(); ++i) {
      const TensorInfo& a = in.tensors()[i];
      if (a.type != GgmlType::I2_S) continue;
      EXPECT_EQ(std::memcmp(a.data.data(), back.tensors()[i].data.data(), a.element_count() / 4), 0) << a.name;
    }
  }
  auto r = retype_ternary((dir / "b158-small-gqa.i2_s.gguf").string(), (dir_ / "x.gguf").string(), TernaryType::TQ2_0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("multiple of 256"), std::string::npos) << r.error().message;
}

// What upstream llama.cpp's `bitnet` loader reads (docs/ternary-formats.md): the architecture
// name, its hyper-parameters, and every tensor of the graph, the projections now in TQ2_0; our own
// compat-check finds nothing wrong with it and no I2_S left.
TEST_F(RetypeTest, TqOutputHasWhatUpstreamBitnetLoads) {
  BITNET_REQUIRE_SHARED(shared);
  const auto in_path = (shared / "models/bitnet-i2s/bitnet-tiny-mha.i2_s.gguf").string();
  const auto out_path = convert(in_path, TernaryType::TQ2_0, "tq2.gguf");
  const GgufFile f = open_or_die(out_path);
  EXPECT_EQ(f.architecture(), "bitnet");
  for (const char* key : {"bitnet.context_length", "bitnet.embedding_length", "bitnet.block_count",
                          "bitnet.feed_forward_length", "bitnet.attention.head_count"}) {
    EXPECT_TRUE(f.get_uint(key).has_value()) << key;
  }
  EXPECT_TRUE(f.get_float("bitnet.attention.layer_norm_rms_epsilon").has_value());
  EXPECT_EQ(f.get_uint("general.file_type"), 37u);
  const uint64_t layers = f.get_uint("bitnet.block_count").value_or(0);
  ASSERT_GT(layers, 0u);
  EXPECT_NE(f.find_tensor("token_embd.weight"), nullptr);
  EXPECT_NE(f.find_tensor("output_norm.weight"), nullptr);
  for (uint64_t l = 0; l < layers; ++l) {
    for (const char* norm : {"attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"}) {
      EXPECT_NE(f.find_tensor(fmt::format("blk.{}.{}.weight", l, norm)), nullptr) << norm;
    }
    for (const char* proj : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
      const TensorInfo* t = f.find_tensor(fmt::format("blk.{}.{}.weight", l, proj));
      ASSERT_NE(t, nullptr) << proj;
      EXPECT_EQ(t->type, GgmlType::TQ2_0) << t->name;
    }
  }
  const Findings findings = check_compat_file(out_path);
  EXPECT_FALSE(findings.has_errors());
  for (const auto& x : findings.items) EXPECT_NE(x.code, "i2s-not-upstream") << x.message;
}

}  // namespace
}  // namespace bitnet::gguf
