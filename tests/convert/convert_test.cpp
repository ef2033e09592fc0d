// `convert_hf_checkpoint` on synthetic checkpoints of every supported layout: each GGUF tensor
// is checked against the ternary values and scales (or dense values) the checkpoint was built
// from, the metadata against what compat-check and the tokenizer need, and bad checkpoints
// give clear errors.
#include "convert/checkpoint_writer.h"
#include "convert/hf_convert.h"
#include "convert/safetensors.h"
#include "convert/synthetic_checkpoint.h"
#include "frontend_gguf/compat.h"
#include "frontend_gguf/gguf_file.h"
#include "ir/support/half.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>

namespace bitnet::convert {
namespace {

namespace fs = std::filesystem;
using testing::HfLayout;

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("bitnet-conv-{}-{}", getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Expected<ConvertReport> convert(const fs::path& model, ConvertOptions options = {}) {
    return convert_hf_checkpoint(model.string(), out().string(), options);
  }
  fs::path out() const { return dir_ / "out.gguf"; }
  // The errors and warnings compat-check reports for the output, but the warning every I2_S
  // file gets (upstream llama.cpp does not know the type: use --type tq2_0 for it).
  static std::string compat_errors(const gguf::GgufFile& f) {
    std::string errors;
    for (const auto& finding : gguf::check_compat(f).items) {
      if (finding.severity == gguf::Severity::kInfo || finding.code == "i2s-not-upstream") continue;
      errors += finding.code + ": " + finding.message + "\n";
    }
    return errors;
  }
  fs::path dir_;
};

// The ternary code of row `row`, column `col` of an I2_S tensor with `cols` columns.
int code_at(const gguf::TensorInfo& t, uint64_t row, uint64_t col, uint64_t cols) {
  return testing::i2s_code(t.data.data(), row * cols + col);
}
float i2s_scale(const gguf::TensorInfo& t) {
  float s;
  std::memcpy(&s, t.data.data() + t.element_count() / 4, 4);
  return s;
}

// Checks every projection of `s` in GGUF file `f` (I2_S), with llama's Q/K row permutation when
// `permuted` (GGUF row h*d + 2i + j holds Hugging Face row h*d + j*d/2 + i).
void expect_ternary_projections(const gguf::GgufFile& f, const testing::SyntheticCheckpoint& s) {
  const std::map<std::string, std::string> names = {
      {"self_attn.q_proj.weight", "attn_q.weight"}, {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"}, {"self_attn.o_proj.weight", "attn_output.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},  {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  int checked = 0;
  for (uint64_t layer = 0; layer < s.n_layer; ++layer) {
    for (const auto& [hf, gguf_name] : names) {
      const auto& p = s.projections.at(fmt::format("model.layers.{}.{}", layer, hf));
      const gguf::TensorInfo* t = f.find_tensor(fmt::format("blk.{}.{}", layer, gguf_name));
      ASSERT_NE(t, nullptr) << gguf_name;
      ASSERT_EQ(t->type, gguf::GgmlType::I2_S);
      ASSERT_EQ(t->ne, (std::vector<uint64_t>{p.cols, p.rows}));
      EXPECT_FLOAT_EQ(i2s_scale(*t), p.scale) << gguf_name;
      uint64_t mismatches = 0;
      for (uint64_t r = 0; r < p.rows; ++r) {
        for (uint64_t c = 0; c < p.cols; ++c) mismatches += code_at(*t, r, c, p.cols) != p.codes[r * p.cols + c];
      }
      EXPECT_EQ(mismatches, 0u) << gguf_name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 7 * static_cast<int>(s.n_layer));
}

void expect_f32_vector(const gguf::GgufFile& f, const std::string& name, const std::vector<float>& want) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  ASSERT_NE(t, nullptr) << name;
  ASSERT_EQ(t->type, gguf::GgmlType::F32);
  ASSERT_EQ(t->element_count(), want.size());
  EXPECT_EQ(std::memcmp(t->data.data(), want.data(), want.size() * 4), 0) << name;
}

void expect_f16_matrix(const gguf::GgufFile& f, const std::string& name, const std::vector<float>& want) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  ASSERT_NE(t, nullptr) << name;
  ASSERT_EQ(t->type, gguf::GgmlType::F16);
  ASSERT_EQ(t->element_count(), want.size());
  uint64_t mismatches = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, t->data.data() + 2 * i, 2);
    mismatches += h != half::from_float(want[i]);
  }
  EXPECT_EQ(mismatches, 0u) << name;
}

TEST_F(ConvertTest, BitNetMasterWeightsBecomeTheirAbsmeanTernaryValues) {
  const auto s = testing::write_synthetic_checkpoint(dir_ / "m", HfLayout::kBitNetMaster);
  auto report = convert(dir_ / "m");
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->gguf_arch, "bitnet-b1.58");
  EXPECT_NE(report->layout.find("absmean"), std::string::npos);
  auto f = gguf::GgufFile::open(out().string());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(compat_errors(*f), "");
  EXPECT_EQ(f->tensors().size(), 2 + 11 * s.n_layer);  // tied: no output.weight
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  expect_ternary_projections(*f, s);
  expect_f16_matrix(*f, "token_embd.weight", s.vectors.at("model.embed_tokens.weight"));
  expect_f32_vector(*f, "blk.1.attn_sub_norm.weight", s.vectors.at("model.layers.1.self_attn.attn_sub_norm.weight"));
  expect_f32_vector(*f, "blk.0.ffn_sub_norm.weight", s.vectors.at("model.layers.0.mlp.ffn_sub_norm.weight"));
  expect_f32_vector(*f, "output_norm.weight", s.vectors.at("model.norm.weight"));
  EXPECT_EQ(f->get_uint("general.file_type"), 40u);
  EXPECT_EQ(f->get_uint("bitnet-b1.58.block_count"), s.n_layer);
  EXPECT_EQ(f->get_uint("bitnet-b1.58.attention.head_count_kv"), s.n_head_kv);
  EXPECT_EQ(f->get_uint("bitnet-b1.58.rope.dimension_count"), s.n_embd / s.n_head);
  EXPECT_FLOAT_EQ(*f->get_float("bitnet-b1.58.rope.freq_base"), 500000.0f);
  // Tokenizer: GPT-2 BPE with its merges, special ids from tokenizer_config.json, the template.
  EXPECT_EQ(*f->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*f->get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(f->get_array("tokenizer.ggml.tokens")->size(), s.n_vocab);
  EXPECT_EQ(f->get_array("tokenizer.ggml.merges")->size(), 4u);
  EXPECT_EQ(f->get_uint("tokenizer.ggml.bos_token_id"), 260u);
  EXPECT_EQ(f->get_uint("tokenizer.ggml.eos_token_id"), 261u);
  EXPECT_EQ(f->get_bool("tokenizer.ggml.add_bos_token"), true);
  ASSERT_NE(f->get_string("tokenizer.chat_template"), nullptr);
  EXPECT_NE(f->get_string("tokenizer.chat_template")->find("<|eot_id|>"), std::string::npos);
}

TEST_F(ConvertTest, PackedReleaseUnpacksAlongTheOutputDimensionWithInverseScales) {
  const auto s = testing::write_synthetic_checkpoint(dir_ / "p", HfLayout::kBitNetPacked, /*shards=*/3);
  auto report = convert(dir_ / "p");
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_NE(report->layout.find("packed"), std::string::npos);
  auto f = gguf::GgufFile::open(out().string());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(compat_errors(*f), "");
  expect_ternary_projections(*f, s);
}

TEST_F(ConvertTest, AddBosComesFromThePostProcessorWhenTheConfigIsSilent) {
  testing::write_synthetic_checkpoint(dir_ / "m", HfLayout::kBitNetPacked);
  testing::write_text(dir_ / "m" / "tokenizer_config.json", R"({"bos_token":"<|begin_of_text|>"})");
  auto add_bos_after_conversion = [&]() -> std::optional<bool> {
    auto report = convert(dir_ / "m");
    EXPECT_TRUE(report.ok()) << report.error().message;
    auto f = gguf::GgufFile::open(out().string());
    return f.ok() ? f->get_bool("tokenizer.ggml.add_bos_token") : std::nullopt;
  };
  EXPECT_EQ(add_bos_after_conversion(), std::nullopt);  // no post-processor: nothing said
  auto j = nlohmann::json::parse(std::ifstream(dir_ / "m" / "tokenizer.json"));
  // Llama 3's shape: Sequence[ByteLevel, TemplateProcessing starting with the BOS].
  j["post_processor"] = {{"type", "Sequence"},
                         {"processors",
                          {{{"type", "ByteLevel"}},
                           {{"type", "TemplateProcessing"},
                            {"single",
                             {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}}}};
  testing::write_text(dir_ / "m" / "tokenizer.json", j.dump());
  EXPECT_EQ(add_bos_after_conversion(), true);
}

// A checkpoint that stores the embedding twice (lm_head a byte-for-byte copy, tie flag false)
// converts like a tied one: no output.weight, which bitnet.cpp's `bitnet` graph refuses.
TEST_F(ConvertTest, AnLmHeadThatCopiesTheEmbeddingIsNotWritten) {
  testing::write_synthetic_checkpoint(dir_ / "o", HfLayout::kBitnet1bitLLM);
  std::vector<testing::StEntry> entries;
  {
    auto file = SafetensorsFile::open((dir_ / "o" / "model.safetensors").string());
    ASSERT_TRUE(file.ok()) << file.error().message;
    const StTensor* embedding = file->find("model.embed_tokens.weight");
    ASSERT_NE(embedding, nullptr);
    for (const StTensor& t : file->tensors()) {
      const StTensor& source = t.name == "lm_head.weight" ? *embedding : t;
      entries.push_back({t.name, std::string(st_dtype_name(source.dtype)), source.shape,
                         std::vector<uint8_t>(source.data.begin(), source.data.end())});
    }
  }
  testing::write_file(dir_ / "o" / "model.safetensors", testing::safetensors_bytes(entries));
  auto report = convert(dir_ / "o");
  ASSERT_TRUE(report.ok()) << report.error().message;
  auto f = gguf::GgufFile::open(out().string());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
  EXPECT_NE(f->find_tensor("token_embd.weight"), nullptr);
  EXPECT_EQ(compat_errors(*f), "");
}

TEST_F(ConvertTest, OlderBitnetWithSentencePieceTokenizerAndUntiedHead) {
  const auto s = testing::write_synthetic_checkpoint(dir_ / "o", HfLayout::kBitnet1bitLLM);
  auto report = convert(dir_ / "o");
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->gguf_arch, "bitnet");
  auto f = gguf::GgufFile::open(out().string());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(compat_errors(*f), "");
  expect_ternary_projections(*f, s);
  expect_f32_vector(*f, "blk.0.attn_sub_norm.weight", s.vectors.at("model.layers.0.self_attn.inner_attn_ln.weight"));
  expect_f32_vector(*f, "blk.1.ffn_sub_norm.weight", s.vectors.at("model.layers.1.mlp.ffn_layernorm.weight"));
  expect_f16_matrix(*f, "output.weight", s.vectors.at("lm_head.weight"));
  EXPECT_EQ(*f->get_string("tokenizer.ggml.model"), "llama");
  const gguf::Array* tokens = f->get_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens->size(), s.n_vocab);
  EXPECT_EQ(tokens->strings[1], "<s>");
  EXPECT_EQ(tokens->strings[s.n_vocab - 1], fmt::format("[PAD{}]", s.n_vocab - 1));
  EXPECT_EQ(f->get_array("tokenizer.ggml.scores")->size(), s.n_vocab);
  EXPECT_EQ(f->get_uint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(f->get_uint("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(f->get_bool("tokenizer.ggml.add_space_prefix"), true);
  EXPECT_EQ(*f->get_string("bitnet.rope.scaling.type"), "linear");
}

TEST_F(ConvertTest, LlamaQueryAndKeyRowsAreInterleavedPerHead) {
  const auto s = testing::write_synthetic_checkpoint(dir_ / "l", HfLayout::kLlama);
  auto report = convert(dir_ / "l", {.type = "f32"});
  ASSERT_TRUE(report.ok()) << report.error().message;
  auto f = gguf::GgufFile::open(out().string());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(compat_errors(*f), "");
  EXPECT_EQ(f->architecture(), "llama");
  const uint64_t d = s.n_embd / s.n_head;
  auto expect_rows = [&](const std::string& hf, const std::string& gguf_name, uint64_t heads, bool permuted) {
    const auto& p = s.projections.at(hf);
    const gguf::TensorInfo* t = f->find_tensor(gguf_name);
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(t->type, gguf::GgmlType::F32);
    const float* got = reinterpret_cast<const float*>(t->data.data());
    uint64_t mismatches = 0;
    for (uint64_t h = 0; h < heads; ++h) {
      for (uint64_t j = 0; j < 2; ++j) {
        for (uint64_t i = 0; i < d / 2; ++i) {
          const uint64_t from = h * d + j * d / 2 + i, to = permuted ? h * d + 2 * i + j : from;
          for (uint64_t c = 0; c < p.cols; ++c) mismatches += got[to * p.cols + c] != p.values[from * p.cols + c];
        }
      }
    }
    EXPECT_EQ(mismatches, 0u) << gguf_name;
  };
  expect_rows("model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight", s.n_head, true);
  expect_rows("model.layers.1.self_attn.k_proj.weight", "blk.1.attn_k.weight", s.n_head_kv, true);
  expect_rows("model.layers.1.self_attn.v_proj.weight", "blk.1.attn_v.weight", s.n_head_kv, false);
  ASSERT_NE(f->find_tensor("output.weight"), nullptr);
  EXPECT_EQ(f->get_uint("general.file_type"), 0u);
}

TEST_F(ConvertTest, DenseAndQ8EncodingsOfTernaryWeights) {
  const auto s = testing::write_synthetic_checkpoint(dir_ / "m", HfLayout::kBitNetMaster);
  auto report = convert(dir_ / "m", {.type = "f16", .embedding_type = "q8_0"});
  ASSERT_TRUE(report.ok()) << report.error().message;
  auto f = gguf::GgufFile::open(out().string());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(compat_errors(*f), "");
  EXPECT_EQ(f->find_tensor("token_embd.weight")->type, gguf::GgmlType::Q8_0);
  const auto& p = s.projections.at("model.layers.0.mlp.down_proj.weight");
  const gguf::TensorInfo* t = f->find_tensor("blk.0.ffn_down.weight");
  ASSERT_EQ(t->type, gguf::GgmlType::F16);
  uint64_t mismatches = 0;
  for (uint64_t i = 0; i < p.codes.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, t->data.data() + 2 * i, 2);
    mismatches += h != half::from_float(static_cast<float>(p.codes[i]) * p.scale);
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST_F(ConvertTest, TernaryTypesNeedTernaryWeightsAndTypesAreChecked) {
  testing::write_synthetic_checkpoint(dir_ / "l", HfLayout::kLlama);
  auto r = convert(dir_ / "l", {.type = "i2_s"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("needs ternary weights"), std::string::npos) << r.error().message;
  r = convert(dir_ / "l", {.type = "q4_k"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("unknown --type"), std::string::npos);
  r = convert(dir_ / "l", {.embedding_type = "i2_s"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("--embedding-type"), std::string::npos);
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(ConvertTest, BadCheckpointsAreClearErrorsAndWriteNothing) {
  auto error_after = [&](HfLayout layout, const std::function<void(const fs::path&)>& breakit) {
    const fs::path m = dir_ / "bad";
    fs::remove_all(m);
    testing::write_synthetic_checkpoint(m, layout);
    breakit(m);
    auto r = convert(m);
    EXPECT_FALSE(fs::exists(out()));
    return r.ok() ? std::string() : r.error().message;
  };
  auto edit_config = [](const fs::path& m, const std::function<void(nlohmann::json&)>& edit) {
    auto j = nlohmann::json::parse(std::ifstream(m / "config.json"));
    edit(j);
    testing::write_text(m / "config.json", j.dump());
  };
  // A config that disagrees with the tensors' shapes.
  EXPECT_NE(error_after(HfLayout::kBitNetMaster,
                        [&](const fs::path& m) { edit_config(m, [](auto& j) { j["intermediate_size"] = 384; }); })
                .find("expected [384, 256]"),
            std::string::npos);
  EXPECT_NE(error_after(HfLayout::kBitNetMaster,
                        [&](const fs::path& m) { edit_config(m, [](auto& j) { j["hidden_act"] = "silu"; }); })
                .find("relu2"),
            std::string::npos);
  EXPECT_NE(
      error_after(HfLayout::kBitNetMaster,
                  [&](const fs::path& m) { edit_config(m, [](auto& j) { j["architectures"] = {"GPT2LMHeadModel"}; }); })
          .find("not supported"),
      std::string::npos);
  EXPECT_NE(error_after(HfLayout::kBitNetMaster,
                        [&](const fs::path& m) { edit_config(m, [](auto& j) { j["num_key_value_heads"] = 3; }); })
                .find("heads"),
            std::string::npos);
  // A config value of the wrong JSON type.
  EXPECT_NE(error_after(HfLayout::kBitNetMaster,
                        [&](const fs::path& m) { edit_config(m, [](auto& j) { j["hidden_act"] = 5; }); })
                .find("unexpected JSON structure"),
            std::string::npos);
  // No tokenizer at all.
  EXPECT_NE(error_after(HfLayout::kBitNetMaster, [](const fs::path& m) { fs::remove(m / "tokenizer.json"); })
                .find("neither tokenizer.json nor tokenizer.model"),
            std::string::npos);
  // A truncated weights file.
  EXPECT_NE(error_after(HfLayout::kBitNetMaster,
                        [](const fs::path& m) {
                          fs::resize_file(m / "model.safetensors", fs::file_size(m / "model.safetensors") - 100);
                        })
                .find("past the end"),
            std::string::npos);
  // A tensor the graph has no place for.
  EXPECT_NE(error_after(HfLayout::kLlama,
                        [&](const fs::path& m) { edit_config(m, [](auto& j) { j["num_hidden_layers"] = 1; }); })
                .find("has no place"),
            std::string::npos);
}

}  // namespace
}  // namespace bitnet::convert
