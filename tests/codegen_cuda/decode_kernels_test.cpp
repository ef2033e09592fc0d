// The decode step's kernels beyond the GEMV and the norm, on the host emulator against the
// reference kernels, bit for bit: the embedding lookup, RoPE + KV append + attention (one decode
// token over a partly filled cache, MHA and GQA, head sizes with and without a 64-element tail),
// and the fused GEMV epilogues (q|k|v with a scale per tensor, residual add, gated FFN).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "codegen_cuda/emit_attention_decode.h"
#include "codegen_cuda/emit_embed.h"
#include "codegen_cuda/emit_matmul_i2s.h"
#include "codegen_cuda/emit_rope_kv.h"
#include "codegen_cuda/repack.h"
#include "emu_module.h"
#include "kernel_test_data.h"
#include "reference/kernels.h"

namespace bitnet::testing {
namespace {

namespace cc = codegen_cuda;

int count_mismatches(const std::vector<float>& got, const std::vector<float>& want) {
  int n = 0;
  for (size_t i = 0; i < want.size(); ++i) n += float_bits(got[i]) != float_bits(want[i]);
  return n;
}

TEST(CudaEmbedF16, RowsWidenExactlyAndBadIdsGiveZeros) {
  const cc::EmbedShape shape{384, 50};
  const cc::KernelSource k = cc::emit_embed_f16(shape);
  std::string error;
  const auto module = EmuModule::build(k.source, &error);
  ASSERT_TRUE(module) << error;
  std::vector<uint16_t> table(static_cast<size_t>(shape.n_vocab * shape.n_embd));
  const std::vector<float> values = random_normal(table.size(), 3, 4.0f);
  for (size_t i = 0; i < table.size(); ++i) table[i] = ref::fp32_to_fp16(values[i]);
  table[5] = 0x7c00;  // +inf and a subnormal widen exactly too
  table[6] = 0x0003;
  const std::vector<int> tokens = {0, 49, 17, -1, 50};
  std::vector<float> x(tokens.size() * shape.n_embd, -3.0f);
  ASSERT_EQ(module->launch(k.name, cc::embed_grid(5), k.threads, static_cast<const unsigned short*>(table.data()),
                           tokens.data(), x.data(), 5),
            "");
  for (size_t t = 0; t < tokens.size(); ++t) {
    for (int64_t i = 0; i < shape.n_embd; ++i) {
      const bool valid = tokens[t] >= 0 && tokens[t] < shape.n_vocab;
      const float want = valid ? ref::fp16_to_fp32(table[static_cast<size_t>(tokens[t] * shape.n_embd + i)]) : 0.0f;
      ASSERT_EQ(float_bits(x[t * shape.n_embd + i]), float_bits(want)) << t << " " << i;
    }
  }
}

struct AttentionCase {
  int64_t n_head, n_head_kv, head_dim, n_ctx;
  std::vector<int64_t> positions;
  float freq_base;
};

// rope_kv + attention_scores + attention_softmax_pv for one token at `pos`, the cache holding
// random F16 keys/values at cells < pos, against ref::rope_neox, ref::kv_store and
// ref::attention (decode mode).
TEST(CudaAttentionDecode, RopeKvAppendAndAttentionMatchTheReferenceBitForBit) {
  const std::vector<AttentionCase> cases = {
      {4, 4, 64, 64, {0, 1, 31, 32, 63}, 10000.0f},  // bitnet-tiny-mha
      {8, 2, 32, 96, {5, 40, 95}, 500000.0f},        // b158-tiny-gqa (no 64-element chunk at all)
      {20, 5, 128, 256, {100, 255}, 500000.0f},      // 2B4T heads, shorter cache
      {2, 1, 80, 128, {33, 64, 127}, 10000.0f},      // a head with a 16-element tail
      // Long windows: V loads in batches of 16 chunks (two batches; one full batch and a 26-cell tail).
      {20, 5, 128, 2048, {1100, 2047}, 500000.0f},
      {2, 1, 80, 1088, {1087, 1050}, 10000.0f},
      // More cells than shared memory holds a row of: the softmax is a launch of its own
      // (separate_softmax), whose probabilities softmax_pv reads from global memory.
      {4, 2, 64, 8224, {8223, 8192, 200}, 500000.0f},
  };
  // The cases' own shapes: a separate softmax where the cells demand it.
  auto shape_of = [](const AttentionCase& c) {
    cc::AttentionDecodeShape a{c.n_head, c.n_head_kv, c.head_dim, c.n_ctx};
    a.separate_softmax = c.n_ctx > cc::kMaxSharedSoftmaxCells;
    return a;
  };
  // The other form of the softmax, where both fit.
  auto other_softmax = [](cc::AttentionDecodeShape a) {
    a.separate_softmax = !a.separate_softmax;
    return a;
  };
  std::string source, error;
  for (const AttentionCase& c : cases) {
    source += cc::emit_rope_kv({c.n_head, c.n_head_kv, c.head_dim, c.n_ctx}).source;
    const cc::AttentionDecodeShape a = shape_of(c);
    cc::AttentionDecodeShape fused = a, tail = a;
    fused.fuse_rope = true;
    tail.tail_norm = true;
    source += cc::emit_attention_scores(a).source + cc::emit_attention_softmax_pv(a).source +
              cc::emit_attention_scores(fused).source + cc::emit_attention_softmax_pv(tail).source;
    const cc::AttentionDecodeShape separate = a.separate_softmax ? a : other_softmax(a);
    source += cc::emit_attention_softmax(separate).source;
    if (!a.separate_softmax) source += cc::emit_attention_softmax_pv(separate).source;
  }
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  uint32_t seed = 10;
  for (const AttentionCase& c : cases) {
    const cc::RopeKvShape rope_shape{c.n_head, c.n_head_kv, c.head_dim, c.n_ctx};
    const cc::AttentionDecodeShape shape = shape_of(c);
    const cc::KernelSource rope_k = cc::emit_rope_kv(rope_shape);
    const cc::KernelSource scores_k = cc::emit_attention_scores(shape);
    const cc::KernelSource pv_k = cc::emit_attention_softmax_pv(shape);
    // softmax_pv after the separate softmax (the scores become probabilities in place).
    auto softmax_then_pv = [&](const cc::AttentionDecodeShape& a, std::vector<float> probs, const int* pos,
                               const uint16_t* v_cache, float* out, std::vector<void*> tail_args = {}) {
      const cc::KernelSource softmax_k = cc::emit_attention_softmax(a);
      const cc::KernelSource k = cc::emit_attention_softmax_pv(a);
      std::string failure =
          module->launch(softmax_k.name, cc::attention_softmax_grid(a), softmax_k.threads, probs.data(), pos);
      if (!failure.empty()) return failure;
      if (tail_args.empty()) {
        return module->launch(k.name, cc::attention_softmax_pv_grid(a), k.threads,
                              static_cast<const float*>(probs.data()), static_cast<const unsigned short*>(v_cache), pos,
                              out);
      }
      return module->launch(k.name, cc::attention_softmax_pv_grid(a), k.threads,
                            static_cast<const float*>(probs.data()), static_cast<const unsigned short*>(v_cache), pos,
                            out, static_cast<const float*>(tail_args[0]), static_cast<signed char*>(tail_args[1]),
                            static_cast<float*>(tail_args[2]), static_cast<int*>(tail_args[3]),
                            static_cast<float*>(nullptr), static_cast<unsigned*>(tail_args[4]));
    };
    const cc::RopeTables tables = cc::rope_tables(c.n_ctx, c.head_dim, c.freq_base, 1.0f);
    const int64_t n_embd = c.n_head * c.head_dim, n_embd_kv = c.n_head_kv * c.head_dim;
    for (int64_t pos : c.positions) {
      SCOPED_TRACE("h" + std::to_string(c.n_head) + " kv" + std::to_string(c.n_head_kv) + " d" +
                   std::to_string(c.head_dim) + " pos " + std::to_string(pos));
      // Large scores (stddev 3 q and k) so that the softmax is peaked, as in the dummy models.
      const std::vector<float> qkv = random_normal(static_cast<size_t>(n_embd + 2 * n_embd_kv), ++seed, 3.0f);
      const std::vector<float> old_kv = random_normal(static_cast<size_t>(2 * c.n_ctx * n_embd_kv), ++seed, 3.0f);
      std::vector<uint16_t> k_cache(static_cast<size_t>(c.n_ctx * n_embd_kv), 0), v_cache(k_cache.size(), 0);
      for (int64_t cell = 0; cell < pos; ++cell) {
        for (int64_t e = 0; e < n_embd_kv; ++e) {
          k_cache[cell * n_embd_kv + e] = ref::fp32_to_fp16(old_kv[cell * n_embd_kv + e]);
          v_cache[e * c.n_ctx + cell] = ref::fp32_to_fp16(old_kv[(c.n_ctx + cell) * n_embd_kv + e]);
        }
      }
      std::vector<uint16_t> ref_k = k_cache, ref_v = v_cache, fused_k = k_cache, fused_v = v_cache;
      // Reference: rope q and k in place, store k and v, attention in decode mode.
      std::vector<float> q(qkv.begin(), qkv.begin() + n_embd);
      std::vector<float> kk(qkv.begin() + n_embd, qkv.begin() + n_embd + n_embd_kv);
      const std::vector<float> vv(qkv.begin() + n_embd + n_embd_kv, qkv.end());
      ref::rope_neox(q.data(), c.head_dim, c.n_head, pos, c.freq_base, 1.0f);
      ref::rope_neox(kk.data(), c.head_dim, c.n_head_kv, pos, c.freq_base, 1.0f);
      const ref::AttentionShape ashape{c.n_head, c.n_head_kv, c.head_dim};
      const ref::KvLayerView view{ref_k.data(), ref_v.data(), c.n_ctx};
      ref::kv_store(kk.data(), vv.data(), 1, pos, ashape, view);
      std::vector<float> want(static_cast<size_t>(n_embd));
      ref::attention(q.data(), 1, pos, ashape, view, ref::Mode::kDecode, want.data());

      const int pos_i = static_cast<int>(pos);
      std::vector<uint16_t> q16(static_cast<size_t>(n_embd));
      std::vector<float> scores(static_cast<size_t>(c.n_head * c.n_ctx), 0.0f), out(want.size(), -5.0f);
      ASSERT_EQ(module->launch(rope_k.name, cc::rope_kv_grid(rope_shape), rope_k.threads, qkv.data(), tables.cos.data(),
                               tables.sin.data(), &pos_i, q16.data(), k_cache.data(), v_cache.data()),
                "");
      for (int64_t i = 0; i < n_embd; ++i) ASSERT_EQ(q16[i], ref::fp32_to_fp16(q[i])) << "q16 " << i;
      ASSERT_EQ(k_cache, ref_k);
      ASSERT_EQ(v_cache, ref_v);
      ASSERT_EQ(module->launch(scores_k.name, cc::attention_scores_grid(shape), scores_k.threads,
                               static_cast<const unsigned short*>(q16.data()),
                               static_cast<const unsigned short*>(k_cache.data()), &pos_i, scores.data()),
                "");
      if (shape.separate_softmax) {
        ASSERT_EQ(softmax_then_pv(shape, scores, &pos_i, v_cache.data(), out.data()), "");
      } else {
        ASSERT_EQ(module->launch(pv_k.name, cc::attention_softmax_pv_grid(shape), pv_k.threads,
                                 static_cast<const float*>(scores.data()),
                                 static_cast<const unsigned short*>(v_cache.data()), &pos_i, out.data()),
                  "");
      }
      EXPECT_EQ(count_mismatches(out, want), 0) << "first: " << out[0] << " vs " << want[0];
      if (!shape.separate_softmax) {  // the softmax as its own launch: the same bits
        std::vector<float> again(want.size(), -5.0f);
        ASSERT_EQ(softmax_then_pv(other_softmax(shape), scores, &pos_i, v_cache.data(), again.data()), "");
        EXPECT_EQ(count_mismatches(again, want), 0) << "separate softmax";
      }
      // Fewer scores blocks, each striding over several chunks of 32 cells (the batched step's
      // grid): the same scores.
      for (int blocks : {1, 3}) {
        cc::AttentionDecodeShape strided = shape;
        strided.position_blocks = blocks;
        std::vector<float> again(scores.size(), 0.0f);
        ASSERT_EQ(module->launch(scores_k.name, cc::attention_scores_grid(strided), scores_k.threads,
                                 static_cast<const unsigned short*>(q16.data()),
                                 static_cast<const unsigned short*>(k_cache.data()), &pos_i, again.data()),
                  "");
        EXPECT_EQ(cc::attention_scores_grid(strided).x, std::min<uint32_t>(blocks, c.n_ctx / 32));
        EXPECT_EQ(count_mismatches(again, scores), 0) << blocks << " blocks";
      }
      // The tail norm (attn_sub_norm by the last block to finish): the same outputs, and the
      // codes, scale and code sum of the reference's norm of them.
      {
        cc::AttentionDecodeShape tail = shape;
        tail.tail_norm = true;
        const cc::KernelSource tail_k = cc::emit_attention_softmax_pv(tail);
        const std::vector<float> gain = random_normal(want.size(), ++seed, 0.5f);
        std::vector<float> h(want.size()), again(want.size(), -5.0f);
        ref::rms_norm(want.data(), n_embd, 1e-5f, h.data());
        for (size_t e = 0; e < h.size(); ++e) h[e] = h[e] * gain[e];
        std::vector<int8_t> q_want(h.size()), q(h.size(), 99);
        const ref::I8Row row = ref::quantize_row_i8(h.data(), n_embd, q_want.data());
        float act_scale = -1.0f;
        int act_sum = -1;
        unsigned counter = 0;
        if (tail.separate_softmax) {
          ASSERT_EQ(softmax_then_pv(tail, scores, &pos_i, v_cache.data(), again.data(),
                                    {const_cast<float*>(gain.data()), q.data(), &act_scale, &act_sum, &counter}),
                    "");
        } else {
          ASSERT_EQ(module->launch(tail_k.name, cc::attention_softmax_pv_grid(tail), tail_k.threads,
                                   static_cast<const float*>(scores.data()),
                                   static_cast<const unsigned short*>(v_cache.data()), &pos_i, again.data(),
                                   static_cast<const float*>(gain.data()), reinterpret_cast<signed char*>(q.data()),
                                   &act_scale, &act_sum, static_cast<float*>(nullptr), &counter),
                    "");
        }
        EXPECT_EQ(count_mismatches(again, want), 0);
        EXPECT_EQ(q, q_want);
        EXPECT_EQ(float_bits(act_scale), float_bits(row.scale));
        EXPECT_EQ(act_sum, row.sum);
        EXPECT_EQ(counter, 0u);
      }
      // rope_kv's work folded into the scores kernel (the one-token step's default), with its
      // own grid and with blocks striding over the chunks: the same caches and scores.
      for (int blocks : {0, 3}) {
        cc::AttentionDecodeShape fused = shape;
        fused.fuse_rope = true;
        fused.position_blocks = blocks;
        const cc::KernelSource fused_k16 = cc::emit_attention_scores(fused);
        std::vector<uint16_t> kc = fused_k, vc = fused_v;
        std::vector<float> again(scores.size(), 0.0f);
        ASSERT_EQ(module->launch(fused_k16.name, cc::attention_scores_grid(fused), fused_k16.threads, qkv.data(),
                                 tables.cos.data(), tables.sin.data(), &pos_i, kc.data(), vc.data(), again.data()),
                  "");
        EXPECT_EQ(kc, ref_k) << blocks << " blocks";
        EXPECT_EQ(vc, ref_v) << blocks << " blocks";
        EXPECT_EQ(count_mismatches(again, scores), 0) << blocks << " blocks";
      }
    }
  }
}

// The batched variants (several tokens per launch, each of any sequence, a K/V region per
// sequence) against the one-token kernels run token after token: the same q16, caches and
// attention outputs bit for bit, including a sequence's later tokens attending to the cells
// its earlier tokens appended in the same launch; and with prompt flags, against ref::attention
// run per sequence in the mode the flags give.
TEST(CudaAttentionDecode, BatchedTokensOfSeveralSequencesInDecodeAndPromptMode) {
  struct Token {
    int seq, pos;
  };
  struct Case {
    int64_t n_head, n_head_kv, head_dim, n_ctx;
    std::vector<Token> tokens;  // each sequence's positions continue its cache
  };
  const std::vector<Case> cases = {
      {20, 5, 128, 256, {{0, 100}, {1, 40}, {0, 101}, {0, 102}, {1, 41}}},  // 2B4T heads
      {8, 2, 32, 96, {{1, 0}, {1, 1}, {0, 63}, {1, 2}, {0, 64}, {0, 65}}},  // b158-tiny-gqa, a fresh sequence
  };
  const float freq_base = 500000.0f;
  uint32_t seed = 70;
  for (const Case& c : cases) {
    SCOPED_TRACE("h" + std::to_string(c.n_head) + " d" + std::to_string(c.head_dim));
    const cc::RopeKvShape rope1{c.n_head, c.n_head_kv, c.head_dim, c.n_ctx};
    cc::RopeKvShape rope_b = rope1;
    rope_b.batched = true;
    const cc::AttentionDecodeShape attn1{c.n_head, c.n_head_kv, c.head_dim, c.n_ctx};
    cc::AttentionDecodeShape attn_b = attn1;
    attn_b.batched = true;
    attn_b.position_blocks = 2;  // blocks striding over the chunks, as the batched step's
    const cc::KernelSource k1[] = {cc::emit_rope_kv(rope1), cc::emit_attention_scores(attn1),
                                   cc::emit_attention_softmax_pv(attn1)};
    const cc::KernelSource kb[] = {cc::emit_rope_kv(rope_b), cc::emit_attention_scores(attn_b),
                                   cc::emit_attention_softmax_pv(attn_b)};
    cc::AttentionDecodeShape separate_b = attn_b;  // the softmax as a launch of its own
    separate_b.separate_softmax = true;
    const cc::KernelSource softmax_bk = cc::emit_attention_softmax(separate_b);
    const cc::KernelSource pv_bk = cc::emit_attention_softmax_pv(separate_b);
    std::string source = softmax_bk.source + pv_bk.source, error;
    for (const auto* set : {k1, kb}) {
      for (int i = 0; i < 3; ++i) source += set[i].source;
    }
    const auto module = EmuModule::build(source, &error);
    ASSERT_TRUE(module) << error;
    const cc::RopeTables tables = cc::rope_tables(c.n_ctx, c.head_dim, freq_base, 1.0f);
    const int64_t n_embd = c.n_head * c.head_dim, n_embd_kv = c.n_head_kv * c.head_dim;
    const int64_t n_qkv = n_embd + 2 * n_embd_kv, region = c.n_ctx * n_embd_kv;
    const auto n_tokens = static_cast<int64_t>(c.tokens.size());
    // Two sequences' regions: cells before each sequence's first token hold random keys and values.
    std::vector<uint16_t> k_cache(static_cast<size_t>(2 * region), 0), v_cache(k_cache.size(), 0);
    const std::vector<float> old_kv = random_normal(k_cache.size() * 2, ++seed, 3.0f);
    for (int s = 0; s < 2; ++s) {
      int first = static_cast<int>(c.n_ctx);
      for (const Token& t : c.tokens) first = t.seq == s ? std::min(first, t.pos) : first;
      for (int64_t cell = 0; cell < first; ++cell) {
        for (int64_t e = 0; e < n_embd_kv; ++e) {
          k_cache[s * region + cell * n_embd_kv + e] = ref::fp32_to_fp16(old_kv[s * region + cell * n_embd_kv + e]);
          v_cache[s * region + e * c.n_ctx + cell] = ref::fp32_to_fp16(old_kv[(2 + s) * region + e * c.n_ctx + cell]);
        }
      }
    }
    const std::vector<float> qkv = random_normal(static_cast<size_t>(n_tokens * n_qkv), ++seed, 3.0f);
    std::vector<int> pos, seq;
    for (const Token& t : c.tokens) pos.push_back(t.pos), seq.push_back(t.seq);

    // One token at a time, on the token's own region.
    std::vector<uint16_t> k_want = k_cache, v_want = v_cache, q16_want(static_cast<size_t>(n_tokens * n_embd));
    std::vector<float> want(static_cast<size_t>(n_tokens * n_embd)), scores(static_cast<size_t>(c.n_head * c.n_ctx));
    for (int64_t t = 0; t < n_tokens; ++t) {
      uint16_t* kc = k_want.data() + seq[t] * region;
      uint16_t* vc = v_want.data() + seq[t] * region;
      uint16_t* q16 = q16_want.data() + t * n_embd;
      ASSERT_EQ(module->launch(k1[0].name, cc::rope_kv_grid(rope1), k1[0].threads, qkv.data() + t * n_qkv,
                               tables.cos.data(), tables.sin.data(), &pos[t], q16, kc, vc),
                "");
      ASSERT_EQ(module->launch(k1[1].name, cc::attention_scores_grid(attn1), k1[1].threads,
                               static_cast<const unsigned short*>(q16), static_cast<const unsigned short*>(kc), &pos[t],
                               scores.data()),
                "");
      ASSERT_EQ(module->launch(k1[2].name, cc::attention_softmax_pv_grid(attn1), k1[2].threads,
                               static_cast<const float*>(scores.data()), static_cast<const unsigned short*>(vc),
                               &pos[t], want.data() + t * n_embd),
                "");
    }
    // All tokens in each launch.
    std::vector<uint16_t> q16(q16_want.size());
    std::vector<float> batch_scores(static_cast<size_t>(n_tokens) * scores.size()), out(want.size(), -5.0f);
    const auto tokens = static_cast<uint32_t>(n_tokens);
    cc::Dim3 grid = cc::rope_kv_grid(rope_b);
    grid.y = tokens;
    ASSERT_EQ(module->launch(kb[0].name, grid, kb[0].threads, qkv.data(), tables.cos.data(), tables.sin.data(),
                             static_cast<const int*>(pos.data()), q16.data(), k_cache.data(), v_cache.data(),
                             static_cast<const int*>(seq.data())),
              "");
    grid = cc::attention_scores_grid(attn_b);
    grid.z = tokens;
    ASSERT_EQ(module->launch(kb[1].name, grid, kb[1].threads, static_cast<const unsigned short*>(q16.data()),
                             static_cast<const unsigned short*>(k_cache.data()), static_cast<const int*>(pos.data()),
                             batch_scores.data(), static_cast<const int*>(seq.data())),
              "");
    std::vector<float> probs = batch_scores;
    grid = cc::attention_softmax_pv_grid(attn_b);
    grid.z = tokens;
    const std::vector<int> decode_mode(static_cast<size_t>(n_tokens), 0);
    ASSERT_EQ(module->launch(kb[2].name, grid, kb[2].threads, static_cast<const float*>(batch_scores.data()),
                             static_cast<const unsigned short*>(v_cache.data()), static_cast<const int*>(pos.data()),
                             out.data(), static_cast<const int*>(seq.data()), decode_mode.data()),
              "");
    EXPECT_EQ(q16, q16_want);
    EXPECT_EQ(k_cache, k_want);
    EXPECT_EQ(v_cache, v_want);
    EXPECT_EQ(count_mismatches(out, want), 0);
    // The separate softmax over every token's rows, then P·V: the same outputs.
    std::vector<float> again(want.size(), -5.0f);
    grid = cc::attention_softmax_grid(separate_b);
    grid.z = tokens;
    ASSERT_EQ(module->launch(softmax_bk.name, grid, softmax_bk.threads, probs.data(),
                             static_cast<const int*>(pos.data()), decode_mode.data()),
              "");
    grid = cc::attention_softmax_pv_grid(separate_b);
    grid.z = tokens;
    ASSERT_EQ(module->launch(pv_bk.name, grid, pv_bk.threads, static_cast<const float*>(probs.data()),
                             static_cast<const unsigned short*>(v_cache.data()), static_cast<const int*>(pos.data()),
                             again.data(), static_cast<const int*>(seq.data()), decode_mode.data()),
              "");
    EXPECT_EQ(count_mismatches(again, want), 0) << "separate softmax";

    // Prompt mode: a sequence's tokens when it has two or more in the call, as ref::attention runs
    // the rows of one call (Mode::kPrompt: F32 p, tinyBLAS P·V); a sequence's single token in
    // decode mode. Both softmax forms, from the same scores.
    std::vector<int> prompt(static_cast<size_t>(n_tokens));
    std::vector<float> want_prompt(want.size());
    const ref::AttentionShape ashape{c.n_head, c.n_head_kv, c.head_dim};
    for (int s = 0; s < 2; ++s) {
      std::vector<int64_t> rows;
      for (int64_t t = 0; t < n_tokens; ++t) {
        if (seq[t] == s) rows.push_back(t);
      }
      if (rows.empty()) continue;
      std::vector<float> q(rows.size() * static_cast<size_t>(n_embd)), o(q.size());
      for (size_t r = 0; r < rows.size(); ++r) {
        for (int64_t e = 0; e < n_embd; ++e) q[r * n_embd + e] = ref::fp16_to_fp32(q16[rows[r] * n_embd + e]);
      }
      std::vector<uint16_t> kc(k_cache.begin() + s * region, k_cache.begin() + (s + 1) * region);
      std::vector<uint16_t> vc(v_cache.begin() + s * region, v_cache.begin() + (s + 1) * region);
      const ref::KvLayerView view{kc.data(), vc.data(), c.n_ctx};
      const auto n = static_cast<int64_t>(rows.size());
      ref::attention(q.data(), n, pos[rows[0]], ashape, view, n >= 2 ? ref::Mode::kPrompt : ref::Mode::kDecode,
                     o.data());
      for (size_t r = 0; r < rows.size(); ++r) {
        prompt[rows[r]] = n >= 2 ? 1 : 0;
        std::copy(o.begin() + r * n_embd, o.begin() + (r + 1) * n_embd, want_prompt.begin() + rows[r] * n_embd);
      }
    }
    EXPECT_GT(count_mismatches(want_prompt, want), 0) << "the cases' prompt and decode modes should differ";
    grid = cc::attention_softmax_pv_grid(attn_b);
    grid.z = tokens;
    std::vector<float> prompt_out(want.size(), -5.0f);
    ASSERT_EQ(module->launch(kb[2].name, grid, kb[2].threads, static_cast<const float*>(batch_scores.data()),
                             static_cast<const unsigned short*>(v_cache.data()), static_cast<const int*>(pos.data()),
                             prompt_out.data(), static_cast<const int*>(seq.data()), prompt.data()),
              "");
    EXPECT_EQ(count_mismatches(prompt_out, want_prompt), 0) << "prompt mode";
    std::vector<float> prompt_probs = batch_scores;
    grid = cc::attention_softmax_grid(separate_b);
    grid.z = tokens;
    ASSERT_EQ(module->launch(softmax_bk.name, grid, softmax_bk.threads, prompt_probs.data(),
                             static_cast<const int*>(pos.data()), prompt.data()),
              "");
    grid = cc::attention_softmax_pv_grid(separate_b);
    grid.z = tokens;
    std::fill(prompt_out.begin(), prompt_out.end(), -5.0f);
    ASSERT_EQ(module->launch(pv_bk.name, grid, pv_bk.threads, static_cast<const float*>(prompt_probs.data()),
                             static_cast<const unsigned short*>(v_cache.data()), static_cast<const int*>(pos.data()),
                             prompt_out.data(), static_cast<const int*>(seq.data()), prompt.data()),
              "");
    EXPECT_EQ(count_mismatches(prompt_out, want_prompt), 0) << "prompt mode, separate softmax";
  }
}

// Quantized activations for one token, as the norm kernel makes them.
struct OneToken {
  std::vector<int8_t> q;
  ref::I8Row row;
};
OneToken quantized(int64_t k, uint32_t seed) {
  OneToken a;
  const std::vector<float> x = random_normal(static_cast<size_t>(k), seed, 2.0f);
  a.q.resize(x.size());
  a.row = ref::quantize_row_i8(x.data(), k, a.q.data());
  return a;
}

// Plain outputs of one I2_S tensor as the reference computes them.
std::vector<float> reference_rows(const std::vector<uint8_t>& data, int64_t rows, int64_t cols, const OneToken& a) {
  const ref::WeightView w{gguf::GgmlType::I2_S, data.data(), rows, cols};
  std::vector<float> y(static_cast<size_t>(rows));
  ref::matmul_i8q_rows(a.q.data(), &a.row, 1, w, 0, rows, y.data());
  return y;
}

std::vector<uint32_t> repacked(const std::vector<uint8_t>& data, int64_t rows, int64_t cols) {
  auto words = cc::repack_i2s(data.data(), rows, cols);
  EXPECT_TRUE(words);
  return words ? *words : std::vector<uint32_t>{};
}

// The fused launches of the decode step: q|k|v stacked with three scales, the o/down projection
// adding onto the residual, gate|up interleaved with relu2 or silu applied, each at a split-K
// decode tiling and a plain one.
TEST(CudaMatmulI2sEpilogues, FusedLaunchesMatchTheSeparateReferenceOpsBitForBit) {
  struct Dims {
    int64_t k, n_embd, n_kv, n_ff;
  };
  for (const Dims& d : {Dims{256, 256, 64, 768}, Dims{6912, 256, 128, 384}, Dims{384, 384, 128, 1152}}) {
    SCOPED_TRACE("k " + std::to_string(d.k));
    const OneToken a = quantized(d.k, static_cast<uint32_t>(d.k));
    const std::vector<float> act_scale = {a.row.scale};
    const std::vector<int> act_sum = {a.row.sum};
    const auto q = random_i2s(d.n_embd, d.k, 0.031f, 1), k = random_i2s(d.n_kv, d.k, 0.047f, 2),
               v = random_i2s(d.n_kv, d.k, 0.013f, 3);
    const auto gate = random_i2s(d.n_ff, d.k, 0.021f, 4), up = random_i2s(d.n_ff, d.k, 0.017f, 5);
    const auto o = random_i2s(d.n_embd, d.k, 0.029f, 6);

    // q|k|v: one stacked weight, three scales.
    std::vector<uint32_t> qkv_w = repacked(q, d.n_embd, d.k);
    for (const auto& [t, rows] : {std::pair{&k, d.n_kv}, std::pair{&v, d.n_kv}}) {
      const auto words = repacked(*t, rows, d.k);
      qkv_w.insert(qkv_w.end(), words.begin(), words.end());
    }
    const std::vector<float> qkv_scales = {0.031f, 0.047f, 0.013f};
    std::vector<float> want_qkv = reference_rows(q, d.n_embd, d.k, a);
    for (const auto& [t, rows] : {std::pair{&k, d.n_kv}, std::pair{&v, d.n_kv}}) {
      const auto y = reference_rows(*t, rows, d.k, a);
      want_qkv.insert(want_qkv.end(), y.begin(), y.end());
    }
    // gate|up interleaved by rows.
    const auto gate_w = repacked(gate, d.n_ff, d.k), up_w = repacked(up, d.n_ff, d.k);
    std::vector<uint32_t> gu_w;
    const int64_t row_words = d.k / 16;
    for (int64_t r = 0; r < d.n_ff; ++r) {
      gu_w.insert(gu_w.end(), gate_w.begin() + r * row_words, gate_w.begin() + (r + 1) * row_words);
      gu_w.insert(gu_w.end(), up_w.begin() + r * row_words, up_w.begin() + (r + 1) * row_words);
    }
    const std::vector<float> gu_scales = {0.021f, 0.017f};
    const std::vector<float> g_ref = reference_rows(gate, d.n_ff, d.k, a), u_ref = reference_rows(up, d.n_ff, d.k, a);
    std::vector<float> want_relu2(g_ref.size()), want_silu(g_ref.size());
    ref::silu_row(g_ref.data(), d.n_ff, want_silu.data());
    for (size_t i = 0; i < g_ref.size(); ++i) {
      const float r = g_ref[i] > 0.0f ? g_ref[i] : 0.0f;
      want_relu2[i] = (r * r) * u_ref[i];
      want_silu[i] = want_silu[i] * u_ref[i];
    }
    // Residual add.
    const std::vector<float> residual = random_normal(static_cast<size_t>(d.n_embd), 9, 5.0f);
    const std::vector<float> o_ref = reference_rows(o, d.n_embd, d.k, a);
    std::vector<float> want_add(residual.size());
    for (size_t i = 0; i < residual.size(); ++i) want_add[i] = residual[i] + o_ref[i];
    const std::vector<float> o_scale = {0.029f};

    for (const bool decode_tiling : {true, false}) {
      auto shape_for = [&](int64_t m) {
        return decode_tiling ? cc::decode_gemv_shape(d.k, m) : cc::MatmulI2sShape{d.k, m, 1, 2, 4};
      };
      cc::MatmulI2sShape qkv_shape = shape_for(d.n_embd + 2 * d.n_kv);
      qkv_shape.segment_end[0] = d.n_embd;
      qkv_shape.segment_end[1] = d.n_embd + d.n_kv;
      cc::MatmulI2sShape relu_shape = shape_for(2 * d.n_ff), silu_shape = relu_shape, add_shape = shape_for(d.n_embd);
      relu_shape.epilogue = cc::MatmulI2sEpilogue::kGluRelu2;
      silu_shape.epilogue = cc::MatmulI2sEpilogue::kGluSilu;
      add_shape.epilogue = cc::MatmulI2sEpilogue::kResidualAdd;
      std::string source, error;
      for (const auto* s : {&qkv_shape, &relu_shape, &silu_shape, &add_shape}) source += cc::emit_matmul_i2s(*s).source;
      const auto module = EmuModule::build(source, &error);
      ASSERT_TRUE(module) << error;
      auto run = [&](const cc::MatmulI2sShape& shape, const std::vector<uint32_t>& w, const std::vector<float>& scales,
                     std::vector<float>& y) {
        const cc::KernelSource kern = cc::emit_matmul_i2s(shape);
        ASSERT_TRUE(cc::matmul_i2s_fused(shape));
        ASSERT_EQ(module->launch(kern.name, cc::matmul_i2s_grid(shape, 1), kern.threads,
                                 static_cast<const unsigned int*>(w.data()), scales.data(),
                                 reinterpret_cast<const signed char*>(a.q.data()), act_scale.data(), act_sum.data(),
                                 y.data(), 1),
                  "");
      };
      std::vector<float> y_qkv(want_qkv.size()), y_relu(want_relu2.size()), y_silu(want_silu.size()), y_add = residual;
      run(qkv_shape, qkv_w, qkv_scales, y_qkv);
      run(relu_shape, gu_w, gu_scales, y_relu);
      run(silu_shape, gu_w, gu_scales, y_silu);
      run(add_shape, repacked(o, d.n_embd, d.k), o_scale, y_add);
      EXPECT_EQ(count_mismatches(y_qkv, want_qkv), 0) << "qkv, decode tiling " << decode_tiling;
      EXPECT_EQ(count_mismatches(y_relu, want_relu2), 0) << "relu2, decode tiling " << decode_tiling;
      EXPECT_EQ(count_mismatches(y_silu, want_silu), 0) << "silu, decode tiling " << decode_tiling;
      EXPECT_EQ(count_mismatches(y_add, want_add), 0) << "residual, decode tiling " << decode_tiling;
    }
  }
  cc::MatmulI2sShape odd{256, 96, 1, 1, 4};
  odd.epilogue = cc::MatmulI2sEpilogue::kGluRelu2;
  EXPECT_THROW(cc::emit_matmul_i2s(odd), std::invalid_argument);  // gated needs row pairs
  cc::MatmulI2sShape bad_segments{256, 96, 1};
  bad_segments.segment_end[0] = 64;
  bad_segments.segment_end[1] = 32;
  EXPECT_THROW(cc::emit_matmul_i2s(bad_segments), std::invalid_argument);
}

}  // namespace
}  // namespace bitnet::testing

namespace bitnet::testing {
namespace {

// A GEMV with the RMSNorm + gain + int8 quantization folded in (every block quantizes the row
// itself) against ref::rms_norm, the gain multiply, ref::quantize_row_i8 and the GEMV, bit for
// bit, for the decode step's four fused launches: q|k|v (segments), o and down (residual add,
// down with split-K), gate|up (relu2), at the 2B4T and tiny shapes, two tokens (grid.y).
TEST(CudaMatmulI2sFusedNorm, NormFoldedIntoTheGemvMatchesTheSeparateOpsBitForBit) {
  struct Case {
    int64_t k, m;
    cc::MatmulI2sEpilogue epilogue;
    bool segments;
  };
  const std::vector<Case> cases = {
      {2560, 3840, cc::MatmulI2sEpilogue::kStore, true},    {6912, 256, cc::MatmulI2sEpilogue::kResidualAdd, false},
      {256, 1536, cc::MatmulI2sEpilogue::kGluRelu2, false}, {768, 256, cc::MatmulI2sEpilogue::kResidualAdd, false},
      {256, 384, cc::MatmulI2sEpilogue::kStore, true},
  };
  std::vector<cc::MatmulI2sShape> shapes;
  std::string source, error;
  for (const Case& c : cases) {
    cc::MatmulI2sShape shape = cc::decode_gemv_shape(c.k, c.m);
    shape.epilogue = c.epilogue;
    if (c.segments) {
      shape.segment_end[0] = c.m * 2 / 3;
      shape.segment_end[1] = c.m * 5 / 6;
    }
    shape.fuse_norm = true;
    shape.norm_eps = 1e-5f;
    shapes.push_back(shape);
    source += cc::emit_matmul_i2s(shape).source;
  }
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  const int n_tokens = 2;
  uint32_t seed = 900;
  for (const cc::MatmulI2sShape& shape : shapes) {
    SCOPED_TRACE(cc::emit_matmul_i2s(shape).name);
    const std::vector<float> x = random_normal(static_cast<size_t>(n_tokens * shape.k), ++seed, 3.0f);
    std::vector<float> gain = random_normal(static_cast<size_t>(shape.k), ++seed, 0.5f);
    // The weight is one I2_S tensor with one scale; its scale is given for every segment / half.
    const float scale = 0.023f;
    const std::vector<uint8_t> data = random_i2s(shape.m, shape.k, scale, ++seed);
    const std::vector<float> scales = {scale, scale, scale};
    // Reference: norm, gain, quantize, product (rows in order), then the epilogue.
    std::vector<float> plain(static_cast<size_t>(n_tokens * shape.m));
    for (int t = 0; t < n_tokens; ++t) {
      std::vector<float> h(static_cast<size_t>(shape.k));
      ref::rms_norm(x.data() + t * shape.k, shape.k, 1e-5f, h.data());
      for (int64_t i = 0; i < shape.k; ++i) h[i] = h[i] * gain[i];
      std::vector<int8_t> q(h.size());
      const ref::I8Row row = ref::quantize_row_i8(h.data(), shape.k, q.data());
      const ref::WeightView w{gguf::GgmlType::I2_S, data.data(), shape.m, shape.k};
      ref::matmul_i8q_rows(q.data(), &row, 1, w, 0, shape.m, plain.data() + t * shape.m);
    }
    const std::vector<float> residual = random_normal(plain.size(), ++seed, 4.0f);
    std::vector<float> want, y;
    if (shape.epilogue == cc::MatmulI2sEpilogue::kGluRelu2) {
      for (int t = 0; t < n_tokens; ++t) {
        for (int64_t r = 0; r < shape.m / 2; ++r) {
          const float g = plain[t * shape.m + 2 * r], u = plain[t * shape.m + 2 * r + 1];
          const float a = g > 0.0f ? g : 0.0f;
          want.push_back((a * a) * u);
        }
      }
      y.assign(want.size(), -1.0f);
    } else if (shape.epilogue == cc::MatmulI2sEpilogue::kResidualAdd) {
      for (size_t i = 0; i < plain.size(); ++i) want.push_back(residual[i] + plain[i]);
      y = residual;
    } else {
      want = plain;
      y.assign(want.size(), -1.0f);
    }
    const cc::KernelSource kern = cc::emit_matmul_i2s(shape);
    const std::vector<uint32_t> words = repacked(data, shape.m, shape.k);
    ASSERT_EQ(module->launch(kern.name, cc::matmul_i2s_grid(shape, n_tokens), kern.threads,
                             static_cast<const unsigned int*>(words.data()), scales.data(), x.data(),
                             static_cast<const float*>(gain.data()), y.data(), n_tokens),
              "");
    EXPECT_EQ(count_mismatches(y, want), 0);
  }
  cc::MatmulI2sShape tiled{256, 64, 2};
  tiled.fuse_norm = true;
  EXPECT_THROW(cc::emit_matmul_i2s(tiled), std::invalid_argument);  // one token per block only
}

// The next GEMV's norm done by the last block of this one (MatmulI2sShape::tail_norm), at the
// decode tilings of the 2B4T shape (o and down with split-K add to the residual, gate|up is
// gated) and of the tiny models: the outputs, and the codes, scale, code sum (and normed floats)
// of the output row, against the reference ops bit for bit; the counter is left at 0, so the
// next launch (here: the same one again) works too.
TEST(CudaMatmulI2sTailNorm, TheLastBlockNormalisesTheOutputRowAsTheReference) {
  struct Case {
    int64_t k, m;
    cc::MatmulI2sEpilogue epilogue;
    bool normed;
  };
  const std::vector<Case> cases = {
      {2560, 2560, cc::MatmulI2sEpilogue::kResidualAdd, false}, {6912, 2560, cc::MatmulI2sEpilogue::kResidualAdd, true},
      {2560, 13824, cc::MatmulI2sEpilogue::kGluRelu2, false},   {256, 1536, cc::MatmulI2sEpilogue::kGluSilu, false},
      {768, 256, cc::MatmulI2sEpilogue::kResidualAdd, true},
  };
  std::vector<cc::MatmulI2sShape> shapes;
  std::string source, error;
  for (const Case& c : cases) {
    cc::MatmulI2sShape shape = cc::decode_gemv_shape(c.k, c.m);
    shape.epilogue = c.epilogue;
    shape.tail_norm = true;
    shape.norm_eps = 1e-5f;
    shapes.push_back(shape);
    source += cc::emit_matmul_i2s(shape).source;
  }
  const auto module = EmuModule::build(source, &error);
  ASSERT_TRUE(module) << error;
  uint32_t seed = 1300;
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const cc::MatmulI2sShape& shape = shapes[ci];
    const cc::KernelSource kern = cc::emit_matmul_i2s(shape);
    SCOPED_TRACE(kern.name);
    const bool gated = shape.epilogue != cc::MatmulI2sEpilogue::kResidualAdd;
    const int64_t n = gated ? shape.m / 2 : shape.m;  // the output row the tail normalises
    const OneToken a = quantized(shape.k, ++seed);
    const float scale = 0.027f;
    const std::vector<uint8_t> data = random_i2s(shape.m, shape.k, scale, ++seed);
    const std::vector<float> scales = {scale, scale, scale};
    std::vector<float> plain(static_cast<size_t>(shape.m));
    const ref::WeightView w{gguf::GgmlType::I2_S, data.data(), shape.m, shape.k};
    ref::matmul_i8q_rows(a.q.data(), &a.row, 1, w, 0, shape.m, plain.data());
    const std::vector<float> residual = random_normal(static_cast<size_t>(n), ++seed, 4.0f);
    std::vector<float> want(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      if (!gated) {
        want[r] = residual[r] + plain[r];
      } else {
        const float g = plain[2 * r], u = plain[2 * r + 1];
        float act;
        if (shape.epilogue == cc::MatmulI2sEpilogue::kGluRelu2) {
          const float pos = g > 0.0f ? g : 0.0f;
          act = pos * pos;
        } else {
          act = ref::silu(g);
        }
        want[r] = act * u;
      }
    }
    const std::vector<float> gain = random_normal(static_cast<size_t>(n), ++seed, 0.5f);
    std::vector<float> h(static_cast<size_t>(n));
    ref::rms_norm(want.data(), n, 1e-5f, h.data());
    for (int64_t i = 0; i < n; ++i) h[i] = h[i] * gain[i];
    std::vector<int8_t> q_want(h.size());
    const ref::I8Row row_want = ref::quantize_row_i8(h.data(), n, q_want.data());

    const std::vector<uint32_t> words = repacked(data, shape.m, shape.k);
    unsigned counter = 0;
    for (int launch = 0; launch < 2; ++launch) {
      std::vector<float> y = gated ? std::vector<float>(want.size(), -1.0f) : residual;
      std::vector<int8_t> q(static_cast<size_t>(n), 99);
      std::vector<float> normed(static_cast<size_t>(n), -1.0f);
      float act_scale = -1.0f;
      int act_sum = -1;
      ASSERT_EQ(module->launch(kern.name, cc::matmul_i2s_grid(shape, 1), kern.threads,
                               static_cast<const unsigned int*>(words.data()), scales.data(),
                               static_cast<const signed char*>(a.q.data()), &a.row.scale, &a.row.sum, y.data(),
                               static_cast<const float*>(gain.data()), reinterpret_cast<signed char*>(q.data()),
                               &act_scale, &act_sum, cases[ci].normed ? normed.data() : nullptr, &counter, 1),
                "");
      EXPECT_EQ(count_mismatches(y, want), 0) << "launch " << launch;
      EXPECT_EQ(q, q_want) << "launch " << launch;
      EXPECT_EQ(float_bits(act_scale), float_bits(row_want.scale)) << "launch " << launch;
      EXPECT_EQ(act_sum, row_want.sum) << "launch " << launch;
      if (cases[ci].normed) {
        EXPECT_EQ(count_mismatches(normed, h), 0) << "launch " << launch;
      }
      EXPECT_EQ(counter, 0u) << "launch " << launch;
    }
  }
  cc::MatmulI2sShape tiled{256, 64, 2};
  tiled.tail_norm = true;
  EXPECT_THROW(cc::emit_matmul_i2s(tiled), std::invalid_argument);  // one token per block only
  cc::MatmulI2sShape both = cc::decode_gemv_shape(256, 64);
  both.tail_norm = both.fuse_norm = true;
  EXPECT_THROW(cc::emit_matmul_i2s(both), std::invalid_argument);
}

}  // namespace
}  // namespace bitnet::testing
