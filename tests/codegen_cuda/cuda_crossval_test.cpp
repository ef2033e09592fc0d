// The CUDA backend (on the host emulator) against the C++ reference's own outputs in
// ../shared/crossval, not only against this project's interpreter: decode-mode logits bit for
// bit, and greedy generation after a prompt.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "compiler/cuda_model.h"
#include "crossval_cases.h"
#include "emu_device.h"
#include "npy.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "test_support.h"

namespace bitnet::testing {
namespace {

// The model with the CUDA backend on the emulator, and a session of `n_ctx` cells (one sequence).
struct CudaModel {
  std::unique_ptr<runtime::Model> model;
  std::unique_ptr<runtime::Session> session;
};
CudaModel open_on_emulator(const std::filesystem::path& path, int64_t n_ctx) {
  CudaModel m;
  auto model = runtime::Model::open(path.string());
  EXPECT_TRUE(model) << model.error().message;
  if (!model) return m;
  m.model = std::move(*model);
  const Status attached = compiler::attach_cuda_backend(*m.model, {.device = std::make_unique<EmuDevice>()});
  EXPECT_TRUE(attached.ok()) << attached.error().message;
  auto session = m.model->new_session({.all_logits = false, .n_ctx = n_ctx, .threads = 1, .n_seq_max = 1});
  EXPECT_TRUE(session) << session.error().message;
  if (session) m.session = std::move(*session);
  return m;
}

Batch one(int32_t token, int64_t pos) {
  Batch b;
  b.add(token, pos, {0}, true);
  return b;
}

// seq16 fed one token per call: the reference's decode mode (F16 probabilities and final
// hidden state), which is the arithmetic of every CUDA step.
TEST(CudaCrossVal, DecodeLogitsMatchTheCppReferenceBitForBit) {
  BITNET_REQUIRE_SHARED(shared);
  for (const CrossvalCase& c : load_crossval_cases(shared)) {
    if (c.seq != "seq16") continue;
    SCOPED_TRACE(c.model);
    CudaModel m = open_on_emulator(shared / "models/bitnet-i2s" / (c.model + ".i2_s.gguf"), 64);
    ASSERT_TRUE(m.session);
    EXPECT_EQ(m.session->backend(), "cuda");
    auto want = read_npy(shared / "crossval" / c.model / "seq16.decode_logits.npy");
    ASSERT_TRUE(want) << want.error().message;
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      auto out = m.session->decode(one(c.tokens[i], static_cast<int64_t>(i)));
      ASSERT_TRUE(out) << out.error().message;
      const runtime::Matrix& logits = out->at("logits");
      ASSERT_EQ(static_cast<size_t>(logits.cols) * c.tokens.size(), want->f32.size());
      const float* row = want->f32.data() + i * static_cast<size_t>(logits.cols);
      int64_t differing = 0;
      for (int64_t v = 0; v < logits.cols; ++v) differing += std::memcmp(&logits.data[v], &row[v], 4) != 0;
      EXPECT_EQ(differing, 0) << "position " << i;
    }
  }
}

// The reference's greedy runs: the prompt in one call, then one token per call. The CUDA
// backend runs the prompt with the decode arithmetic (the reference's prompt call keeps F32
// probabilities), so its cache differs slightly and only the ids are compared: equal wherever the
// reference's top-2 margin exceeds 1e-3 (every choice of the shared cases).
TEST(CudaCrossVal, GreedyIdsMatchTheCppReferenceWhereTheMarginExceeds1e3) {
  BITNET_REQUIRE_SHARED(shared);
  for (const CrossvalCase& c : load_crossval_cases(shared)) {
    if (c.greedy_ids.empty()) continue;
    SCOPED_TRACE(c.model + " " + c.seq);
    const auto n_ctx = static_cast<int64_t>(c.tokens.size() + c.greedy_ids.size() + 1);
    CudaModel m = open_on_emulator(shared / "models/bitnet-i2s" / (c.model + ".i2_s.gguf"), n_ctx);
    ASSERT_TRUE(m.session);
    Batch prompt;
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      prompt.add(c.tokens[i], static_cast<int64_t>(i), {0}, i + 1 == c.tokens.size());
    }
    auto out = m.session->decode(prompt);
    ASSERT_TRUE(out) << out.error().message;
    int32_t next = runtime::greedy_pick(out->at("logits").row(out->at("logits").rows - 1));
    size_t compared = 0;
    for (size_t step = 0; step < c.greedy_ids.size(); ++step) {
      if (c.margins[step] <= 1e-3) break;  // a near tie: the runs may part here
      ASSERT_EQ(next, c.greedy_ids[step]) << "step " << step << " (reference margin " << c.margins[step] << ")";
      ++compared;
      auto step_out = m.session->decode(one(next, static_cast<int64_t>(c.tokens.size() + step)));
      ASSERT_TRUE(step_out) << step_out.error().message;
      next = runtime::greedy_pick(step_out->at("logits").row(0));
    }
    std::cout << "[crossval] " << c.model << " " << c.seq << ": " << compared << " of " << c.greedy_ids.size()
              << " greedy ids compared, all equal\n";
  }
}

}  // namespace
}  // namespace bitnet::testing
