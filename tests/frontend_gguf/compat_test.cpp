// compat-check findings and compat-fix repairs on synthetic models broken on purpose.
#include "frontend_gguf/compat.h"
#include "frontend_gguf/model_config.h"
#include "frontend_gguf/sha256.h"

#include "test_support.h"

#include <cmath>
#include <cstring>
#include <fstream>

namespace bitnet::gguf {
namespace {

using testing::make_synthetic_model;
using testing::SyntheticModelOptions;

bool has_code(const Findings& f, std::string_view code, Severity severity) {
  for (const auto& x : f.items) {
    if (x.code == code && x.severity == severity) return true;
  }
  return false;
}

std::string codes(const Findings& f) {
  std::string s;
  for (const auto& x : f.items) s += fmt::format("{}:{} ", severity_name(x.severity), x.code);
  return s;
}

class CompatTest : public ::testing::Test {
 protected:
  std::string write(const GgufWriter& w, const std::string& name = "model.gguf") {
    const auto path = (dir_ / name).string();
    auto s = w.write_file_atomic(path);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return path;
  }
  testing::TempDir dir_;
};

TEST_F(CompatTest, CleanModels) {
  SyntheticModelOptions llama;
  llama.arch = "llama";
  llama.weight_type = GgmlType::F16;
  auto m = make_synthetic_model(llama);
  Findings f = check_compat_file(write(m.writer));
  EXPECT_TRUE(f.items.empty()) << codes(f);

  auto b = make_synthetic_model();
  Findings fb = check_compat_file(write(b.writer, "b.gguf"));
  EXPECT_FALSE(fb.has_errors()) << codes(fb);
  EXPECT_TRUE(has_code(fb, "i2s-not-upstream", Severity::kWarning)) << codes(fb);
  EXPECT_TRUE(has_code(fb, "i2s-layout", Severity::kInfo));
}

TEST_F(CompatTest, MissingPreIsFixedWithTheFallbackValue) {
  SyntheticModelOptions o;
  o.tokenizer_model = "gpt2";
  auto m = make_synthetic_model(o);
  m.writer.erase("tokenizer.ggml.pre");
  const std::string in = write(m.writer);
  EXPECT_TRUE(has_code(check_compat_file(in), "missing-pre", Severity::kWarning));

  const auto before = testing::read_file(in);
  const std::string out = (dir_ / "fixed.gguf").string();
  auto r = compat_fix(in, out, "test");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(testing::read_file(in), before);  // input untouched
  ASSERT_EQ(r->fixes.size(), 1u);
  EXPECT_EQ(r->fixes[0].code, "missing-pre");
  EXPECT_TRUE(r->fixes[0].before.is_null());
  EXPECT_EQ(r->fixes[0].after, "default");
  auto fixed = GgufFile::open(out);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(*fixed->get_string("tokenizer.ggml.pre"), "default");
  EXPECT_FALSE(has_code(r->remaining, "missing-pre", Severity::kWarning));
  // Tensor data is carried over unchanged.
  auto orig = GgufFile::open(in);
  for (const auto& t : orig->tensors()) {
    const TensorInfo* u = fixed->find_tensor(t.name);
    ASSERT_NE(u, nullptr);
    EXPECT_TRUE(std::equal(t.data.begin(), t.data.end(), u->data.begin())) << t.name;
  }
}

TEST_F(CompatTest, DerivableHyperParametersAreRestored) {
  auto m = make_synthetic_model();
  for (const char* k : {"embedding_length", "block_count", "feed_forward_length", "attention.head_count_kv"}) {
    m.writer.erase(std::string("bitnet-b1.58.") + k);
  }
  const std::string in = write(m.writer);
  Findings f = check_compat_file(in);
  EXPECT_TRUE(has_code(f, "missing-hparam", Severity::kError)) << codes(f);
  auto r = compat_fix(in, (dir_ / "fixed.gguf").string(), "test");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->fixes.size(), 4u);
  EXPECT_FALSE(r->remaining.has_errors()) << codes(r->remaining);
  auto fixed = GgufFile::open((dir_ / "fixed.gguf").string());
  EXPECT_EQ(*fixed->get_uint("bitnet-b1.58.embedding_length"), 128u);
  EXPECT_EQ(*fixed->get_uint("bitnet-b1.58.block_count"), 1u);
  EXPECT_EQ(*fixed->get_uint("bitnet-b1.58.feed_forward_length"), 256u);
  EXPECT_EQ(*fixed->get_uint("bitnet-b1.58.attention.head_count_kv"), 2u);
}

TEST_F(CompatTest, InconsistentShapesAreErrorsNotFixed) {
  auto m = make_synthetic_model();
  m.writer.set("bitnet-b1.58.feed_forward_length", uint32_t{512});
  const std::string in = write(m.writer);
  Findings f = check_compat_file(in);
  ASSERT_TRUE(has_code(f, "tensor-shape", Severity::kError)) << codes(f);
  bool names_tensor = false;
  for (const auto& x : f.items) names_tensor |= x.message.find("blk.0.ffn_gate.weight") != std::string::npos;
  EXPECT_TRUE(names_tensor);
  auto r = compat_fix(in, (dir_ / "fixed.gguf").string(), "test");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(has_code(r->remaining, "tensor-shape", Severity::kError));
}

TEST_F(CompatTest, VocabularyAndSpecialTokens) {
  auto m = make_synthetic_model();
  std::vector<std::string> fewer(250, "x");
  m.writer.set("tokenizer.ggml.tokens", Array::of_strings(fewer));
  m.writer.erase("tokenizer.ggml.scores");
  m.writer.erase("tokenizer.ggml.token_type");
  Findings f = check_compat_file(write(m.writer));
  EXPECT_TRUE(has_code(f, "vocab-mismatch", Severity::kError)) << codes(f);

  auto n = make_synthetic_model();
  n.writer.erase("tokenizer.ggml.bos_token_id");
  n.writer.erase("tokenizer.ggml.eos_token_id");
  n.writer.set("tokenizer.ggml.unknown_token_id", uint32_t{100000});
  const std::string in = write(n.writer, "special.gguf");
  Findings g = check_compat_file(in);
  EXPECT_TRUE(has_code(g, "missing-bos", Severity::kWarning)) << codes(g);
  EXPECT_TRUE(has_code(g, "missing-eos", Severity::kWarning));
  EXPECT_TRUE(has_code(g, "bad-special-token", Severity::kError));
  auto r = compat_fix(in, (dir_ / "fixed.gguf").string(), "test");
  ASSERT_TRUE(r.ok());
  auto fixed = GgufFile::open((dir_ / "fixed.gguf").string());
  EXPECT_EQ(*fixed->get_uint("tokenizer.ggml.bos_token_id"), 1u);  // "<s>"
  EXPECT_EQ(*fixed->get_uint("tokenizer.ggml.eos_token_id"), 2u);  // "</s>"
}

TEST_F(CompatTest, ArchitectureAndTokenizerPresence) {
  auto m = make_synthetic_model();
  m.writer.set("general.architecture", std::string("mamba"));
  Findings f = check_compat_file(write(m.writer));
  ASSERT_TRUE(has_code(f, "unknown-arch", Severity::kError)) << codes(f);
  EXPECT_NE(f.items[0].hint.find("bitnet-b1.58"), std::string::npos);

  auto t = make_synthetic_model();
  t.writer.erase("tokenizer.ggml.model");
  EXPECT_TRUE(has_code(check_compat_file(write(t.writer, "t.gguf")), "missing-tokenizer", Severity::kError));
}

TEST_F(CompatTest, UnsupportedWeightType) {
  SyntheticModelOptions o;
  o.weight_type = GgmlType::Q5_0;
  auto m = make_synthetic_model(o);
  Findings f = check_compat_file(write(m.writer));
  EXPECT_TRUE(has_code(f, "unsupported-type", Severity::kError)) << codes(f);
}

TEST_F(CompatTest, I2sDataProblems) {
  // Code 3 in packed data.
  auto m = make_synthetic_model();
  auto q = m.data("blk.0.attn_q.weight");
  q[5] = 0xff;
  EXPECT_TRUE(has_code(check_compat_file(write(m.writer)), "i2s-bad-code", Severity::kError));
  // Non-finite scale.
  auto s = make_synthetic_model();
  const float nan = std::nanf("");
  std::memcpy(s.data("blk.0.attn_q.weight").data() + 128 * 128 / 4, &nan, 4);
  EXPECT_TRUE(has_code(check_compat_file(write(s.writer, "s.gguf")), "i2s-bad-scale", Severity::kError));
  // Rows of 192 weights (64-multiple): only the ARM packing can hold them.
  SyntheticModelOptions arm;
  arm.n_embd = 192;
  arm.n_head = 3;
  arm.n_head_kv = 3;
  auto a = make_synthetic_model(arm);
  EXPECT_TRUE(has_code(check_compat_file(write(a.writer, "a.gguf")), "i2s-arm-layout", Severity::kError));
}

// Every hyper-parameter value the engine cannot run with is a bad-hparam error naming the key,
// and the loaders' check refuses the model with the same words.
TEST_F(CompatTest, ImpossibleHyperParametersAreBadHparam) {
  const float nan = std::nanf("");
  const float inf = INFINITY;
  struct Case {
    std::string key;  // after "bitnet-b1.58."
    Value value;
    std::string needle;  // in the finding's message
  };
  const std::vector<Case> cases = {
      {"context_length", uint32_t{0}, "context_length is 0"},
      {"context_length", uint64_t{1} << 40, "context_length is 1099511627776, above"},
      {"context_length", int32_t{-4}, "expected a non-negative integer"},
      {"embedding_length", uint32_t{0}, "embedding_length is 0"},
      {"embedding_length", uint32_t{1} << 21, "embedding_length is 2097152, above"},
      {"block_count", uint32_t{0}, "block_count is 0"},
      {"block_count", uint32_t{100000}, "block_count is 100000, above"},
      {"feed_forward_length", uint32_t{0}, "feed_forward_length is 0"},
      {"attention.head_count", uint32_t{0}, "attention.head_count is 0"},
      {"attention.head_count", uint32_t{3}, "embedding_length 128 is not a multiple of attention.head_count 3"},
      {"attention.head_count", uint32_t{128}, "head size 1 is odd"},
      {"attention.head_count_kv", uint32_t{0}, "attention.head_count_kv is 0"},
      {"attention.head_count_kv", uint32_t{3}, "attention.head_count 4 is not a multiple of attention.head_count_kv 3"},
      {"attention.head_count_kv", uint32_t{8}, "attention.head_count 4 is not a multiple of attention.head_count_kv 8"},
      {"rope.dimension_count", uint32_t{16}, "rope.dimension_count 16 differs from the head size 32"},
      {"rope.dimension_count", uint32_t{0}, "rope.dimension_count 0 differs"},
      {"attention.layer_norm_rms_epsilon", 0.0f, "layer_norm_rms_epsilon is 0"},
      {"attention.layer_norm_rms_epsilon", -1e-5f, "layer_norm_rms_epsilon is -1e-05"},
      {"attention.layer_norm_rms_epsilon", nan, "layer_norm_rms_epsilon is nan"},
      {"attention.layer_norm_rms_epsilon", inf, "layer_norm_rms_epsilon is inf"},
      {"attention.layer_norm_rms_epsilon", 1e300, "layer_norm_rms_epsilon is inf"},  // f64 beyond f32
      {"attention.layer_norm_rms_epsilon", uint32_t{1}, "expected f32"},
      {"rope.freq_base", 0.0f, "rope.freq_base is 0"},
      {"rope.freq_base", nan, "rope.freq_base is nan"},
      {"rope.freq_base", -inf, "rope.freq_base is -inf"},
      {"rope.scaling.factor", -2.0f, "rope.scaling.factor is -2"},
      {"rope.scaling.factor", inf, "rope.scaling.factor is inf"},
      {"rope.scaling.type", uint32_t{1}, "rope.scaling.type' has type u32, expected a string"},
      {"rope.scaling.type", std::string("yarn"), "RoPE scaling 'yarn' is not supported"},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key + " = " + c.value.to_display());
    auto m = make_synthetic_model();
    m.writer.set("bitnet-b1.58." + c.key, c.value);
    auto file = GgufFile::open(write(m.writer, fmt::format("h{}.gguf", n++)));
    ASSERT_TRUE(file.ok()) << file.error().message;
    Findings f = check_compat(*file);
    ASSERT_TRUE(f.has_errors()) << codes(f);
    EXPECT_EQ(f.first_error()->code, "bad-hparam") << codes(f);
    EXPECT_NE(f.first_error()->message.find(c.needle), std::string::npos) << f.first_error()->message;
    auto load = check_loadable(*file);
    ASSERT_FALSE(load.ok());
    EXPECT_EQ(load.error().message, format_finding(*f.first_error()));
    EXPECT_TRUE(load.error().message.starts_with("error [bad-hparam] ")) << load.error().message;
    auto config = read_model_config(*file);
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.error().message, load.error().message);
  }
}

TEST_F(CompatTest, EveryBadHyperParameterIsReported) {
  auto m = make_synthetic_model();
  m.writer.set("bitnet-b1.58.context_length", uint32_t{0});
  m.writer.set("bitnet-b1.58.attention.layer_norm_rms_epsilon", -1.0f);
  m.writer.set("bitnet-b1.58.rope.freq_base", 0.0f);
  Findings f = check_compat_file(write(m.writer));
  int bad = 0;
  for (const auto& x : f.items) bad += x.code == "bad-hparam";
  EXPECT_EQ(bad, 3) << codes(f);
}

// Tensors the graph would not use: the lowering refuses them, so compat-check reports them.
TEST_F(CompatTest, TensorsTheGraphDoesNotUseAreErrors) {
  const std::vector<uint8_t> data(128 * 4, 0);
  for (const std::string name : {"blk.0.attn_q.bias", "rope_freqs.weight", "blk.1.attn_norm.weight", "extra.weight"}) {
    SCOPED_TRACE(name);
    auto m = make_synthetic_model();
    ASSERT_TRUE(m.writer.add_tensor({name, GgmlType::F32, {128}, data}).ok());
    auto file = GgufFile::open(write(m.writer, "x.gguf"));
    ASSERT_TRUE(file.ok());
    Findings f = check_compat(*file);
    ASSERT_TRUE(has_code(f, "unexpected-tensor", Severity::kError)) << codes(f);
    EXPECT_NE(f.first_error()->message.find(name), std::string::npos);
    EXPECT_FALSE(check_loadable(*file).ok());
  }
  // Optional per-projection scales are part of the graph.
  auto m = make_synthetic_model();
  const std::vector<uint8_t> one(4, 0);
  ASSERT_TRUE(m.writer.add_tensor({"blk.0.attn_q.scale", GgmlType::F32, {1}, one}).ok());
  EXPECT_FALSE(has_code(check_compat_file(write(m.writer, "s.gguf")), "unexpected-tensor", Severity::kError));
}

// Loaders refuse every model compat-check calls an error (bounded data checks only).
TEST_F(CompatTest, LoadableCheckRefusesWhatCompatCheckCallsAnError) {
  SyntheticModelOptions arm;
  arm.n_embd = 192;
  arm.n_head = 3;
  arm.n_head_kv = 3;
  auto a = make_synthetic_model(arm);
  auto file = GgufFile::open(write(a.writer, "arm.gguf"));
  ASSERT_TRUE(file.ok());
  auto s = check_loadable(*file);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(
      s.error().message.starts_with("error [i2s-arm-layout] I2_S tensor 'blk.0.ffn_gate.weight' has rows of "
                                    "192 weights"))
      << s.error().message;
  EXPECT_NE(s.error().message.find("(fix: re-quantize"), std::string::npos);

  auto b = make_synthetic_model();
  const float neg = -1.0f;
  std::memcpy(b.data("blk.0.attn_q.weight").data() + 128 * 128 / 4, &neg, 4);
  auto scale = GgufFile::open(write(b.writer, "scale.gguf"));
  EXPECT_NE(check_loadable(*scale).error().message.find("error [i2s-bad-scale]"), std::string::npos);

  auto t = make_synthetic_model();
  t.writer.erase("tokenizer.ggml.tokens");
  auto tok = GgufFile::open(write(t.writer, "tok.gguf"));
  EXPECT_NE(check_loadable(*tok).error().message.find("error [missing-tokenizer]"), std::string::npos);
  EXPECT_TRUE(check_loadable(*tok, /*own_tokenizer=*/false).ok());  // another tokenizer is given

  // Code 3 early in a tensor is found by the bounded check; far into it only by compat-check.
  auto c = make_synthetic_model();
  c.data("blk.0.ffn_gate.weight")[10] = 0xff;
  c.data("blk.0.ffn_up.weight")[128 * 256 / 4 - 1] = 0xff;  // the last byte (8 KiB in)
  auto codes3 = GgufFile::open(write(c.writer, "code3.gguf"));
  auto cs = check_loadable(*codes3);
  ASSERT_FALSE(cs.ok());
  EXPECT_NE(cs.error().message.find("error [i2s-bad-code] I2_S tensor 'blk.0.ffn_gate.weight' contains the 2-bit "
                                    "code 3 (first at weight 40)"),
            std::string::npos)
      << cs.error().message;
  c.data("blk.0.ffn_gate.weight")[10] = 0;
  auto late = GgufFile::open(write(c.writer, "late.gguf"));
  EXPECT_TRUE(check_loadable(*late).ok());
  Findings f = check_compat(*late);
  ASSERT_TRUE(has_code(f, "i2s-bad-code", Severity::kError)) << codes(f);
  EXPECT_NE(f.first_error()->message.find("'blk.0.ffn_up.weight'"), std::string::npos);

  auto clean = make_synthetic_model();
  auto ok = GgufFile::open(write(clean.writer, "clean.gguf"));
  EXPECT_TRUE(check_loadable(*ok).ok());
}

// NaN/Inf in F32, F16 and BF16 weights: an error naming the tensor and the first bad element.
TEST_F(CompatTest, NonFiniteFloatWeights) {
  struct Case {
    GgmlType type;
    std::vector<uint8_t> bad_bytes;
    std::string shown;
  };
  const float f32_inf = -INFINITY;
  std::vector<uint8_t> f32_bytes(4);
  std::memcpy(f32_bytes.data(), &f32_inf, 4);
  const std::vector<Case> cases = {
      {GgmlType::F32, f32_bytes, "-inf"},
      {GgmlType::F16, {0x01, 0x7e}, "nan"},   // 0x7e01
      {GgmlType::BF16, {0x80, 0x7f}, "inf"},  // 0x7f80
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(ggml_type_name(c.type)));
    SyntheticModelOptions o;
    o.arch = "llama";
    o.weight_type = c.type;
    auto m = make_synthetic_model(o);
    const size_t element = 1000;
    std::memcpy(m.data("blk.0.ffn_gate.weight").data() + element * c.bad_bytes.size(), c.bad_bytes.data(),
                c.bad_bytes.size());
    auto file = GgufFile::open(write(m.writer, "nan.gguf"));
    ASSERT_TRUE(file.ok());
    Findings f = check_compat(*file);
    ASSERT_TRUE(has_code(f, "non-finite-weight", Severity::kError)) << codes(f);
    EXPECT_EQ(f.first_error()->message,
              fmt::format("{} tensor 'blk.0.ffn_gate.weight' holds a non-finite value ({}) at element 1000 (of "
                          "32768): the model's outputs will be NaN",
                          ggml_type_name(c.type), c.shown));
    // A matrix is not scanned at load (too slow for big files): generation catches it.
    EXPECT_TRUE(check_loadable(*file).ok());
  }
  // A norm (1-D, small) is scanned at load too.
  auto n = make_synthetic_model();
  const float nan = std::nanf("");
  std::memcpy(n.data("blk.0.ffn_norm.weight").data() + 4 * 5, &nan, 4);
  auto file = GgufFile::open(write(n.writer, "norm.gguf"));
  auto s = check_loadable(*file);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("error [non-finite-weight] F32 tensor 'blk.0.ffn_norm.weight' holds a non-finite "
                                   "value (nan) at element 5"),
            std::string::npos)
      << s.error().message;
}

TEST_F(CompatTest, SmallAlignmentIsRealigned) {
  SyntheticModelOptions o;
  o.arch = "llama";
  o.weight_type = GgmlType::F32;
  auto m = make_synthetic_model(o);
  m.writer.set("general.alignment", uint32_t{8});
  const std::string in = write(m.writer);
  EXPECT_TRUE(has_code(check_compat_file(in), "small-alignment", Severity::kWarning));
  auto r = compat_fix(in, (dir_ / "fixed.gguf").string(), "test");
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto fixed = GgufFile::open((dir_ / "fixed.gguf").string());
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->alignment(), 32u);
  for (const auto& t : fixed->tensors()) EXPECT_EQ((fixed->data_offset() + t.offset) % 32, 0u) << t.name;
  EXPECT_TRUE(r->remaining.items.empty()) << codes(r->remaining);
}

TEST_F(CompatTest, MisalignedTensorsAreRealigned) {
  // Two F32 tensors; "b" starts 8 bytes past a 32-byte boundary (hand-made: no writer does that).
  std::vector<uint8_t> bytes;
  auto put = [&](const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), c, c + n);
  };
  auto u32 = [&](uint32_t v) { put(&v, 4); };
  auto u64 = [&](uint64_t v) { put(&v, 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    put(s.data(), s.size());
  };
  put("GGUF", 4);
  u32(3);
  u64(2);
  u64(0);
  str("a");
  u32(1);
  u64(8);
  u32(0);
  u64(0);
  str("b");
  u32(1);
  u64(8);
  u32(0);
  u64(40);
  while (bytes.size() % 32) bytes.push_back(0);
  for (int i = 0; i < 80; ++i) bytes.push_back(static_cast<uint8_t>(i));
  testing::write_file(dir_ / "mis.gguf", bytes);
  const std::string in = (dir_ / "mis.gguf").string();
  ASSERT_FALSE(GgufFile::open(in).ok());
  Findings f = check_compat_file(in);
  EXPECT_TRUE(has_code(f, "misaligned-tensor", Severity::kError)) << codes(f);
  auto r = compat_fix(in, (dir_ / "fixed.gguf").string(), "test");
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto fixed = GgufFile::open((dir_ / "fixed.gguf").string());
  ASSERT_TRUE(fixed.ok()) << fixed.error().message;
  const TensorInfo* b = fixed->find_tensor("b");
  EXPECT_EQ(b->offset % 32, 0u);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(b->data[i], 40 + i);  // same data, new place
}

TEST_F(CompatTest, FixRefusesToOverwriteItsInput) {
  auto m = make_synthetic_model();
  const std::string in = write(m.writer);
  const auto before = testing::read_file(in);
  EXPECT_FALSE(compat_fix(in, in, "test").ok());
  EXPECT_FALSE(compat_fix(in, (dir_ / "." / "model.gguf").string(), "test").ok());
  std::filesystem::create_symlink(in, dir_ / "link.gguf");
  auto r = compat_fix(in, (dir_ / "link.gguf").string(), "test");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("never modifies its input"), std::string::npos);
  EXPECT_EQ(testing::read_file(in), before);
}

TEST_F(CompatTest, ReportRecordsHashesAndFixes) {
  SyntheticModelOptions o;
  o.tokenizer_model = "gpt2";
  auto m = make_synthetic_model(o);
  m.writer.erase("tokenizer.ggml.pre");
  const std::string in = write(m.writer);
  const std::string out = (dir_ / "fixed.gguf").string();
  auto r = compat_fix(in, out, "9.9.9");
  ASSERT_TRUE(r.ok());
  std::ifstream report_in(out + ".compat.json");
  const auto report = nlohmann::json::parse(report_in);
  EXPECT_EQ(report["tool_version"], "9.9.9");
  EXPECT_EQ(report["input"]["sha256"], *sha256_file_hex(in));
  EXPECT_EQ(report["output"]["sha256"], *sha256_file_hex(out));
  const std::string time = report["utc_time"].get<std::string>();  // e.g. 2026-11-26T04:01:17Z
  ASSERT_EQ(time.size(), 20u) << time;
  for (size_t i = 0; i < time.size(); ++i) {
    const char want = std::string_view("0000-00-00T00:00:00Z")[i];
    if (want == '0') {
      EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(time[i]))) << time;
    } else {
      EXPECT_EQ(time[i], want) << time;
    }
  }
  ASSERT_EQ(report["fixes"].size(), 1u);
  EXPECT_EQ(report["fixes"][0]["key"], "tokenizer.ggml.pre");
  EXPECT_TRUE(report["fixes"][0]["before"].is_null());
  EXPECT_EQ(report["fixes"][0]["after"], "default");
}

TEST_F(CompatTest, UnreadableInput) {
  testing::write_file(dir_ / "junk.gguf", {'G', 'G', 'U', 'F', 3, 0, 0});
  Findings f = check_compat_file((dir_ / "junk.gguf").string());
  ASSERT_EQ(f.items.size(), 1u);
  EXPECT_EQ(f.items[0].code, "parse-error");
  EXPECT_FALSE(compat_fix((dir_ / "junk.gguf").string(), (dir_ / "out.gguf").string(), "t").ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.gguf"));
}

TEST_F(CompatTest, SharedModels) {
  BITNET_REQUIRE_SHARED(shared);
  const auto files = testing::shared_gguf_files(shared);
  ASSERT_GE(files.size(), testing::kMinSharedGgufFiles);
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    Findings f = check_compat_file(path.string());
    const bool vocab_only = path.parent_path().filename() == "vocab";
    EXPECT_EQ(f.has_errors(), vocab_only) << codes(f);
    const bool i2s = path.parent_path().filename() == "bitnet-i2s";
    EXPECT_EQ(has_code(f, "i2s-not-upstream", Severity::kWarning), i2s);
    const auto before = testing::read_file(path);
    auto r = compat_fix(path.string(), (dir_ / "fixed.gguf").string(), "test");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->input_sha256, sha256_hex(before));
  }
}

}  // namespace
}  // namespace bitnet::gguf
