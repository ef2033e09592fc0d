// The real models in ../shared/models read as their provenance describes.
#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/model_config.h"
#include "frontend_gguf/tokenizer_data.h"

#include "test_support.h"

#include <cstring>

namespace bitnet::gguf {
namespace {

TEST(GgufRealFiles, EverySharedFileParses) {
  BITNET_REQUIRE_SHARED(shared);
  const auto files = testing::shared_gguf_files(shared);
  ASSERT_GE(files.size(), 14u);
  for (const auto& path : files) {
    auto file = GgufFile::open(path.string());
    ASSERT_TRUE(file.ok()) << file.error().message;
    EXPECT_EQ(file->version(), 3u) << path;
    auto tok = read_tokenizer_data(*file);
    const bool supported_tokenizer = file->get_string("tokenizer.ggml.model") &&
                                     (*file->get_string("tokenizer.ggml.model") == "llama" ||
                                      *file->get_string("tokenizer.ggml.model") == "gpt2");
    EXPECT_EQ(tok.ok(), supported_tokenizer) << path << ": " << (tok.ok() ? "" : tok.error().message);
  }
}

TEST(GgufRealFiles, Stories260K) {
  BITNET_REQUIRE_SHARED(shared);
  auto file = GgufFile::open((shared / "models/stories260K.gguf").string());
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->metadata().size(), 19u);
  EXPECT_EQ(file->tensors().size(), 48u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->architecture(), "llama");
  for (const auto& t : file->tensors()) EXPECT_EQ(t.type, GgmlType::F32) << t.name;
  auto config = read_model_config(*file);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->n_embd, 64u);
  EXPECT_EQ(config->n_ff, 172u);
  EXPECT_EQ(config->n_layer, 5u);
  EXPECT_EQ(config->n_head, 8u);
  EXPECT_EQ(config->n_head_kv, 4u);
  EXPECT_EQ(config->head_dim, 8u);
  EXPECT_EQ(config->n_vocab, 512u);
  EXPECT_TRUE(config->separate_output);
  EXPECT_EQ(config->arch->rope_style, RopeStyle::kNormal);
  auto tok = read_tokenizer_data(*file);
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok->model, "llama");
  EXPECT_EQ(tok->tokens.size(), 512u);
  EXPECT_EQ(tok->special.bos, 1);
  EXPECT_EQ(tok->special.eos, 2);
  EXPECT_FALSE(tok->special.pad.has_value());  // stored as 0xFFFFFFFF = "no token"
  // output.weight equals token_embd.weight (models/PROVENANCE.md).
  const auto* embd = file->find_tensor("token_embd.weight");
  const auto* out = file->find_tensor("output.weight");
  ASSERT_TRUE(embd && out);
  EXPECT_EQ(0, std::memcmp(embd->data.data(), out->data.data(), embd->nbytes));
}

struct I2sModel {
  const char* file;
  const char* arch;
  uint64_t n_embd, n_ff, n_layer, n_head, n_head_kv;
  float rope_base;
  FfnActivation act;
};

TEST(GgufRealFiles, BitnetI2sModels) {
  BITNET_REQUIRE_SHARED(shared);
  // models/bitnet-i2s/PROVENANCE.md
  const I2sModel models[] = {
      {"bitnet-tiny-mha.i2_s.gguf", "bitnet", 256, 768, 4, 4, 4, 10000.0f, FfnActivation::kSilu},
      {"b158-tiny-gqa.i2_s.gguf", "bitnet-b1.58", 256, 768, 4, 8, 2, 500000.0f, FfnActivation::kReluSquared},
      {"b158-small-gqa.i2_s.gguf", "bitnet-b1.58", 384, 1152, 4, 6, 2, 500000.0f, FfnActivation::kReluSquared},
  };
  for (const auto& m : models) {
    SCOPED_TRACE(m.file);
    auto file = GgufFile::open((shared / "models/bitnet-i2s" / m.file).string());
    ASSERT_TRUE(file.ok()) << file.error().message;
    auto config = read_model_config(*file);
    ASSERT_TRUE(config.ok()) << config.error().message;
    EXPECT_EQ(file->architecture(), m.arch);
    EXPECT_EQ(config->n_embd, m.n_embd);
    EXPECT_EQ(config->n_ff, m.n_ff);
    EXPECT_EQ(config->n_layer, m.n_layer);
    EXPECT_EQ(config->n_head, m.n_head);
    EXPECT_EQ(config->n_head_kv, m.n_head_kv);
    EXPECT_EQ(config->n_vocab, 32000u);
    EXPECT_EQ(config->rope_freq_base, m.rope_base);
    EXPECT_EQ(config->arch->ffn_activation, m.act);
    EXPECT_FALSE(config->separate_output);
    EXPECT_EQ(file->tensors().size(), 2u + 11u * m.n_layer);
    size_t i2s = 0;
    for (const auto& t : file->tensors()) {
      if (t.type != GgmlType::I2_S) continue;
      ++i2s;
      EXPECT_EQ(t.nbytes, t.element_count() / 4 + 32) << t.name;
      float scale = 0;
      std::memcpy(&scale, t.data.data() + t.element_count() / 4, 4);
      EXPECT_GT(scale, 0.0f) << t.name;
    }
    EXPECT_EQ(i2s, 7u * m.n_layer);
    EXPECT_EQ(file->find_tensor("token_embd.weight")->type, GgmlType::F16);
  }
}

TEST(GgufRealFiles, VocabOnlyFiles) {
  BITNET_REQUIRE_SHARED(shared);
  struct Case {
    const char* file;
    const char* model;
    const char* pre;
    uint64_t n_vocab;
  };
  // models/PROVENANCE.md section 3.
  const Case cases[] = {{"ggml-vocab-llama-spm.gguf", "llama", "default", 32000},
                        {"ggml-vocab-phi-3.gguf", "llama", "default", 32064},
                        {"ggml-vocab-gpt-2.gguf", "gpt2", "gpt-2", 50257},
                        {"ggml-vocab-deepseek-llm.gguf", "gpt2", "deepseek-llm", 102400},
                        {"ggml-vocab-falcon.gguf", "gpt2", "falcon", 65024},
                        {"ggml-vocab-bert-bge.gguf", "bert", "bert-bge", 30522}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    auto file = GgufFile::open((shared / "models/vocab" / c.file).string());
    ASSERT_TRUE(file.ok()) << file.error().message;
    EXPECT_TRUE(file->tensors().empty());
    const TokenizerSummary s = summarize_tokenizer(*file);
    EXPECT_EQ(s.model, c.model);
    ASSERT_TRUE(s.pre.has_value());
    EXPECT_EQ(*s.pre, c.pre);
    EXPECT_EQ(s.n_tokens, c.n_vocab);
  }
}

}  // namespace
}  // namespace bitnet::gguf
