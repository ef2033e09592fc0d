// The CUDA backend's sessions (runtime/cuda/cuda_session.h) on the host emulator (EmuDevice):
// the decode program of compiler/cuda_model.h run as the runtime runs it on a GPU (weights
// uploaded once, a K/V region per sequence, each sequence's step captured as a graph and
// replayed, calls of several tokens as batched steps), against the reference interpreter's sessions fed the same
// batches: every logit bit for bit, through multi-sequence batches, seq_cp, seq_rm and the context shift (seq_add).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "compiler/cuda_model.h"
#include "emu_device.h"
#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/gguf_writer.h"
#include "frontend_gguf/lowering.h"
#include "frontend_gguf/retype_ternary.h"
#include "reference/interpreter.h"
#include "reference/kernels.h"
#include "runtime/cuda/cuda_driver_device.h"
#include "runtime/cuda/cuda_plan.h"
#include "runtime/cuda/cuda_session.h"
#include "runtime/plan_files.h"
#include "test_support.h"

namespace bitnet::testing {
namespace {

namespace rc = runtime::cuda;

// Runs `batch` on both sessions and compares every output row bit for bit.
void expect_same(runtime::Session& want, runtime::Session& got, const Batch& batch, const std::string& what) {
  SCOPED_TRACE(what);
  auto w = want.decode(batch);
  ASSERT_TRUE(w) << w.error().message;
  auto g = got.decode(batch);
  ASSERT_TRUE(g) << g.error().message;
  const runtime::Matrix& wl = w->at("logits");
  const runtime::Matrix& gl = g->at("logits");
  ASSERT_EQ(gl.rows, wl.rows);
  ASSERT_EQ(gl.cols, wl.cols);
  int64_t differing = 0;
  for (size_t i = 0; i < wl.data.size(); ++i) differing += std::memcmp(&wl.data[i], &gl.data[i], 4) != 0;
  EXPECT_EQ(differing, 0) << "of " << wl.data.size() << " logits";
  EXPECT_EQ(got.seq_pos_max(0), want.seq_pos_max(0));
  EXPECT_EQ(got.seq_pos_max(1), want.seq_pos_max(1));
}

// The model as the runtime opens it (no graphs, no backend), and a reference interpreter of it.
std::unique_ptr<runtime::Model> open(const std::string& path) {
  auto m = runtime::Model::open(path);
  EXPECT_TRUE(m) << m.error().message;
  return m ? std::move(*m) : nullptr;
}
// (The interpreter refers to its graph, which the test keeps here.)
struct Reference {
  ir::Graph graph;
  std::unique_ptr<runtime::Session> session;
};
std::unique_ptr<Reference> interpreter(const runtime::Model& m, const runtime::SessionOptions& o) {
  auto graph = gguf::lower_to_ir(m.file(), {.all_logits = o.all_logits});
  EXPECT_TRUE(graph) << graph.error().message;
  if (!graph) return nullptr;
  auto r = std::make_unique<Reference>();
  r->graph = std::move(*graph);
  auto interp = reference::Interpreter::create(
      r->graph, m.file(), {.n_ctx = o.n_ctx, .threads = 1, .arena_t_max = 0, .n_seq_max = o.n_seq_max});
  EXPECT_TRUE(interp) << interp.error().message;
  if (!interp) return nullptr;
  r->session = std::move(*interp);
  return r;
}

Batch one(int32_t token, int64_t pos, int32_t seq) {
  Batch b;
  b.add(token, pos, {seq}, true);
  return b;
}

// One model through batches and KV edits on `device`, against the interpreter. `emu`: the same
// device when it is the emulator (its counters are checked too).
void check_batches_and_kv_edits(const std::string& path, std::unique_ptr<rc::Device> device, const EmuDevice* emu) {
  auto model = open(path);
  ASSERT_TRUE(model);
  const runtime::SessionOptions options{.all_logits = false, .n_ctx = 128, .threads = 1, .n_seq_max = 2};
  auto interp = interpreter(*model, options);
  ASSERT_TRUE(interp);
  const Status attached = compiler::attach_cuda_backend(*model, {.device = std::move(device)});
  ASSERT_TRUE(attached.ok()) << attached.error().message;
  auto cuda = model->new_session(options);
  ASSERT_TRUE(cuda) << cuda.error().message;
  EXPECT_EQ((*cuda)->backend(), "cuda");
  EXPECT_EQ((*cuda)->n_ctx_seq(), 64);
  runtime::Session& want = *interp->session;
  runtime::Session& got = **cuda;

  expect_same(want, got, one(1, 0, 0), "seq 0, pos 0");
  Batch two;  // one token of each sequence in one call
  two.add(450, 1, {0}, true);
  two.add(1, 0, {1}, true);
  expect_same(want, got, two, "seq 0 pos 1 with seq 1 pos 0");
  expect_same(want, got, one(4996, 1, 1), "seq 1, pos 1");
  // A prompt's tokens one call each: a longer call would have prefill arithmetic on the
  // interpreter, while the CUDA session runs every token with the decode kernels.
  const int32_t prompt[] = {29871, 13, 306};
  for (int i = 0; i < 3; ++i) expect_same(want, got, one(prompt[i], 2 + i, 0), "seq 0 prompt token");

  // seq_cp: seq 1 becomes a copy of seq 0's cells, then continues.
  ASSERT_TRUE(want.seq_rm(1, -1, -1));
  ASSERT_TRUE(got.seq_rm(1, -1, -1));
  ASSERT_TRUE(want.seq_cp(0, 1, -1, -1).ok());
  ASSERT_TRUE(got.seq_cp(0, 1, -1, -1).ok());
  expect_same(want, got, one(450, 5, 1), "seq 1 after seq_cp");

  // The context shift: positions [1, 3) of seq 0 dropped, 3.. moved down by 2 (keys rotated).
  ASSERT_TRUE(want.seq_rm(0, 1, 3));
  ASSERT_TRUE(got.seq_rm(0, 1, 3));
  ASSERT_TRUE(want.seq_add(0, 3, -1, -2).ok());
  ASSERT_TRUE(got.seq_add(0, 3, -1, -2).ok());
  expect_same(want, got, one(4996, 3, 0), "seq 0 after the context shift");

  if (emu != nullptr) {
    // Every call of one token ran as a replay of its sequence's graph (two captured: one per
    // sequence); the call of two tokens as one batched step.
    EXPECT_EQ(emu->replays(), 7);
    EXPECT_EQ(emu->graphs(), 2);
  }
}

TEST(CudaSession, SharedTinyModelsMatchTheInterpreterThroughBatchesAndKvEdits) {
  BITNET_REQUIRE_SHARED(shared);
  for (const char* name : {"bitnet-tiny-mha", "b158-tiny-gqa"}) {
    SCOPED_TRACE(name);
    auto device = std::make_unique<EmuDevice>();
    const EmuDevice* emu = device.get();
    check_batches_and_kv_edits((shared / "models/bitnet-i2s" / (std::string(name) + ".i2_s.gguf")).string(),
                               std::move(device), emu);
  }
}

// The shared models retyped to upstream's TQ2_0 and TQ1_0 (`bitnet convert`, one f16 scale in
// every block): their matrices reach the kernels as I2_S with that scale, and every logit is the
// interpreter's on the same TQ file (its one-scale TQ formula). A block with another scale is
// refused before anything runs, naming the tensor and the blocks.
TEST(CudaSession, Tq2_0AndTq1_0ModelsMatchTheInterpreterOrAreRefused) {
  BITNET_REQUIRE_SHARED(shared);
  TempDir dir;
  const std::pair<const char*, gguf::TernaryType> cases[] = {{"b158-tiny-gqa", gguf::TernaryType::TQ2_0},
                                                             {"bitnet-tiny-mha", gguf::TernaryType::TQ1_0}};
  for (const auto& [name, type] : cases) {
    const std::string type_name(gguf::ternary_type_name(type));
    SCOPED_TRACE(std::string(name) + " as " + type_name);
    const std::string path = (dir / (std::string(name) + "." + type_name + ".gguf")).string();
    auto retyped =
        gguf::retype_ternary((shared / "models/bitnet-i2s" / (std::string(name) + ".i2_s.gguf")).string(), path, type);
    ASSERT_TRUE(retyped) << retyped.error().message;
    auto device = std::make_unique<EmuDevice>();
    const EmuDevice* emu = device.get();
    check_batches_and_kv_edits(path, std::move(device), emu);
  }

  // One block of blk.1.ffn_down.weight with a scale 1 ulp larger.
  const std::string good = (dir / "b158-tiny-gqa.tq2_0.gguf").string();
  std::vector<uint8_t> bytes = read_file(good);
  auto file = gguf::GgufFile::parse(bytes);
  ASSERT_TRUE(file) << file.error().message;
  const gguf::TensorInfo* down = file->find_tensor("blk.1.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  ASSERT_EQ(down->type, gguf::GgmlType::TQ2_0);
  const size_t scale_at = static_cast<size_t>(down->data.data() - bytes.data()) + 3 * 66 + 64;
  uint16_t scale = 0;
  std::memcpy(&scale, bytes.data() + scale_at, 2);
  ++scale;
  std::memcpy(bytes.data() + scale_at, &scale, 2);
  const std::string bad = (dir / "two-scales.tq2_0.gguf").string();
  write_file(bad, bytes);
  auto model = open(bad);
  ASSERT_TRUE(model);
  const Status attached = compiler::attach_cuda_backend(*model, {.device = std::make_unique<EmuDevice>()});
  ASSERT_FALSE(attached.ok());
  EXPECT_NE(attached.error().message.find("blk.1.ffn_down.weight': blocks 0 and 3 have different scales"),
            std::string::npos)
      << attached.error().message;
}

// The same on a GPU, where the machine has one (the kernels through NVRTC for its SM, the CUDA
// driver's graphs): what bench/cuda_device_check.sh runs on the hardware.
TEST(CudaSession, SharedTinyModelsMatchTheInterpreterOnTheGpu) {
  BITNET_REQUIRE_SHARED(shared);
  if (auto probe = rc::open_cuda_device(0); !probe.ok()) {
    GTEST_SKIP() << "no CUDA device: " << probe.error().message;
  }
  for (const char* name : {"bitnet-tiny-mha", "b158-tiny-gqa"}) {
    SCOPED_TRACE(name);
    auto device = rc::open_cuda_device(0);
    ASSERT_TRUE(device) << device.error().message;
    check_batches_and_kv_edits((shared / "models/bitnet-i2s" / (std::string(name) + ".i2_s.gguf")).string(),
                               std::move(*device), nullptr);
  }
}

// Without graphs (a device that cannot capture) the launches are issued one by one: the same bits;
// all_logits gives every token's row.
TEST(CudaSession, PlainLaunchesAndAllLogits) {
  BITNET_REQUIRE_SHARED(shared);
  auto model = open((shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string());
  ASSERT_TRUE(model);
  const runtime::SessionOptions options{.all_logits = true, .n_ctx = 40, .threads = 1, .n_seq_max = 1};
  auto interp = interpreter(*model, options);
  ASSERT_TRUE(interp);
  ASSERT_TRUE(compiler::attach_cuda_backend(*model, {.device = std::make_unique<EmuDevice>(false)}).ok());
  auto cuda = model->new_session(options);
  ASSERT_TRUE(cuda) << cuda.error().message;
  EXPECT_EQ((*cuda)->n_ctx_seq(), 40);  // the program rounds up to 64 cells; the session keeps 40
  Batch b;
  b.add(1, 0, {0}, false);
  b.add(450, 1, {0}, false);
  auto rows = (*cuda)->decode(b);
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->at("logits").rows, 2);
  // The interpreter given the same call (both rows in prompt mode: attention and the LM head).
  auto w = interp->session->decode(b);
  ASSERT_TRUE(w) << w.error().message;
  const runtime::Matrix& wl = w->at("logits");
  ASSERT_EQ(wl.rows, 2);
  EXPECT_EQ(std::memcmp(wl.data.data(), rows->at("logits").data.data(), wl.data.size() * 4), 0);
  EXPECT_EQ((*cuda)->decode(one(7, 5, 0)).ok(), false);  // positions must continue the sequence
}

// Several tokens in one call run as batched steps (each launch covers every token of the step,
// sequences mixed, calls longer than a step split): every row is the bits the interpreter gives
// for the same call, which runs each sequence's rows on their own (a sequence's two or more
// tokens in prompt mode, a single one in decode mode; the LM head likewise by wanted rows), so
// a sequence's results do not depend on the others'; with the GEMMs on dp4a and on tensor cores.
TEST(CudaSession, BatchedStepsGiveEveryRowTheInterpretersBitsForTheSameCall) {
  BITNET_REQUIRE_SHARED(shared);
  for (const char* name : {"bitnet-tiny-mha", "b158-tiny-gqa"}) {
    SCOPED_TRACE(name);
    for (const auto& [all_logits, mma_gemm] : {std::pair{true, false}, {false, false}, {true, true}, {false, true}}) {
      SCOPED_TRACE(mma_gemm ? "tensor-core GEMMs" : "dp4a GEMMs");
      SCOPED_TRACE(all_logits ? "all logits" : "selected rows");
      auto model = open((shared / "models/bitnet-i2s" / (std::string(name) + ".i2_s.gguf")).string());
      ASSERT_TRUE(model);
      const runtime::SessionOptions options{.all_logits = all_logits, .n_ctx = 128, .threads = 1, .n_seq_max = 2};
      auto interp = interpreter(*model, options);
      ASSERT_TRUE(interp);
      auto device = std::make_unique<EmuDevice>();
      const EmuDevice* emu = device.get();
      // Steps of at most 4 tokens: the 10-token call below takes three, the last one mixing sequences.
      ASSERT_TRUE(
          compiler::attach_cuda_backend(*model, {.device = std::move(device), .max_tokens = 4, .mma_gemm = mma_gemm})
              .ok());
      auto cuda = model->new_session(options);
      ASSERT_TRUE(cuda) << cuda.error().message;

      const int32_t prompt0[] = {1, 450, 4996, 29871, 13, 306};
      const int32_t prompt1[] = {1, 13, 29871, 450};
      std::vector<Batch> calls(4);
      for (int i = 0; i < 6; ++i) calls[0].add(prompt0[i], i, {0}, i == 5);
      for (int i = 0; i < 4; ++i) calls[0].add(prompt1[i], i, {1}, i == 3);
      for (int step = 0; step < 3; ++step) {  // a decode token of each sequence, sequence 1 first
        calls[1 + step].add(7 + step, 4 + step, {1}, true);
        calls[1 + step].add(306 + step, 6 + step, {0}, true);
      }
      for (size_t c = 0; c < calls.size(); ++c) {
        SCOPED_TRACE("call " + std::to_string(c));
        const Batch& batch = calls[c];
        expect_same(*interp->session, **cuda, batch, "the same call");
      }
      EXPECT_EQ((*cuda)->seq_pos_max(0), 8);
      EXPECT_EQ((*cuda)->seq_pos_max(1), 6);
      // The batched steps' four GEMMs per layer ran on the kernels asked for.
      EXPECT_EQ(emu->launches_of("bn_matmul_i2s_mma_") > 0, mma_gemm);
      // Step shapes are captured on their second use and replayed after: (2 tokens, 2 rows) from
      // the second decode call on, or with all logits already from the first (the prompt's last
      // step had that shape), and then also the prompt's (4, 4) for its second step.
      EXPECT_EQ(emu->graphs(), all_logits ? 2 : 1);
      EXPECT_EQ(emu->replays(), all_logits ? 4 : 2);
    }
  }
}

// The model at `path` compiled to a CUDA plan of 64 cells (sm 0: for the emulator), written to
// `plan_path`; nullopt (and a test failure) when that fails.
std::optional<compiler::CompiledCudaPlan> write_cuda_plan(const runtime::Model& model, const std::string& path,
                                                          const std::string& plan_path) {
  auto hash = runtime::file_content_hash(path, "", "model");
  EXPECT_TRUE(hash) << hash.error().message;
  if (!hash) return std::nullopt;
  auto compiled = compiler::compile_cuda_plan(model, *hash, 0, 64);
  EXPECT_TRUE(compiled) << compiled.error().message;
  if (!compiled) return std::nullopt;
  const Status written = runtime::write_plan(plan_path, *compiled->plan, compiled->weights);
  EXPECT_TRUE(written.ok()) << written.error().message;
  if (!written.ok()) return std::nullopt;
  return std::move(*compiled);
}

// The plan at `plan_path` loaded on the emulator, and its first steps (two sequences, 64 cells
// each) against the interpreter of `model`, bit for bit. Returns the loaded model (null on failure).
std::unique_ptr<runtime::Model> expect_plan_runs_like_the_interpreter(const std::string& plan_path,
                                                                      const runtime::Model& model) {
  auto loaded = rc::load_cuda_model_from_plan(plan_path, {}, std::make_unique<EmuDevice>());
  EXPECT_TRUE(loaded) << loaded.error().message;
  if (!loaded) return nullptr;
  EXPECT_EQ((*loaded)->device_backend(), "cuda");
  const runtime::SessionOptions options{.all_logits = false, .n_ctx = 128, .threads = 1, .n_seq_max = 2};
  auto cuda = (*loaded)->new_session(options);
  EXPECT_TRUE(cuda) << cuda.error().message;
  auto interp = interpreter(model, options);
  EXPECT_TRUE(interp);
  if (!cuda || !interp) return nullptr;
  expect_same(*interp->session, **cuda, one(1, 0, 0), "pos 0 from the plan");
  expect_same(*interp->session, **cuda, one(450, 1, 0), "pos 1 from the plan");
  expect_same(*interp->session, **cuda, one(29871, 0, 1), "seq 1 from the plan");
  return std::move(*loaded);
}

// `source` with an output.weight of `type` (F16 or F32) added: random values, unlike the
// embedding, so that a head that read the embedding instead would show.
void write_with_output_weight(const std::string& source, gguf::GgmlType type, const std::string& path) {
  auto file = gguf::GgufFile::open(source);
  ASSERT_TRUE(file) << file.error().message;
  const gguf::TensorInfo* embd = file->find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  const size_t count = embd->element_count();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> value(-0.08f, 0.08f);
  std::vector<uint8_t> bytes(count * (type == gguf::GgmlType::F16 ? 2 : 4));
  for (size_t i = 0; i < count; ++i) {
    const float v = value(rng);
    if (type == gguf::GgmlType::F16) {
      const uint16_t h = ref::fp32_to_fp16(v);
      std::memcpy(&bytes[i * 2], &h, 2);
    } else {
      std::memcpy(&bytes[i * 4], &v, 4);
    }
  }
  auto writer = gguf::GgufWriter::from_file(*file);
  ASSERT_TRUE(writer.add_tensor({"output.weight", type, embd->ne, bytes}).ok());
  const Status written = writer.write_file_atomic(path);
  ASSERT_TRUE(written.ok()) << written.error().message;
}

// A model whose LM head is its own F16 output.weight (not tied to the embedding): the head reads
// that matrix, bit for bit as the interpreter; another type is refused, naming the tensor.
TEST(CudaSession, AnUntiedF16LmHeadReadsOutputWeight) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string source = (shared / "models/bitnet-i2s/bitnet-tiny-mha.i2_s.gguf").string();
  TempDir tmp;
  const std::string f16 = (tmp / "untied-f16.gguf").string();
  ASSERT_NO_FATAL_FAILURE(write_with_output_weight(source, gguf::GgmlType::F16, f16));
  {
    auto model = open(f16);
    ASSERT_TRUE(model);
    ASSERT_FALSE(model->config().arch == nullptr);
    EXPECT_TRUE(model->config().separate_output) << "the test model's architecture ignores output.weight";
  }
  auto device = std::make_unique<EmuDevice>();
  const EmuDevice* emu = device.get();
  check_batches_and_kv_edits(f16, std::move(device), emu);

  const std::string f32 = (tmp / "untied-f32.gguf").string();
  ASSERT_NO_FATAL_FAILURE(write_with_output_weight(source, gguf::GgmlType::F32, f32));
  auto model = open(f32);
  ASSERT_TRUE(model);
  const Status s = compiler::check_cuda_support(*model);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(
      s.error().message.find("output.weight (the LM head's matrix) is f32[32000, 256]; the kernels read f16 or q8_0"),
      std::string::npos)
      << s.error().message;
}

// `source` with its F16 token_embd.weight stored as Q8_0 instead, as bitnet.cpp's quantizer does
// for n_embd % 256 != 0 (per block of 32: d = max|w| / 127 as f16, q = round(w / d)).
void write_with_q8_0_embedding(const std::string& source, const std::string& path) {
  auto file = gguf::GgufFile::open(source);
  ASSERT_TRUE(file) << file.error().message;
  const gguf::TensorInfo* embd = file->find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  ASSERT_EQ(embd->type, gguf::GgmlType::F16);
  const size_t count = embd->element_count();
  std::vector<uint8_t> q8(count / 32 * 34);
  for (size_t b = 0; b < count / 32; ++b) {
    float w[32], amax = 0;
    for (int j = 0; j < 32; ++j) {
      uint16_t h;
      std::memcpy(&h, embd->data.data() + (32 * b + j) * 2, 2);
      w[j] = ref::fp16_to_fp32(h);
      amax = std::max(amax, std::abs(w[j]));
    }
    const uint16_t d = ref::fp32_to_fp16(amax / 127);
    const float inverse = amax > 0 ? 127 / amax : 0;
    std::memcpy(&q8[34 * b], &d, 2);
    for (int j = 0; j < 32; ++j)
      q8[34 * b + 2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(w[j] * inverse)));
  }
  gguf::GgufWriter writer;
  for (const gguf::KeyValue& kv : file->metadata()) writer.set(kv.key, kv.value);
  for (const gguf::TensorInfo& t : file->tensors()) {
    const bool replaced = t.name == "token_embd.weight";
    ASSERT_TRUE(writer
                    .add_tensor({t.name, replaced ? gguf::GgmlType::Q8_0 : t.type, t.ne,
                                 replaced ? std::span<const uint8_t>(q8) : t.data})
                    .ok());
  }
  const Status written = writer.write_file_atomic(path);
  ASSERT_TRUE(written.ok()) << written.error().message;
}

// A Q8_0 embedding, tied to the LM head: the Q8_0 lookup and head kernels, every logit bit for bit
// as the interpreter (which dequantizes and takes tinyBLAS's F32 chain), through batches and KV
// edits. b158-small-gqa has n_embd 384, the case where bitnet.cpp stores the embedding so.
TEST(CudaSession, AQ8_0EmbeddingAndLmHeadMatchTheInterpreter) {
  BITNET_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string path = (tmp / "q8_0-embedding.gguf").string();
  ASSERT_NO_FATAL_FAILURE(
      write_with_q8_0_embedding((shared / "models/bitnet-i2s/b158-small-gqa.i2_s.gguf").string(), path));
  auto device = std::make_unique<EmuDevice>();
  const EmuDevice* emu = device.get();
  check_batches_and_kv_edits(path, std::move(device), emu);

  // As a plan: both Q8_0 tables are read from the GGUF as stored, none goes into the sidecar.
  auto model = open(path);
  ASSERT_TRUE(model);
  const std::string plan_path = (tmp / "q8_0.bnplan").string();
  const auto compiled = write_cuda_plan(*model, path, plan_path);
  ASSERT_TRUE(compiled);
  for (const runtime::RepackedBlob& w : compiled->weights) {
    EXPECT_TRUE(w.tensor != "token_embd" && w.tensor != "lm_head") << w.tensor;
  }
  EXPECT_EQ(std::count_if(compiled->plan->cuda->buffers.begin(), compiled->plan->cuda->buffers.end(),
                          [](const auto& b) { return b->tensor == "token_embd.weight"; }),
            2);  // the lookup's and the head's
  EXPECT_TRUE(expect_plan_runs_like_the_interpreter(plan_path, *model));
}

TEST(CudaModel, RefusesWhatTheDecodeProgramDoesNotRun) {
  auto llama = open((source_dir() / "models/stories260K.gguf").string());
  ASSERT_TRUE(llama);
  const Status s = compiler::check_cuda_support(*llama);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("BitNet"), std::string::npos) << s.error().message;
  // attach leaves the model as it was.
  EXPECT_FALSE(compiler::attach_cuda_backend(*llama, {.device = std::make_unique<EmuDevice>()}).ok());
  EXPECT_TRUE(llama->device_backend().empty());

  BITNET_REQUIRE_SHARED(shared);
  auto bitnet = open((shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string());
  ASSERT_TRUE(bitnet);
  EXPECT_TRUE(compiler::check_cuda_support(*bitnet).ok());
  auto too_long = compiler::compile_cuda_program(*bitnet, (int64_t{1} << 20) + 1, {});
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("1048576"), std::string::npos) << too_long.error().message;
  auto program = compiler::compile_cuda_program(*bitnet, 100, {});
  ASSERT_TRUE(program) << program.error().message;
  EXPECT_EQ((*program)->n_ctx, 128);
  EXPECT_TRUE((*program)->cubin.empty());  // sm 0: the CUDA C++ only
  EXPECT_TRUE((*program)->check().ok());
}

// More cells per sequence than a row of probabilities in shared memory holds (8192): the program
// runs the softmax as a launch of its own, and a session gets the interpreter's bits through
// one-token and batched steps. (Positions past 8192 are CudaAttentionDecode's: reaching them here
// would take 8192 emulated steps.)
TEST(CudaSession, MoreCellsThanSharedMemoryHoldsRunTheSoftmaxApart) {
  BITNET_REQUIRE_SHARED(shared);
  auto model = open((shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string());
  ASSERT_TRUE(model);
  auto program = compiler::compile_cuda_program(*model, 8200, {});
  ASSERT_TRUE(program) << program.error().message;
  EXPECT_EQ((*program)->n_ctx, 8224);
  const auto softmax_kernel = std::find_if((*program)->kernels.begin(), (*program)->kernels.end(),
                                           [](const std::string& k) { return k.rfind("bn_attn_softmax_h", 0) == 0; });
  EXPECT_NE(softmax_kernel, (*program)->kernels.end());

  const runtime::SessionOptions options{.all_logits = false, .n_ctx = 16400, .threads = 1, .n_seq_max = 2};
  auto interp = interpreter(*model, options);
  ASSERT_TRUE(interp);
  ASSERT_TRUE(compiler::attach_cuda_backend(*model, {.device = std::make_unique<EmuDevice>()}).ok());
  auto cuda = model->new_session(options);
  ASSERT_TRUE(cuda) << cuda.error().message;
  EXPECT_EQ((*cuda)->n_ctx_seq(), 8200);
  expect_same(*interp->session, **cuda, one(1, 0, 0), "pos 0");
  expect_same(*interp->session, **cuda, one(450, 1, 0), "pos 1");
  // A batched step (rope_kv, scores, softmax, P·V per token) of one token per sequence: decode
  // arithmetic on the interpreter too.
  Batch two;
  two.add(4996, 2, {0}, true);
  two.add(29871, 0, {1}, true);
  expect_same(*interp->session, **cuda, two, "seq 0 pos 2 with seq 1 pos 0");
}

// A CUDA plan (runtime/cuda/cuda_plan.h) written, read back and run on the emulator: the same
// bits as the interpreter; and the refusals: a changed sidecar, another model, more cells than
// the plan holds, the CPU plan loader.
TEST(CudaPlan, WrittenReadBackAndRunMatchesTheInterpreterAndIsRefusedWhenItDoesNotFit) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string path = (shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string();
  auto model = open(path);
  ASSERT_TRUE(model);
  TempDir dir;
  const std::string plan_path = (dir / "tiny.bnplan").string();
  // Weights that are the file's bytes as stored (the embedding, the norm gains) are read from the
  // GGUF; the sidecar holds only what was repacked (the I2_S matrices, the LM head's lanes).
  const auto compiled = write_cuda_plan(*model, path, plan_path);
  ASSERT_TRUE(compiled);
  for (const runtime::RepackedBlob& w : compiled->weights) {
    EXPECT_NE(w.tensor, "token_embd");
    EXPECT_EQ(w.tensor.find("norm"), std::string::npos) << w.tensor;
  }
  EXPECT_EQ(std::count_if(compiled->plan->cuda->buffers.begin(), compiled->plan->cuda->buffers.end(),
                          [](const auto& b) { return b->tensor == "token_embd.weight"; }),
            1);

  const std::unique_ptr<runtime::Model> loaded = expect_plan_runs_like_the_interpreter(plan_path, *model);
  ASSERT_TRUE(loaded);

  // More cells per sequence than the plan was compiled for.
  auto too_long = loaded->new_session({.all_logits = false, .n_ctx = 65, .threads = 1, .n_seq_max = 1});
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("at most 64"), std::string::npos) << too_long.error().message;
  // The CPU loader names it.
  auto as_cpu = runtime::load_model_from_plan(plan_path, {});
  ASSERT_FALSE(as_cpu);
  EXPECT_NE(as_cpu.error().message.find("a CUDA plan"), std::string::npos) << as_cpu.error().message;
  // Another model.
  auto other = rc::load_cuda_model_from_plan(
      plan_path, {.model_path = (shared / "models/bitnet-i2s/bitnet-tiny-mha.i2_s.gguf").string()},
      std::make_unique<EmuDevice>());
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message.find("model mismatch"), std::string::npos) << other.error().message;
  // One byte of the sidecar changed.
  {
    std::fstream f(plan_path + ".weights", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }
  auto changed = rc::load_cuda_model_from_plan(plan_path, {}, std::make_unique<EmuDevice>());
  ASSERT_FALSE(changed);
  EXPECT_NE(changed.error().message.find("sidecar mismatch"), std::string::npos) << changed.error().message;
}

// A plan whose checksum is right but whose CUDA part is wrong (a bug, or a crafted file) is
// refused with a message before anything touches a device: every index and kind is checked.
TEST(CudaPlan, ACudaPartWithBadIndicesIsRefusedNotRun) {
  BITNET_REQUIRE_SHARED(shared);
  auto model = open((shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string());
  ASSERT_TRUE(model);
  auto program = compiler::compile_cuda_program(*model, 32, {});
  ASSERT_TRUE(program) << program.error().message;
  std::vector<runtime::RepackedBlob> blobs;
  auto code = rc::encode_cuda_code(**program, blobs);
  ASSERT_TRUE(code) << code.error().message;
  std::vector<std::span<const uint8_t>> weights;
  for (const auto& b : blobs) weights.emplace_back(b.bytes);
  ASSERT_TRUE(rc::decode_cuda_code(**code, weights, nullptr, model->file()).ok());

  using Edit = std::function<void(planfb::CudaCodeT&)>;
  const std::vector<std::pair<std::string, Edit>> edits = {
      {"names kernel 99", [](planfb::CudaCodeT& c) { c.launches[3]->kernel = 99; }},
      {"names buffer", [](planfb::CudaCodeT& c) { c.launches[5]->args[1] = 100000; }},
      {"empty grid", [](planfb::CudaCodeT& c) { c.launches[0]->threads = 0; }},
      {"grid of 1 x 70000 x 1 blocks",
       [](planfb::CudaCodeT& c) {
         c.launches[0]->grid_x = 1;
         c.launches[0]->grid_y = 70000;  // above CUDA's 65535
         c.launches[0]->grid_z = 1;
       }},
      {"not an output of n_vocab floats", [](planfb::CudaCodeT& c) { c.logits_buffer = c.token_buffer; }},
      {"one-int input", [](planfb::CudaCodeT& c) { c.pos_buffer = -7; }},
      {"K/V cache", [](planfb::CudaCodeT& c) { c.kv[1]->v_buffer = c.kv[1]->k_buffer - 1; }},
      {"does not fill a weight buffer", [](planfb::CudaCodeT& c) { c.weight_buffers[0] = c.token_buffer; }},
      {"names 1 weights", [](planfb::CudaCodeT& c) { c.weight_buffers.resize(1); }},
      {"bad shape", [](planfb::CudaCodeT& c) { c.head_dim = 0; }},
      {"1 tokens per step with", [](planfb::CudaCodeT& c) { c.max_tokens = 1; }},
      {"sequence and row inputs", [](planfb::CudaCodeT& c) { c.seq_buffer = -1; }},
      {"a prompt-mode input is not", [](planfb::CudaCodeT& c) { c.prompt_buffer = c.logits_buffer; }},
      {"a prompt-mode input is not", [](planfb::CudaCodeT& c) { c.head_prompt_buffer = 100000; }},
      {"K/V region is not",
       [](planfb::CudaCodeT& c) { c.buffers[static_cast<size_t>(c.kv[0]->k_buffer)]->bytes += 64; }},
      {"bad token count, axis or tile", [](planfb::CudaCodeT& c) { c.batch_launches[2]->token_axis = 3; }},
      {"bad token count, axis or tile", [](planfb::CudaCodeT& c) { c.batch_launches[1]->tokens = 0; }},
      {"bad token count, axis or tile", [](planfb::CudaCodeT& c) { c.launches[1]->tokens = 1; }},
      {"launch #0 is not valid", [](planfb::CudaCodeT& c) { c.batch_launches[0]->tokens = 7; }},
      {"not valid", [](planfb::CudaCodeT& c) { c.buffers[2]->kind = 9; }},
      {"which the model does not hold",
       [](planfb::CudaCodeT& c) {
         for (auto& b : c.buffers)
           if (!b->tensor.empty()) b->tensor = "no.such.tensor";
       }},
  };
  for (const auto& [what, edit] : edits) {
    SCOPED_TRACE(what);
    std::vector<runtime::RepackedBlob> again;
    auto copy = rc::encode_cuda_code(**program, again);
    ASSERT_TRUE(copy);
    edit(**copy);
    auto refused = rc::decode_cuda_code(**copy, weights, nullptr, model->file());
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find(what), std::string::npos) << refused.error().message;
  }
}

// A device fault in the middle of a step is an error of that decode and of every later one of
// the session (its K/V cells may hold half a step), never a crash or silent garbage; another
// session of the same model is not affected.
TEST(CudaSession, ADeviceFaultFailsTheDecodeAndTheSessionAfterIt) {
  BITNET_REQUIRE_SHARED(shared);
  auto model = open((shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string());
  ASSERT_TRUE(model);
  auto device = std::make_unique<EmuDevice>(false);
  EmuDevice* emu = device.get();
  ASSERT_TRUE(compiler::attach_cuda_backend(*model, {.device = std::move(device)}).ok());
  const runtime::SessionOptions options{.all_logits = false, .n_ctx = 64, .threads = 1, .n_seq_max = 1};
  auto broken = model->new_session(options);
  ASSERT_TRUE(broken) << broken.error().message;
  ASSERT_TRUE((*broken)->decode(one(1, 0, 0)).ok());
  emu->fail_launch_after(10);
  auto fault = (*broken)->decode(one(450, 1, 0));
  ASSERT_FALSE(fault);
  EXPECT_NE(fault.error().message.find("the CUDA device failed"), std::string::npos) << fault.error().message;
  EXPECT_NE(fault.error().message.find("emulated device fault"), std::string::npos) << fault.error().message;
  EXPECT_EQ((*broken)->seq_pos_max(0), 0);  // the failed token was not added
  auto after = (*broken)->decode(one(450, 1, 0));
  ASSERT_FALSE(after);
  EXPECT_NE(after.error().message.find("the CUDA device failed"), std::string::npos) << after.error().message;
  auto fresh = model->new_session(options);
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_TRUE((*fresh)->decode(one(1, 0, 0)).ok());
}

// bench/cuda_backend_check, what the GPU machine runs (bench/cuda_device_check.sh --backend), in
// its emulator build: a CUDA plan of the test's, the weights repacked by the check, its parity
// run and benchmark loops, one JSON line.
TEST(CudaBackendCheck, RunsThePlanAndReportsParityAndThroughputOnTheEmulator) {
  BITNET_REQUIRE_SHARED(shared);
  const std::string model_path = (shared / "models/bitnet-i2s/bitnet-tiny-mha.i2_s.gguf").string();
  auto model = open(model_path);
  ASSERT_TRUE(model);
  auto hash = runtime::file_content_hash(model_path, "", "model");
  ASSERT_TRUE(hash) << hash.error().message;
  auto compiled = compiler::compile_cuda_plan(*model, *hash, 0, 32);
  ASSERT_TRUE(compiled) << compiled.error().message;
  TempDir dir;
  const std::string plan = (dir / "tiny.bnplan").string();
  ASSERT_TRUE(runtime::write_plan(plan, *compiled->plan, compiled->weights).ok());
  const std::string check = std::string(BITNET_CUDA_BACKEND_CHECK_EMU) + " --code " + shell_quote(plan) + " --model " +
                            shell_quote(model_path);
  auto r = run_command(check + " --emulator --parity --batches 1,2 --steps 3 --prompt 5");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("{\"status\":\"ok\",\"device\":\"host emulator\"", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\"parity_differing_logits\":0,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("{\"batch\":2,\"decode_tokens_per_s\":"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"prompt_tokens_per_s\":"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(",\"all_logits_tokens_per_s\":"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"gemm\":\"dp4a\""), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"depth\""), std::string::npos) << r.out;
  // Decode steps after a cache filled with 20 tokens (batched steps); past the plan's cells: exit 3.
  auto deep = run_command(check + " --emulator --batches 1,2 --steps 3 --depth 20");
  ASSERT_EQ(deep.exit_code, 0) << deep.out << deep.err;
  EXPECT_NE(deep.out.find("{\"batch\":2,\"decode_tokens_per_s\":"), std::string::npos) << deep.out;
  EXPECT_NE(deep.out.find(",\"depth\":20,\"fill_tokens_per_s\":"), std::string::npos) << deep.out;
  auto too_deep = run_command(check + " --emulator --batches 1 --steps 3 --depth 30");
  EXPECT_EQ(too_deep.exit_code, 3) << too_deep.out;
  EXPECT_NE(too_deep.out.find("exceed the plan's cells"), std::string::npos) << too_deep.out;
  // A plan whose batched GEMMs run on tensor cores: the check rebuilds that program too.
  auto mma = compiler::compile_cuda_plan(*model, *hash, 0, 32, /*mma_gemm=*/true);
  ASSERT_TRUE(mma) << mma.error().message;
  const std::string mma_plan = (dir / "tiny-mma.bnplan").string();
  ASSERT_TRUE(runtime::write_plan(mma_plan, *mma->plan, mma->weights).ok());
  auto m = run_command(std::string(BITNET_CUDA_BACKEND_CHECK_EMU) + " --code " + shell_quote(mma_plan) + " --model " +
                       shell_quote(model_path) + " --emulator --parity --batches 2 --steps 2 --prompt 5");
  ASSERT_EQ(m.exit_code, 0) << m.out << m.err;
  EXPECT_NE(m.out.find("\"gemm\":\"mma\""), std::string::npos) << m.out;
  EXPECT_NE(m.out.find("\"parity_differing_logits\":0,"), std::string::npos) << m.out;
  // Without a GPU (and without --emulator): exit 2, the reason as JSON.
  auto no_gpu = run_command(check);
  if (no_gpu.exit_code != 0) {
    EXPECT_EQ(no_gpu.exit_code, 2) << no_gpu.out;
    EXPECT_NE(no_gpu.out.find("\"stage\":\"device\""), std::string::npos) << no_gpu.out;
  }
  // Another model than the plan's: exit 3.
  auto other = run_command(std::string(BITNET_CUDA_BACKEND_CHECK_EMU) + " --code " + shell_quote(plan) + " --model " +
                           shell_quote((shared / "models/bitnet-i2s/b158-tiny-gqa.i2_s.gguf").string()));
  EXPECT_EQ(other.exit_code, 3) << other.out;
  EXPECT_NE(other.out.find("content hash"), std::string::npos) << other.out;
}

}  // namespace
}  // namespace bitnet::testing
