// Conversion end to end: converted models load and generate through the public library.
// stories260K (the repository's trained llama) is rebuilt as a Hugging Face checkpoint (Q/K
// rows back in Hugging Face order, a SentencePiece tokenizer.model from its vocabulary) and
// converted again: every tensor comes back bit for bit and greedy generation is the same.
#include "bitnet/bitnet.h"
#include "convert/checkpoint_writer.h"
#include "convert/hf_convert.h"
#include "convert/synthetic_checkpoint.h"
#include "frontend_gguf/gguf_file.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>

namespace bitnet::convert {
namespace {

namespace fs = std::filesystem;

class ConvertGenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("bitnet-cgen-{}-{}", getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

std::shared_ptr<const Model> load(const std::string& path) {
  ModelParams params;
  params.use_cache = false;
  params.backend = "interp";  // the reference interpreter: no compile time in a unit test
  auto model = Model::load(path, params);
  EXPECT_TRUE(model.ok()) << model.error().message;
  return model.ok() ? *model : nullptr;
}

std::vector<Token> greedy(const std::shared_ptr<const Model>& model, const std::string& prompt, int n) {
  auto ctx = Context::create(model, {.n_ctx = 64, .threads = 1});
  EXPECT_TRUE(ctx.ok());
  if (!ctx.ok()) return {};
  const auto ids = model->vocab().tokenize(prompt, /*add_special=*/true, /*parse_special=*/false);
  GenerateParams params;
  params.n_predict = n;
  params.sampling.temperature = 0;
  params.stop_at_eog = false;
  auto g = generate(**ctx, ids, params);
  EXPECT_TRUE(g.ok()) << g.error().message;
  return g.ok() ? g->generated_ids : std::vector<Token>{};
}

TEST_F(ConvertGenerationTest, ConvertedBitNetGeneratesAndTokenizesAsItsTokenizerJson) {
  const auto s = testing::write_synthetic_checkpoint(dir_ / "m", testing::HfLayout::kBitNetPacked);
  const fs::path out = dir_ / "m.gguf";
  auto report = convert_hf_checkpoint((dir_ / "m").string(), out.string(), {});
  ASSERT_TRUE(report.ok()) << report.error().message;
  auto model = load(out.string());
  ASSERT_TRUE(model);
  EXPECT_EQ(model->architecture(), "bitnet-b1.58");
  // The GGUF's tokenizer splits text exactly as the tokenizer.json it came from.
  auto reference = Vocab::load((dir_ / "m" / "tokenizer.json").string());
  ASSERT_TRUE(reference.ok()) << reference.error().message;
  for (const std::string text : {"hello!", "hell o world", "\xC3\xA9t\xC3\xA9 <|eot_id|>"}) {
    EXPECT_EQ(model->vocab().tokenize(text, false, true), (*reference)->tokenize(text, false, true)) << text;
  }
  EXPECT_EQ(model->vocab().tokenize("hello", false, false), (std::vector<Token>{258, 111}));  // "hell" "o"
  const auto first = greedy(model, "hello", 6);
  ASSERT_EQ(first.size(), 6u);
  for (Token t : first) EXPECT_LT(static_cast<uint64_t>(t), s.n_vocab);
  EXPECT_EQ(greedy(model, "hello", 6), first);  // deterministic
}

// stories260K as a Hugging Face llama checkpoint, from its GGUF.
void write_stories_checkpoint(const gguf::GgufFile& g, const fs::path& dir) {
  fs::create_directories(dir);
  const uint64_t n_head = *g.get_uint("llama.attention.head_count");
  const uint64_t n_head_kv = *g.get_uint("llama.attention.head_count_kv");
  const uint64_t n_embd = *g.get_uint("llama.embedding_length");
  const uint64_t d = n_embd / n_head;
  std::vector<testing::StEntry> entries;
  auto hf_name = [](const std::string& name) -> std::string {
    if (name == "token_embd.weight") return "model.embed_tokens.weight";
    if (name == "output_norm.weight") return "model.norm.weight";
    if (name == "output.weight") return "lm_head.weight";
    const size_t dot = name.find('.', 4);
    const std::string layer = name.substr(4, dot - 4), rest = name.substr(dot + 1);
    const std::map<std::string, std::string> names = {
        {"attn_norm.weight", "input_layernorm.weight"},    {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},      {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},       {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"}};
    return "model.layers." + layer + "." + names.at(rest);
  };
  for (const auto& t : g.tensors()) {
    EXPECT_EQ(t.type, gguf::GgmlType::F32);
    std::vector<uint8_t> bytes(t.data.begin(), t.data.end());
    std::vector<uint64_t> shape(t.ne.rbegin(), t.ne.rend());
    const bool q = t.name.ends_with("attn_q.weight"), k = t.name.ends_with("attn_k.weight");
    if (q || k) {  // undo llama.cpp's permutation: HF row h*d + j*d/2 + i <- GGUF row h*d + 2i + j
      const uint64_t heads = q ? n_head : n_head_kv, cols = t.ne[0];
      for (uint64_t h = 0; h < heads; ++h) {
        for (uint64_t j = 0; j < 2; ++j) {
          for (uint64_t i = 0; i < d / 2; ++i) {
            std::memcpy(bytes.data() + (h * d + j * d / 2 + i) * cols * 4,
                        t.data.data() + (h * d + 2 * i + j) * cols * 4, cols * 4);
          }
        }
      }
    }
    entries.push_back({hf_name(t.name), "F32", shape, std::move(bytes)});
  }
  testing::write_file(dir / "model.safetensors", testing::safetensors_bytes(entries));
  const gguf::Array* tokens = g.get_array("tokenizer.ggml.tokens");
  const gguf::Array* scores = g.get_array("tokenizer.ggml.scores");
  const gguf::Array* types = g.get_array("tokenizer.ggml.token_type");
  std::vector<testing::SpmPieceSpec> pieces;
  for (size_t i = 0; i < tokens->size(); ++i) {
    pieces.push_back(
        {tokens->strings[i], static_cast<float>(*scores->float_at(i)), static_cast<int>(*types->int_at(i))});
  }
  testing::write_file(dir / "tokenizer.model", testing::sentencepiece_model_bytes(pieces, true));
  const nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                                 {"model_type", "llama"},
                                 {"hidden_act", "silu"},
                                 {"hidden_size", n_embd},
                                 {"intermediate_size", *g.get_uint("llama.feed_forward_length")},
                                 {"num_hidden_layers", *g.get_uint("llama.block_count")},
                                 {"num_attention_heads", n_head},
                                 {"num_key_value_heads", n_head_kv},
                                 {"vocab_size", tokens->size()},
                                 {"max_position_embeddings", *g.get_uint("llama.context_length")},
                                 {"rms_norm_eps", *g.get_float("llama.attention.layer_norm_rms_epsilon")},
                                 {"rope_theta", g.get_float("llama.rope.freq_base").value_or(10000.0)},
                                 {"tie_word_embeddings", false},
                                 {"bos_token_id", 1},
                                 {"eos_token_id", 2}};
  testing::write_text(dir / "config.json", config.dump(2));
}

TEST_F(ConvertGenerationTest, StoriesRoundTripsThroughAHuggingFaceCheckpoint) {
  const std::string stories = (testing::source_dir() / "models/stories260K.gguf").string();
  auto original = gguf::GgufFile::open(stories);
  ASSERT_TRUE(original.ok()) << original.error().message;
  write_stories_checkpoint(*original, dir_ / "stories");
  const fs::path out = dir_ / "stories.gguf";
  auto report =
      convert_hf_checkpoint((dir_ / "stories").string(), out.string(), {.type = "f32", .embedding_type = "f32"});
  ASSERT_TRUE(report.ok()) << report.error().message;
  auto converted = gguf::GgufFile::open(out.string());
  ASSERT_TRUE(converted.ok()) << converted.error().message;
  ASSERT_EQ(converted->tensors().size(), original->tensors().size());
  for (const auto& t : original->tensors()) {
    const gguf::TensorInfo* c = converted->find_tensor(t.name);
    ASSERT_NE(c, nullptr) << t.name;
    EXPECT_EQ(c->ne, t.ne) << t.name;
    ASSERT_EQ(c->data.size(), t.data.size()) << t.name;
    EXPECT_EQ(std::memcmp(c->data.data(), t.data.data(), t.data.size()), 0) << t.name;
  }
  EXPECT_EQ(converted->get_array("tokenizer.ggml.tokens")->strings,
            original->get_array("tokenizer.ggml.tokens")->strings);
  EXPECT_EQ(converted->get_uint("tokenizer.ggml.bos_token_id"), 1u);
  auto a = load(stories), b = load(out.string());
  ASSERT_TRUE(a && b);
  const auto want = greedy(a, "Once upon a time", 12);
  ASSERT_EQ(want.size(), 12u);
  EXPECT_EQ(greedy(b, "Once upon a time", 12), want);
}

}  // namespace
}  // namespace bitnet::convert
