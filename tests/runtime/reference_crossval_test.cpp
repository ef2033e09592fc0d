// Teacher-forced, per-op checks of the reference kernels against the C++ reference's own
// intermediates for seq16 (../shared/crossval/<model>/intermediates_seq16): each op gets the
// reference's input and must reproduce the reference's output bit for bit.
#include "reference_test_util.h"
#include "test_support.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace bitnet::testing {
namespace {

constexpr int64_t kTokens = 16;

class ReferenceCrossval : public ::testing::TestWithParam<std::string> {};

// Skips without ../shared; otherwise loads the model of this test's parameter.
#define LOAD_MODEL_OR_SKIP(m)    \
  BITNET_REQUIRE_SHARED(shared); \
  CrossvalModel m;               \
  ASSERT_TRUE(m.load(shared, GetParam()))

std::string layer_name(const std::string& base, int64_t layer) {
  return base + "-" + std::to_string(layer);
}

TEST_P(ReferenceCrossval, EmbeddingRowsAreExactF16) {
  LOAD_MODEL_OR_SKIP(m);
  const ref::WeightView embd = m.weight("token_embd.weight");
  ASSERT_EQ(embd.type, gguf::GgmlType::F16);
  std::vector<float> got(static_cast<size_t>(kTokens * m.n_embd));
  for (int64_t t = 0; t < kTokens; ++t) ref::dequantize_row(embd, seq16_tokens()[t], got.data() + t * m.n_embd);
  EXPECT_TRUE(all_equal("inp_embd", got, m.tensor("inp_embd", "GET_ROWS")));
}

// Every RMS_NORM of the graph (4 per layer + the final one) takes the entry just before it as
// input; the MUL right after it is the gain multiply.
TEST_P(ReferenceCrossval, RmsNormAndGainAreBitExact) {
  LOAD_MODEL_OR_SKIP(m);
  int checked = 0;
  for (size_t i = 1; i + 1 < m.entries.size(); ++i) {
    if (m.entries[i].op != "RMS_NORM") continue;
    const std::vector<float> input = m.tensor(static_cast<int>(i - 1));
    const std::vector<float> want = m.tensor(static_cast<int>(i));
    const int64_t n = static_cast<int64_t>(input.size()) / kTokens;
    std::vector<float> got(input.size());
    for (int64_t t = 0; t < kTokens; ++t) ref::rms_norm(input.data() + t * n, n, m.eps, got.data() + t * n);
    EXPECT_TRUE(
        all_equal(m.entries[i].file + " (" + m.entries[i].name + ", input " + m.entries[i - 1].file + ")", got, want));

    // Gain: attn_norm-N -> blk.N.attn_norm.weight, ..., result_norm -> output_norm.weight.
    const CrossvalModel::Entry& mul = m.entries[i + 1];
    ASSERT_EQ(mul.op, "MUL") << mul.file;
    std::string gain_name = "output_norm.weight";
    if (const size_t dash = mul.name.rfind('-'); dash != std::string::npos) {
      gain_name = "blk." + mul.name.substr(dash + 1) + "." + mul.name.substr(0, dash) + ".weight";
    }
    const std::vector<float> gain = m.vector_f32(gain_name);
    ASSERT_EQ(static_cast<int64_t>(gain.size()), n) << gain_name;
    std::vector<float> scaled(want.size());
    for (size_t k = 0; k < want.size(); ++k) scaled[k] = want[k] * gain[k % static_cast<size_t>(n)];
    EXPECT_TRUE(all_equal(mul.file + " (" + mul.name + " = norm * " + gain_name + ")", scaled,
                          m.tensor(static_cast<int>(i + 1))));
    ++checked;
  }
  EXPECT_EQ(checked, 4 * m.n_layer + 1);
}

// Every I2_S projection, from the reference input of the MUL_MAT.
TEST_P(ReferenceCrossval, I2sProjectionsAreBitExact) {
  LOAD_MODEL_OR_SKIP(m);
  struct Projection {
    const char* output;  // graph name prefix
    const char* input;   // graph name prefix of its input (a MUL)
    const char* weight;  // blk.N.<weight>.weight
  };
  const Projection projections[] = {
      {"Qcur", "attn_norm", "attn_q"},          {"Kcur", "attn_norm", "attn_k"},
      {"Vcur", "attn_norm", "attn_v"},          {"attn_o_out", "attn_sub_norm", "attn_output"},
      {"ffn_gate", "ffn_norm", "ffn_gate"},     {"ffn_up", "ffn_norm", "ffn_up"},
      {"ffn_down", "ffn_sub_norm", "ffn_down"},
  };
  for (int64_t layer = 0; layer < m.n_layer; ++layer) {
    for (const Projection& p : projections) {
      const ref::WeightView w = m.weight("blk." + std::to_string(layer) + "." + p.weight + ".weight");
      ASSERT_EQ(w.type, gguf::GgmlType::I2_S);
      const std::vector<float> x = m.tensor(layer_name(p.input, layer), "MUL");
      ASSERT_EQ(static_cast<int64_t>(x.size()), kTokens * w.cols);
      std::vector<float> got(static_cast<size_t>(kTokens * w.rows));
      ref::matmul(x.data(), kTokens, w, ref::Mode::kPrompt, got.data());
      const std::string name = layer_name(p.output, layer);
      EXPECT_TRUE(all_equal(name + " MUL_MAT", got, m.tensor(name, "MUL_MAT")));
      // The I2_S path does not depend on the mode.
      std::vector<float> decode(got.size());
      ref::matmul(x.data(), kTokens, w, ref::Mode::kDecode, decode.data());
      EXPECT_TRUE(all_equal(name + " MUL_MAT (decode mode)", decode, got));
    }
  }
}

TEST_P(ReferenceCrossval, RopeIsBitExact) {
  LOAD_MODEL_OR_SKIP(m);
  for (int64_t layer = 0; layer < m.n_layer; ++layer) {
    for (const char* base : {"Qcur", "Kcur"}) {
      const std::string name = layer_name(base, layer);
      std::vector<float> x = m.tensor(name, "MUL_MAT");
      const int64_t heads = static_cast<int64_t>(x.size()) / kTokens / m.head_dim;
      for (int64_t t = 0; t < kTokens; ++t) {
        ref::rope_neox(x.data() + t * heads * m.head_dim, m.head_dim, heads, t, m.freq_base, 1.0f);
      }
      EXPECT_TRUE(all_equal(name + " ROPE", x, m.tensor(name, "ROPE")));
    }
  }
}

// Attention in prompt mode from the reference q (after RoPE), k (after RoPE) and v: the raw
// scores over the 32-cell padded window, the softmax, kqv and its [token][embd] copy.
TEST_P(ReferenceCrossval, AttentionPiecesAreBitExact) {
  LOAD_MODEL_OR_SKIP(m);
  const ref::AttentionShape shape{m.n_head, m.n_head_kv, m.head_dim};
  const int64_t n_ctx = 512;  // the reference run's n_ctx
  const int64_t n_embd_kv = m.n_head_kv * m.head_dim;
  const int64_t n_kv = ref::padded_kv_length(kTokens, n_ctx);
  ASSERT_EQ(n_kv, 32);
  const float scale = 1.0f / std::sqrt(static_cast<float>(m.head_dim));

  for (int64_t layer = 0; layer < m.n_layer; ++layer) {
    const std::vector<float> q = m.tensor(layer_name("Qcur", layer), "ROPE");
    const std::vector<float> k = m.tensor(layer_name("Kcur", layer), "ROPE");
    const std::vector<float> v = m.tensor(layer_name("Vcur", layer), "MUL_MAT");
    std::vector<uint16_t> k_cache(static_cast<size_t>(n_ctx * n_embd_kv), 0);
    std::vector<uint16_t> v_cache(static_cast<size_t>(n_ctx * n_embd_kv), 0);
    const ref::KvLayerView kv{k_cache.data(), v_cache.data(), n_ctx};
    ref::kv_store(k.data(), v.data(), kTokens, 0, shape, kv);

    std::vector<float> out(static_cast<size_t>(kTokens * m.n_embd));
    std::vector<float> scores(static_cast<size_t>(m.n_head * kTokens * n_kv));
    std::vector<float> probs(scores.size());
    ref::attention(q.data(), kTokens, 0, shape, kv, ref::Mode::kPrompt, out.data(), scores.data(), probs.data());

    const std::vector<float> want_kq = m.tensor(layer_name("kq", layer), "MUL_MAT");
    const std::vector<float> want_probs = m.tensor(layer_name("kq_soft_max_ext", layer), "SOFT_MAX");
    EXPECT_TRUE(all_equal(layer_name("kq", layer), scores, want_kq));
    EXPECT_TRUE(all_equal(layer_name("kq_soft_max_ext", layer), probs, want_probs));

    // Softmax alone, from the reference scores.
    std::vector<float> mask(static_cast<size_t>(n_kv));
    std::vector<float> p(want_kq.size());
    for (int64_t h = 0; h < m.n_head; ++h) {
      for (int64_t t = 0; t < kTokens; ++t) {
        for (int64_t j = 0; j < n_kv; ++j) mask[j] = j <= t ? 0.0f : -std::numeric_limits<float>::infinity();
        const int64_t row = (h * kTokens + t) * n_kv;
        ref::softmax(want_kq.data() + row, mask.data(), n_kv, scale, p.data() + row);
      }
    }
    EXPECT_TRUE(all_equal(layer_name("kq_soft_max_ext", layer) + " (softmax of the reference kq)", p, want_probs));

    // kqv is [head][token][d]; our output is [token][head * d] = kqv_out.
    const std::vector<float> want_kqv = m.tensor(layer_name("kqv", layer), "MUL_MAT");
    std::vector<float> kqv(want_kqv.size());
    for (int64_t h = 0; h < m.n_head; ++h)
      for (int64_t t = 0; t < kTokens; ++t)
        for (int64_t d = 0; d < m.head_dim; ++d)
          kqv[(h * kTokens + t) * m.head_dim + d] = out[t * m.n_embd + h * m.head_dim + d];
    EXPECT_TRUE(all_equal(layer_name("kqv", layer), kqv, want_kqv));
    EXPECT_TRUE(all_equal(layer_name("kqv_out", layer), out, m.tensor(layer_name("kqv_out", layer), "CONT")));
  }
}

// The FFN activation and the gated product; the residual adds.
TEST_P(ReferenceCrossval, FfnActivationsAndResidualsAreBitExact) {
  LOAD_MODEL_OR_SKIP(m);
  for (int64_t layer = 0; layer < m.n_layer; ++layer) {
    const std::vector<float> gate = m.tensor(layer_name("ffn_gate", layer), "MUL_MAT");
    const std::vector<float> up = m.tensor(layer_name("ffn_up", layer), "MUL_MAT");
    std::vector<float> act(gate.size());
    std::string act_name;
    if (m.bitnet_silu()) {
      const int64_t n = static_cast<int64_t>(gate.size()) / kTokens;
      for (int64_t t = 0; t < kTokens; ++t) ref::silu_row(gate.data() + t * n, n, act.data() + t * n);
      act_name = layer_name("ffn_silu", layer);
      EXPECT_TRUE(all_equal(act_name, act, m.tensor(act_name, "SILU")));
      act = m.tensor(act_name, "SILU");
      act_name = layer_name("ffn_sub_out", layer);
    } else {
      // ggml_vec_relu_f32 is (x > 0) ? x : 0, then SQR is x * x.
      for (size_t i = 0; i < gate.size(); ++i) act[i] = gate[i] > 0.0f ? gate[i] : 0.0f;
      EXPECT_TRUE(all_equal(layer_name("ffn_relu", layer), act, m.tensor(layer_name("ffn_relu", layer), "RELU")));
      std::vector<float> relu = m.tensor(layer_name("ffn_relu", layer), "RELU");
      for (size_t i = 0; i < gate.size(); ++i) act[i] = relu[i] * relu[i];
      const std::string sqr = layer_name("ffn_sqr(relu)", layer);
      EXPECT_TRUE(all_equal(sqr, act, m.tensor(sqr, "SQR")));
      act = m.tensor(sqr, "SQR");
      act_name = layer_name("ffn_out", layer);
    }
    std::vector<float> gated(gate.size());
    for (size_t i = 0; i < gate.size(); ++i) gated[i] = act[i] * up[i];
    EXPECT_TRUE(all_equal(act_name, gated, m.tensor(act_name, "MUL")));

    const std::vector<float> residual =
        layer == 0 ? m.tensor("inp_embd", "GET_ROWS") : m.tensor(layer_name("l_out", layer - 1), "ADD");
    const std::vector<float> attn = m.tensor(layer_name("attn_o_out", layer), "MUL_MAT");
    std::vector<float> sum(residual.size());
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = attn[i] + residual[i];
    EXPECT_TRUE(all_equal(layer_name("ffn_inp", layer), sum, m.tensor(layer_name("ffn_inp", layer), "ADD")));
    const std::vector<float> ffn_inp = m.tensor(layer_name("ffn_inp", layer), "ADD");
    const std::vector<float> down = m.tensor(layer_name("ffn_down", layer), "MUL_MAT");
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = down[i] + ffn_inp[i];
    EXPECT_TRUE(all_equal(layer_name("l_out", layer), sum, m.tensor(layer_name("l_out", layer), "ADD")));
  }
}

// The tied F16 LM head in prompt mode (tinyBLAS, F32 activations).
TEST_P(ReferenceCrossval, LmHeadPromptIsBitExact) {
  LOAD_MODEL_OR_SKIP(m);
  const ref::WeightView embd = m.weight("token_embd.weight");
  const std::vector<float> x = m.tensor("result_norm", "MUL");
  std::vector<float> logits(static_cast<size_t>(kTokens * embd.rows));
  ref::matmul(x.data(), kTokens, embd, ref::Mode::kPrompt, logits.data());
  EXPECT_TRUE(all_equal("result_output", logits, m.tensor("result_output", "MUL_MAT")));
  // result_output is what seq16.logits.npy holds, too.
  EXPECT_TRUE(all_equal("seq16.logits", logits, m.array("seq16.logits.npy").f32));
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceCrossval, ::testing::ValuesIn(crossval_models()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) c = (c == '-') ? '_' : c;
                           return name;
                         });

}  // namespace
}  // namespace bitnet::testing
