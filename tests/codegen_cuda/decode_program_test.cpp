// The whole decode step (codegen_cuda/decode_program.h) on the host emulator against the CPU
// reference interpreter on the shared tiny models: logits of several decode steps (one token per
// call, so both sides are in decode mode), greedy ids equal wherever the top-2 margin > 1e-3.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/cuda_reference_decode.h"
#include "codegen_cuda/decode_program.h"
#include "compiler/cuda_model.h"
#include "emu_module.h"
#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/lowering.h"
#include "frontend_gguf/model_config.h"
#include "reference/interpreter.h"
#include "test_support.h"

namespace bitnet::testing {
namespace {

namespace cc = codegen_cuda;

// The program's buffers in host memory (16-byte aligned, zeroed) and its launches on the emulator.
class EmuDecodeRunner {
 public:
  EmuDecodeRunner(const cc::DecodeProgram& program, std::shared_ptr<EmuModule> module)
      : program_(program), module_(std::move(module)) {
    for (const cc::DecodeBuffer& b : program.buffers) {
      storage_.emplace_back(static_cast<size_t>(b.bytes / 16 + 1));
    }
  }
  void* address(int buffer) { return buffer < 0 ? nullptr : storage_[static_cast<size_t>(buffer)].data(); }
  float* logits() { return static_cast<float*>(address(program_.logits_buffer)); }

  // One decode token; "" or the emulator's error.
  std::string step(int32_t token, int32_t pos) {
    std::memcpy(address(program_.token_buffer), &token, 4);
    std::memcpy(address(program_.pos_buffer), &pos, 4);
    for (const cc::DecodeLaunch& l : program_.launches) {
      const std::string& name = program_.kernels[static_cast<size_t>(l.kernel)].name;
      std::vector<void*> a;
      for (int index : l.args) a.push_back(address(index));
      const std::string error = module_->launch_pointers(name, l.grid, l.threads, a, l.n_tokens_arg, 1);
      if (!error.empty()) return l.label + ": " + error;
    }
    return "";
  }

 private:
  struct alignas(16) Block {
    unsigned char bytes[16] = {};
  };
  const cc::DecodeProgram& program_;
  std::shared_ptr<EmuModule> module_;
  std::vector<std::vector<Block>> storage_;
};

// The configuration the CUDA backend plans for a model (compiler/cuda_model.h).
cc::DecodeModelConfig config_of(const gguf::ModelConfig& m, const gguf::GgufFile& file, int64_t n_ctx) {
  auto c = compiler::cuda_decode_config(m, file, n_ctx);
  EXPECT_TRUE(c) << c.error().message;
  return c ? *c : cc::DecodeModelConfig{};
}

TEST(CudaDecodeProgram, PlansTenLaunchesPerLayerOrSixWithFoldedNormsAndRefusesUnsupportedShapes) {
  cc::DecodeModelConfig c{2560, 6912, 20, 5, 30, 128256, 4096};
  auto p = cc::plan_decode_program(c, {.pdl = cc::PdlMode::kOff});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->launches.size(), 30u * 10 + 3);
  // One token: embed, 3 norms, 4 GEMVs, rope + attention scores, softmax·V, LM head; the batched
  // step adds 4 GEMMs, rope_kv and the 2 attention kernels per token, the row gather and the LM
  // head over tiles of rows in decode and in prompt mode.
  EXPECT_EQ(p->kernels.size(), 11u + 10);
  // The batched step: 11 launches per layer (norms always separate), then embed, the gather,
  // the final norm and the LM head (decode mode, then prompt mode over the rows flagged so); the
  // wanted rows only from the gather on.
  EXPECT_EQ(p->max_tokens, 64);
  ASSERT_EQ(p->batch_launches.size(), 30u * 11 + 5);
  for (size_t i = 0; i < p->batch_launches.size(); ++i) {
    EXPECT_EQ(p->batch_launches[i].tokens,
              i + 4 < p->batch_launches.size() ? cc::TokenCount::kBatch : cc::TokenCount::kOutputs);
  }
  EXPECT_EQ(p->batch_launches.back().label, "lm_head_prompt");
  EXPECT_EQ(p->batch_launches.back().args.back(), p->head_prompt_buffer);
  // Every batched attention launch reads the tokens' prompt flags (its last argument).
  int attention_launches = 0;
  for (const cc::DecodeLaunch& l : p->batch_launches) {
    if (l.role != cc::KernelRole::kAttnSoftmaxPv) continue;
    ++attention_launches;
    EXPECT_EQ(l.args.back(), p->prompt_buffer) << l.label;
  }
  EXPECT_EQ(attention_launches, 30);
  EXPECT_EQ(p->batch_launches.back().role, cc::KernelRole::kLmHead);
  auto folded = cc::plan_decode_program(c, {.fuse_norms = true, .pdl = cc::PdlMode::kOff});
  ASSERT_TRUE(folded) << folded.error().message;
  EXPECT_EQ(folded->launches.size(), 30u * 6 + 3);
  EXPECT_EQ(folded->kernels.size(), 9u + 12);  // (the batched step brings back the 2 norms)
  // rope_kv as its own launch, as before it was folded into the scores kernel.
  auto rope_apart = cc::plan_decode_program(c, {.pdl = cc::PdlMode::kOff, .fuse_rope = false});
  ASSERT_TRUE(rope_apart) << rope_apart.error().message;
  EXPECT_EQ(rope_apart->launches.size(), 30u * 11 + 3);
  EXPECT_EQ(rope_apart->kernels.size(), 12u + 10);
  // Tail norms: qkv, rope + scores, softmax·V, o, gate|up, down per layer; the embedding,
  // layer 0's attn_norm and the LM head (the last down makes the final norm).
  auto tails = cc::plan_decode_program(c, {.pdl = cc::PdlMode::kOff, .tail_norms = true});
  ASSERT_TRUE(tails) << tails.error().message;
  EXPECT_EQ(tails->launches.size(), 30u * 6 + 3);
  EXPECT_EQ(tails->kernels.size(), 9u + 12);  // no ffn-length or final norm kernel
  EXPECT_EQ(tails->batch_launches.size(), p->batch_launches.size());
  // A GEMV's tail never writes the activations it reads (codes, scale, code sum: arguments 2-4
  // and 7-9), so nothing it reads through the read-only cache changes under it.
  int tail_gemvs = 0;
  for (const cc::DecodeLaunch& l : tails->launches) {
    if (l.role != cc::KernelRole::kMatmulI2s || l.args.size() != 12) continue;
    ++tail_gemvs;
    for (int i = 2; i <= 4; ++i)
      EXPECT_NE(l.args[static_cast<size_t>(i)], l.args[static_cast<size_t>(i + 5)]) << l.label;
  }
  EXPECT_EQ(tail_gemvs, 30 * 3);
  EXPECT_FALSE(cc::plan_decode_program(c, {.fuse_norms = true, .tail_norms = true}));
  // The softmax as a launch of its own (forced here; the default above 8192 cells): one launch
  // more per layer in both steps, two kernels more, P·V reading the probabilities it wrote.
  for (auto [cells, forced] : {std::pair<int64_t, bool>{4096, true}, {8224, false}, {int64_t{1} << 20, false}}) {
    cc::DecodeModelConfig long_c = c;
    long_c.n_ctx = cells;
    auto separate = cc::plan_decode_program(long_c, {.pdl = cc::PdlMode::kOff, .separate_softmax = forced});
    ASSERT_TRUE(separate) << separate.error().message;
    EXPECT_EQ(separate->launches.size(), 30u * 11 + 3) << cells;
    EXPECT_EQ(separate->batch_launches.size(), 30u * 12 + 5) << cells;
    EXPECT_EQ(separate->kernels.size(), p->kernels.size() + 2) << cells;
    for (const auto* list : {&separate->launches, &separate->batch_launches}) {
      int softmaxes = 0;
      for (size_t i = 0; i < list->size(); ++i) {
        const cc::DecodeLaunch& l = (*list)[i];
        if (l.role != cc::KernelRole::kAttnSoftmax) continue;
        ++softmaxes;
        ASSERT_LT(i + 1, list->size());
        EXPECT_EQ((*list)[i + 1].role, cc::KernelRole::kAttnSoftmaxPv);
        EXPECT_EQ((*list)[i + 1].args[0], l.args[0]);  // P·V reads the scores buffer the softmax rewrote
        EXPECT_NE((*list)[i + 1].label.find("attn_pv"), std::string::npos);
      }
      EXPECT_EQ(softmaxes, 30) << cells;
    }
  }
  cc::DecodeModelConfig too_long = c;
  too_long.n_ctx = (int64_t{1} << 20) + 32;
  const auto refused = cc::plan_decode_program(too_long);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("1048576"), std::string::npos) << refused.error().message;
  auto one_token = cc::plan_decode_program(c, {.pdl = cc::PdlMode::kOff, .max_tokens = 1});
  ASSERT_TRUE(one_token) << one_token.error().message;
  EXPECT_EQ(one_token->kernels.size(), 11u);
  EXPECT_EQ(one_token->find_buffer("q16"), -1);
  EXPECT_TRUE(one_token->batch_launches.empty());
  EXPECT_EQ(one_token->seq_buffer, -1);
  EXPECT_FALSE(cc::plan_decode_program(c, {.max_tokens = 0}));
  // 2B4T: 30 layers of I2_S (q|k|v, o, gate|up, down) + the F16 LM head + one embedding row.
  const int64_t i2s = 30 * (3840 + 2560 + 13824 + 2560) * (2560 / 4) + 30 * 2560 * 6912 / 4 - 30 * 2560 * 2560 / 4;
  EXPECT_GT(p->weight_bytes_read_per_token(), i2s + 128256LL * 2560 * 2);
  EXPECT_LT(p->weight_bytes_read_per_token(), i2s + 128256LL * 2560 * 2 + 4'000'000);
  // Programmatic dependent launch: the same launches of kernels that each wait for their
  // predecessor exactly once (and, kEarly, trigger their successor once); without it no kernel
  // has either (the text as before PDL).
  for (const cc::PdlMode mode : {cc::PdlMode::kAfterWait, cc::PdlMode::kEarly}) {
    auto pdl = cc::plan_decode_program(c, {.pdl = mode});
    ASSERT_TRUE(pdl) << pdl.error().message;
    EXPECT_TRUE(pdl->programmatic_launch);
    ASSERT_EQ(pdl->launches.size(), p->launches.size());
    ASSERT_EQ(pdl->kernels.size(), p->kernels.size());
    for (size_t i = 0; i < pdl->kernels.size(); ++i) {
      const cc::KernelSource& k = pdl->kernels[i];
      EXPECT_EQ(k.name, p->kernels[i].name + (mode == cc::PdlMode::kEarly ? "_pdle" : "_pdl"));
      for (const char* call : {"bn_pdl_wait();", "bn_pdl_launch_dependents();"}) {
        const size_t first = k.source.find(call);
        EXPECT_NE(first, std::string::npos) << k.name << " " << call;
        EXPECT_EQ(k.source.find(call, first + 1), std::string::npos) << k.name << " " << call;
      }
      // kEarly triggers before it waits; kAfterWait after.
      EXPECT_EQ(k.source.find("bn_pdl_launch_dependents();") < k.source.find("bn_pdl_wait();"),
                mode == cc::PdlMode::kEarly)
          << k.name;
    }
  }
  EXPECT_FALSE(p->programmatic_launch);
  EXPECT_TRUE(cc::plan_decode_program(c)->programmatic_launch);  // the default: kAfterWait
  EXPECT_EQ(cc::plan_decode_program(c)->source(),
            cc::plan_decode_program(c, {.pdl = cc::PdlMode::kAfterWait})->source());
  EXPECT_EQ(p->source().find("bn_pdl_wait();"), std::string::npos);
  EXPECT_EQ(p->source().find("bn_pdl_launch_dependents();"), std::string::npos);
  c.n_ctx = 100;
  EXPECT_FALSE(cc::plan_decode_program(c));
  c.n_ctx = 64;
  c.n_ff = 100;
  EXPECT_FALSE(cc::plan_decode_program(c));
  c.n_ff = 40960;  // past the norm kernel's 32768: an error value, not an exception
  const auto too_wide = cc::plan_decode_program(c);
  ASSERT_FALSE(too_wide);
  EXPECT_NE(too_wide.error().message.find("emit_rmsnorm_quant"), std::string::npos) << too_wide.error().message;
}

// Both models as planned by default (norms as separate launches, PDL points), b158-tiny-gqa also with
// the norms folded into the GEMVs, without PDL points and with the early trigger; two steps each (the second attends
// over two cells), to keep the test short (CudaAttentionDecode covers many positions).
TEST(CudaDecodeProgram, SharedTinyModelsMatchTheInterpreterOnTheHostEmulator) {
  BITNET_REQUIRE_SHARED(shared);
  const int64_t n_ctx = 64;
  struct Run {
    const char* model;
    bool fuse_norms;
    size_t steps;
    cc::PdlMode pdl = cc::DecodeProgramOptions{}.pdl;  // the default: kAfterWait
    bool fuse_rope = true;                             // the default
    bool tail_norms = false;                           // the default
    bool separate_softmax = false;                     // the default at 64 cells
  };
  // (And one step each without PDL points, with the early trigger and with rope_kv as its own
  // launch: the same bits.)
  for (const Run& run :
       {Run{"bitnet-tiny-mha", false, 2}, Run{"b158-tiny-gqa", false, 2}, Run{"b158-tiny-gqa", true, 2},
        Run{"b158-tiny-gqa", false, 1, cc::PdlMode::kOff}, Run{"b158-tiny-gqa", false, 1, cc::PdlMode::kEarly},
        Run{"bitnet-tiny-mha", false, 2, cc::PdlMode::kAfterWait, false},
        Run{"bitnet-tiny-mha", false, 2, cc::PdlMode::kAfterWait, true, true},
        Run{"b158-tiny-gqa", false, 2, cc::PdlMode::kAfterWait, true, true},
        Run{"b158-tiny-gqa", false, 2, cc::PdlMode::kAfterWait, true, true, true}}) {
    const char* model = run.model;
    const std::vector<int32_t> tokens = {1, 450, 4996};
    const std::string what = std::string(model) + (run.fuse_norms ? " (norms folded)" : " (norms separate)") +
                             (run.pdl == cc::PdlMode::kOff         ? ", no PDL"
                              : run.pdl == cc::PdlMode::kAfterWait ? ", PDL"
                                                                   : ", PDL early trigger") +
                             (run.fuse_rope ? "" : ", rope_kv apart") + (run.tail_norms ? ", tail norms" : "") +
                             (run.separate_softmax ? ", separate softmax" : "");
    SCOPED_TRACE(what);
    auto file = gguf::GgufFile::open((shared / "models/bitnet-i2s" / (std::string(model) + ".i2_s.gguf")).string());
    ASSERT_TRUE(file) << file.error().message;
    auto mc = gguf::read_model_config(*file);
    ASSERT_TRUE(mc) << mc.error().message;
    auto program = cc::plan_decode_program(config_of(*mc, *file, n_ctx), {.fuse_norms = run.fuse_norms,
                                                                          .pdl = run.pdl,
                                                                          .fuse_rope = run.fuse_rope,
                                                                          .tail_norms = run.tail_norms,
                                                                          .separate_softmax = run.separate_softmax});
    ASSERT_TRUE(program) << program.error().message;

    std::string error;
    auto module = EmuModule::build(program->source(), &error);
    ASSERT_TRUE(module) << error;
    EmuDecodeRunner runner(*program, module);
    const cc::TensorBytes lookup = [&](const std::string& name) -> const uint8_t* {
      const gguf::TensorInfo* t = file->find_tensor(name);
      return t == nullptr ? nullptr : t->data.data();
    };
    for (size_t i = 0; i < program->buffers.size(); ++i) {
      if (program->buffers[i].kind != cc::BufferKind::kWeight) continue;
      auto bytes = cc::decode_weight_bytes(*program, static_cast<int>(i), lookup);
      ASSERT_TRUE(bytes) << bytes.error().message;
      std::memcpy(runner.address(static_cast<int>(i)), bytes->data(), bytes->size());
    }

    auto graph = gguf::lower_to_ir(*file);
    ASSERT_TRUE(graph) << graph.error().message;
    auto interp = reference::Interpreter::create(*graph, *file, {n_ctx, 2});
    ASSERT_TRUE(interp) << interp.error().message;

    // The device check's CPU reference (bench/cuda_reference_decode) reads the same configuration
    // and computes the same logits as the interpreter.
    auto small = bench::read_gguf((shared / "models/bitnet-i2s" / (std::string(model) + ".i2_s.gguf")).string());
    ASSERT_TRUE(small) << small.error().message;
    auto small_config = bench::decode_config(*small, n_ctx);
    ASSERT_TRUE(small_config) << small_config.error().message;
    EXPECT_EQ(small_config->n_embd, program->config.n_embd);
    EXPECT_EQ(small_config->n_ff, program->config.n_ff);
    EXPECT_EQ(small_config->n_head_kv, program->config.n_head_kv);
    EXPECT_EQ(small_config->n_vocab, program->config.n_vocab);
    EXPECT_EQ(small_config->eps, program->config.eps);
    EXPECT_EQ(small_config->freq_base, program->config.freq_base);
    EXPECT_EQ(small_config->act, program->config.act);
    bench::ReferenceDecoder reference(*small_config, [&](const std::string& name) { return small->data(name); });

    int64_t differing = 0, total = 0;
    double max_rel = 0;
    for (size_t pos = 0; pos < run.steps; ++pos) {
      SCOPED_TRACE("pos " + std::to_string(pos));
      auto out = (*interp)->run(std::span<const int32_t>(&tokens[pos], 1));
      ASSERT_TRUE(out) << out.error().message;
      const runtime::Matrix& want = out->at("logits");
      ASSERT_EQ(want.cols, program->config.n_vocab);
      ASSERT_EQ(runner.step(tokens[pos], static_cast<int32_t>(pos)), "");
      const float* got = runner.logits();
      const std::span<const float> w = want.row(want.rows - 1);
      const std::vector<float> bench_ref = reference.step(tokens[pos], static_cast<int64_t>(pos));
      ASSERT_EQ(bench_ref.size(), w.size());
      EXPECT_EQ(std::memcmp(bench_ref.data(), w.data(), w.size() * 4), 0) << "bench reference vs interpreter";
      float scale = 0;
      for (float v : w) scale = std::max(scale, std::fabs(v));
      for (size_t i = 0; i < w.size(); ++i) {
        differing += got[i] != w[i];
        max_rel = std::max(max_rel, std::fabs(static_cast<double>(got[i]) - w[i]) / scale);
      }
      total += static_cast<int64_t>(w.size());
      // Greedy ids agree wherever the reference's top-2 margin exceeds 1e-3.
      std::vector<float> sorted(w.begin(), w.end());
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
      const auto best_want = std::max_element(w.begin(), w.end()) - w.begin();
      const auto best_got = std::max_element(got, got + w.size()) - got;
      if (sorted[0] - sorted[1] > 1e-3f) {
        EXPECT_EQ(best_got, best_want);
      }
    }
    std::cout << "[decode] " << what << ": " << run.steps << " steps, " << differing << " of " << total
              << " logits differ from the interpreter, max |diff| / max |logit| = " << max_rel << "\n";
    EXPECT_LT(max_rel, 1e-4);
  }
}

}  // namespace
}  // namespace bitnet::testing
