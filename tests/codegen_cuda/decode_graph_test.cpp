// codegen_cuda/decode_graph.h: the CUDA decode program's configuration read from a model's
// optimised IR, and the errors for graphs whose ops the kernels do not run.
#include <gtest/gtest.h>

#include <iostream>
#include <string>

#include "codegen_cuda/decode_graph.h"
#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/lowering.h"
#include "frontend_gguf/model_config.h"
#include "passes/pass_manager.h"
#include "test_support.h"

namespace bitnet::testing {
namespace {

namespace cc = codegen_cuda;

ir::Graph graph_of(const std::string& path, bool optimize) {
  auto file = gguf::GgufFile::open(path);
  EXPECT_TRUE(file) << file.error().message;
  if (!file) return ir::Graph();
  auto graph = gguf::lower_to_ir(*file);
  EXPECT_TRUE(graph) << graph.error().message;
  if (!graph) return ir::Graph();
  if (optimize) {
    EXPECT_TRUE(passes::default_pipeline().run(*graph).ok());
  }
  return std::move(*graph);
}

// The optimised graph's first node of `op` whose result is named `name`.
ir::Node* node_named(ir::Graph& g, ir::OpKind op, const std::string& name) {
  for (ir::Node& n : g.mutable_nodes()) {
    if (n.op == op && g.value(n.result).name == name) return &n;
  }
  return nullptr;
}

void set_attr(ir::Node& n, const std::string& name, ir::AttrValue value) {
  for (ir::Attr& a : n.attrs) {
    if (a.name == name) a.value = std::move(value);
  }
}

TEST(CudaDecodeGraph, ReadsDimensionsAttributesAndTensorsFromTheOptimisedGraph) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string path = (shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string();
  const ir::Graph graph = graph_of(path, true);
  auto c = cc::decode_config_from_graph(graph, 100);
  ASSERT_TRUE(c) << c.error().message;
  // As the GGUF's metadata says.
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file);
  auto m = gguf::read_model_config(*file);
  ASSERT_TRUE(m);
  EXPECT_EQ(c->n_embd, static_cast<int64_t>(m->n_embd));
  EXPECT_EQ(c->n_ff, static_cast<int64_t>(m->n_ff));
  EXPECT_EQ(c->n_head, static_cast<int64_t>(m->n_head));
  EXPECT_EQ(c->n_head_kv, static_cast<int64_t>(m->n_head_kv));
  EXPECT_EQ(c->n_layer, static_cast<int64_t>(m->n_layer));
  EXPECT_EQ(c->n_vocab, static_cast<int64_t>(m->n_vocab));
  EXPECT_EQ(c->n_ctx, 128);
  EXPECT_EQ(c->eps, m->rms_eps);
  EXPECT_EQ(c->freq_base, m->rope_freq_base);
  EXPECT_EQ(c->freq_scale, m->rope_freq_scale);
  EXPECT_EQ(c->act, cc::FfnActivation::kRelu2);
  EXPECT_EQ(c->embd_type, cc::TableType::kF16);
  EXPECT_EQ(c->lm_head_tensor, "token_embd.weight");  // tied
  EXPECT_EQ(c->output_norm_tensor, "output_norm.weight");
  ASSERT_EQ(c->layer_tensors.size(), static_cast<size_t>(c->n_layer));
  for (int64_t layer = 0; layer < c->n_layer; ++layer) {
    const cc::DecodeLayerTensors want = cc::gguf_layer_tensors(layer);
    const cc::DecodeLayerTensors& got = c->layer_tensors[static_cast<size_t>(layer)];
    EXPECT_EQ(got.attn_norm, want.attn_norm);
    EXPECT_EQ(got.q, want.q);
    EXPECT_EQ(got.k, want.k);
    EXPECT_EQ(got.v, want.v);
    EXPECT_EQ(got.attn_sub_norm, want.attn_sub_norm);
    EXPECT_EQ(got.o, want.o);
    EXPECT_EQ(got.ffn_norm, want.ffn_norm);
    EXPECT_EQ(got.gate, want.gate);
    EXPECT_EQ(got.up, want.up);
    EXPECT_EQ(got.ffn_sub_norm, want.ffn_sub_norm);
    EXPECT_EQ(got.down, want.down);
  }
  // silu (bitnet-tiny-mha, arch bitnet).
  auto mha = cc::decode_config_from_graph(
      graph_of((shared / "models/bitnet-i2s/bitnet-tiny-mha.i2_s.gguf").string(), true), 64);
  ASSERT_TRUE(mha) << mha.error().message;
  EXPECT_EQ(mha->act, cc::FfnActivation::kSilu);
  EXPECT_EQ(mha->n_head, mha->n_head_kv);
}

// Each error names the node the kernels do not run and what they run there.
TEST(CudaDecodeGraph, RefusesGraphsWhoseOpsTheKernelsDoNotRun) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string path = (shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string();
  auto error_of = [](const ir::Graph& g) {
    auto c = cc::decode_config_from_graph(g, 64);
    EXPECT_FALSE(c);
    return c ? std::string() : c.error().message;
  };
  // Not optimised: the first norm is an rms_norm, not a norm_quantize.
  std::string e = error_of(graph_of(path, false));
  EXPECT_NE(e.find("%blk0.attn_norm.rms (rms_norm): expected norm_quantize (layer 0: attn_norm)"), std::string::npos)
      << e;
  // Another rotation style.
  ir::Graph g = graph_of(path, true);
  ir::Node* attn = node_named(g, ir::OpKind::RopeAttention, "blk1.attn");
  ASSERT_NE(attn, nullptr);
  set_attr(*attn, "style", std::string("normal"));
  e = error_of(g);
  EXPECT_NE(e.find("%blk1.attn (rope_attention): the kernels rotate NEOX pairs only"), std::string::npos) << e;
  // A layer unlike layer 0 (its activation).
  g = graph_of(path, true);
  ir::Node* ffn = node_named(g, ir::OpKind::GatedFfn, "blk2.ffn_mul");
  ASSERT_NE(ffn, nullptr);
  set_attr(*ffn, "act", std::string("silu"));
  e = error_of(g);
  EXPECT_NE(e.find("%blk2.out (matmul_add): the layer's heads, n_ff, activation or RoPE differ from layer 0's"),
            std::string::npos)
      << e;
  // A norm with its own eps.
  g = graph_of(path, true);
  ir::Node* norm = node_named(g, ir::OpKind::Norm, "out");
  ASSERT_NE(norm, nullptr);
  set_attr(*norm, "eps", 1e-6);
  e = error_of(g);
  EXPECT_NE(e.find("%out (norm): eps differs"), std::string::npos) << e;
  // Logits of every row (no select_rows): the decode program makes the wanted rows' only.
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file);
  auto all = gguf::lower_to_ir(*file, {.all_logits = true});
  ASSERT_TRUE(all);
  ASSERT_TRUE(passes::default_pipeline().run(*all).ok());
  e = error_of(*all);
  EXPECT_NE(e.find("(norm): expected norm_quantize (layer 4: attn_norm)"), std::string::npos) << e;
  // A llama model: its attention output is quantized without a sub-norm.
  e = error_of(graph_of((source_dir() / "models/stories260K.gguf").string(), true));
  EXPECT_NE(e.find("the CUDA kernels do not run %"), std::string::npos) << e;
  std::cout << "[llama] " << e << "\n";
}

}  // namespace
}  // namespace bitnet::testing
