// The CUDA backend on a GPU machine that has none of this project's build: the sessions of
// runtime/cuda run the decode step of a CUDA plan compiled elsewhere (`bitnet compile --target
// cuda-sm_90`; only the .bnplan is needed, not its sidecar), with the weights repacked here from
// the model, which must be the plan's (content hash). It checks every logit against the
// reference interpreter through batches of two sequences, seq_cp and the context shift
// (--parity), and measures decode (one token per sequence per step) and prompt throughput at
// the batch sizes asked (the prompt also with every row's logits, as `bitnet eval` runs a text:
// all_logits_tokens_per_s). One JSON object on stdout.
//
//   cuda_backend_check --code PLAN --model GGUF [--gen-2b4t] [--parity] [--batches 1,8,64]
//                      [--steps 32] [--prompt 128] [--depth 0]
//
// --depth D: each sequence's cache is first filled with D tokens (batched steps, timed as
// fill_tokens_per_s), so that the decode steps attend over D cells (a long-context figure; the
// plan must hold D + steps cells).
// --gen-2b4t writes the 2B4T-shape model (gen-model --preset 2b4t --seed 4) to GGUF first when
// it does not exist (1.18 GB: too large to carry to the machine). Exit codes: 0 ok, 1 logits
// differ, 2 no GPU or driver, 3 other errors, 4 usage. bench/cuda_device_check.sh runs it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "compiler/cuda_model.h"
#include "frontend_gguf/lowering.h"
#include "frontend_gguf/model_generator.h"
#include "reference/interpreter.h"
#include "runtime/cuda/cuda_driver_device.h"
#include "runtime/cuda/cuda_plan.h"
#include "runtime/plan_files.h"
#include "runtime/plan_reader.h"

#ifdef BITNET_CUDA_CHECK_EMULATOR
#include "emu_device.h"  // tests/codegen_cuda: the test build's variant runs on the host emulator
#endif

namespace {

using namespace bitnet;
namespace rc = runtime::cuda;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string code, model;
  bool gen_2b4t = false, parity = false, emulator = false;
  std::vector<int> batches = {1, 8, 64};
  int steps = 32, prompt = 128;
  int64_t depth = 0;
};

int usage(const char* why) {
  std::fprintf(stderr,
               "cuda_backend_check: %s\nusage: cuda_backend_check --code PLAN --model GGUF [--gen-2b4t] [--parity] "
               "[--batches 1,8,64] [--steps N] [--prompt N] [--depth N]\n",
               why);
  return 4;
}

int fail(int code, const std::string& stage, const std::string& message) {
  std::printf("{\"status\":\"error\",\"exit_code\":%d,\"stage\":\"%s\",\"reason\":\"", code, stage.c_str());
  for (char c : message) {
    if (c == '"' || c == '\\') std::putchar('\\');
    std::putchar(c == '\n' ? ' ' : c);
  }
  std::printf("\"}\n");
  return code;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Batch one(int32_t token, int64_t pos, int32_t seq) {
  Batch b;
  b.add(token, pos, {seq}, true);
  return b;
}

// The interpreter and the CUDA session through the same calls; the number of logits whose bits
// differ, or -1 on an error (printed).
int64_t parity(runtime::Model& model, runtime::Session& cuda) {
  auto graph = gguf::lower_to_ir(model.file());
  if (!graph) return std::fprintf(stderr, "lowering: %s\n", graph.error().message.c_str()), -1;
  auto interp = reference::Interpreter::create(*graph, model.file(),
                                               {.n_ctx = cuda.n_ctx(), .threads = 8, .n_seq_max = cuda.n_seq_max()});
  if (!interp) return std::fprintf(stderr, "interpreter: %s\n", interp.error().message.c_str()), -1;
  runtime::Session& want = **interp;
  int64_t differing = 0;
  auto same = [&](const Batch& batch) {
    auto w = want.decode(batch);
    auto g = cuda.decode(batch);
    if (!w || !g) {
      std::fprintf(stderr, "decode: %s\n", (!w ? w.error() : g.error()).message.c_str());
      return false;
    }
    const auto& wl = w->at("logits").data;
    const auto& gl = g->at("logits").data;
    if (wl.size() != gl.size()) return false;
    for (size_t i = 0; i < wl.size(); ++i) differing += std::memcmp(&wl[i], &gl[i], 4) != 0;
    return true;
  };
  Batch two;
  two.add(450, 1, {0}, true);
  two.add(1, 0, {1}, true);
  bool ok = same(one(1, 0, 0)) && same(two) && same(one(4996, 1, 1));
  for (int i = 0; ok && i < 3; ++i) ok = same(one(29871 + i, 2 + i, 0));
  ok = ok && want.seq_rm(1, -1, -1) && cuda.seq_rm(1, -1, -1) && want.seq_cp(0, 1, -1, -1).ok() &&
       cuda.seq_cp(0, 1, -1, -1).ok() && same(one(450, 5, 1));
  ok = ok && want.seq_rm(0, 1, 3) && cuda.seq_rm(0, 1, 3) && want.seq_add(0, 3, -1, -2).ok() &&
       cuda.seq_add(0, 3, -1, -2).ok() && same(one(4996, 3, 0));
  return ok ? differing : -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--code") {
      o.code = value();
    } else if (a == "--model") {
      o.model = value();
    } else if (a == "--gen-2b4t") {
      o.gen_2b4t = true;
    } else if (a == "--parity") {
      o.parity = true;
#ifdef BITNET_CUDA_CHECK_EMULATOR
    } else if (a == "--emulator") {  // the kernels' CUDA C++ on the host emulator instead of a GPU
      o.emulator = true;
#endif
    } else if (a == "--steps" || a == "--prompt") {
      const int n = std::atoi(value().c_str());
      if (n < 1 || n > 4096) return usage("--steps and --prompt take 1..4096");
      (a == "--steps" ? o.steps : o.prompt) = n;
    } else if (a == "--depth") {
      const std::string n = value();
      o.depth = std::atoll(n.c_str());
      if (n.empty() || o.depth < 0 || o.depth > (int64_t{1} << 20)) return usage("--depth takes 0..1048576");
    } else if (a == "--batches") {
      o.batches.clear();
      const std::string list = value();
      for (size_t at = 0; at < list.size();) {
        const size_t end = std::min(list.find(',', at), list.size());
        const int b = std::atoi(list.substr(at, end - at).c_str());
        if (b < 1 || b > 256) return usage("--batches takes sizes 1..256");
        o.batches.push_back(b);
        at = end + 1;
      }
    } else {
      return usage(("unknown argument " + a).c_str());
    }
  }
  if (o.code.empty() || o.model.empty()) return usage("--code and --model are required");

  if (o.gen_2b4t && !std::filesystem::exists(o.model)) {
    auto spec = gguf::model_preset("2b4t");
    spec->seed = 4;
    const auto t0 = Clock::now();
    if (auto s = gguf::generate_model(*spec, o.model); !s.ok()) return fail(3, "gen-2b4t", s.error().message);
    std::fprintf(stderr, "generated %s in %.1f s\n", o.model.c_str(), seconds_since(t0));
  }
  auto plan = runtime::read_plan(o.code);
  if (!plan) return fail(3, "plan", plan.error().message);
  if (!(*plan)->cuda || !(*plan)->model) return fail(3, "plan", "not a CUDA plan");
  const planfb::CudaCodeT& code = *(*plan)->cuda;
  auto hash = runtime::file_content_hash(o.model, "", "model");
  if (!hash) return fail(3, "model", hash.error().message);
  const planfb::Hash128* want = (*plan)->model->hash.get();
  if (!want || want->lo() != hash->lo || want->hi() != hash->hi) {
    return fail(3, "model", "the model is not the one the plan was compiled for (content hash)");
  }
  auto model = runtime::Model::open(o.model);
  if (!model) return fail(3, "model", model.error().message);

  // The plan's code with the weights repacked here (the same program, minus NVRTC), its batched
  // GEMMs on tensor cores when the plan's are (bitnet compile --cuda-gemm mma).
  bool mma_gemm = false;  // as the plan records it (bitnet compile writes gemm=dp4a|mma)
  if ((*plan)->provenance) {
    for (const auto& kv : (*plan)->provenance->options)
      mma_gemm = mma_gemm || (kv->key == "gemm" && kv->value == "mma");
  }
  auto built = compiler::compile_cuda_program(
      **model, code.n_ctx,
      {.sm = 0, .programmatic_launch = code.programmatic_launch, .max_tokens = code.max_tokens, .mma_gemm = mma_gemm});
  if (!built) return fail(3, "program", built.error().message);
  auto program = std::make_shared<rc::CudaProgram>(**built);
  if (program->kernels != code.kernels || program->launches.size() != code.launches.size()) {
    return fail(3, "program", "the plan's kernels are not this build's for the model (another bitnet version?)");
  }
  program->cubin = code.cubin;
  program->ptx = code.ptx;
  program->sm = code.sm;

  auto device = rc::open_cuda_device(0);
#ifdef BITNET_CUDA_CHECK_EMULATOR
  if (o.emulator) device = std::unique_ptr<rc::Device>(std::make_unique<testing::EmuDevice>());
#endif
  if (!device) return fail(2, "device", device.error().message);
  const rc::DeviceInfo info = (*device)->info();
  auto backend = std::make_shared<rc::CudaBackend>(std::move(*device));
  auto t0 = Clock::now();
  {
    std::lock_guard lock(backend->mutex());
    if (auto s = backend->load(program); !s.ok()) return fail(3, "load", s.error().message);
  }
  const double load_s = seconds_since(t0);
  rc::install_cuda_program(**model, program, backend);

  std::string json =
      "{\"status\":\"ok\",\"device\":\"" + info.name + "\",\"sm\":" + std::to_string(info.sm) +
      ",\"plan_sm\":" + std::to_string(code.sm) + ",\"model\":\"" + std::filesystem::path(o.model).filename().string() +
      "\",\"cells\":" + std::to_string(code.n_ctx) + ",\"max_tokens\":" + std::to_string(code.max_tokens) +
      ",\"gemm\":\"" + (mma_gemm ? "mma" : "dp4a") + "\"" +
      ",\"weights_mib\":" + std::to_string(backend->weight_bytes() >> 20) + ",\"load_s\":" + std::to_string(load_s);
  int exit_code = 0;
  if (o.parity) {
    auto session = (*model)->new_session({.all_logits = false, .n_ctx = 2 * code.n_ctx, .threads = 1, .n_seq_max = 2});
    if (!session) return fail(3, "parity", session.error().message);
    const int64_t differing = parity(**model, **session);
    if (differing < 0) return fail(3, "parity", "a decode or KV edit failed (stderr)");
    json += ",\"parity_differing_logits\":" + std::to_string(differing);
    if (differing != 0) exit_code = 1;
  }
  json += ",\"runs\":[";
  for (size_t k = 0; k < o.batches.size(); ++k) {
    const int b = o.batches[k];
    auto session = (*model)->new_session({.all_logits = false, .n_ctx = b * code.n_ctx, .threads = 1, .n_seq_max = b});
    if (!session) return fail(3, "bench", session.error().message);
    runtime::Session& s = **session;
    Batch batch;
    // --depth: positions 0 .. first - 2 of every sequence in batched steps, each of up to the plan's
    // max_tokens tokens of one sequence.
    const int64_t first = std::max<int64_t>(o.depth, 1);  // the first timed position
    if (first + o.steps > code.n_ctx) return fail(3, "bench", "--depth + --steps exceed the plan's cells");
    t0 = Clock::now();
    for (int seq = 0; seq < b; ++seq) {
      for (int64_t p0 = 0; p0 < first - 1; p0 += code.max_tokens) {
        batch.clear();
        const int64_t p1 = std::min<int64_t>(p0 + code.max_tokens, first - 1);
        for (int64_t p = p0; p < p1; ++p) batch.add(static_cast<int32_t>(1 + (p * 13) % 1000), p, {seq}, p + 1 == p1);
        if (auto r = s.decode(batch); !r) return fail(3, "bench", r.error().message);
      }
    }
    const double fill_s = seconds_since(t0);
    // Warm-up: batch 1 captures the sequence's graph; larger batches run batched steps (not captured).
    batch.clear();
    for (int seq = 0; seq < b; ++seq) batch.add(1, first - 1, {seq}, true);
    if (auto r = s.decode(batch); !r) return fail(3, "bench", r.error().message);
    t0 = Clock::now();
    for (int step = 0; step < o.steps; ++step) {
      batch.clear();
      for (int seq = 0; seq < b; ++seq) batch.add(1 + (step * 7 + seq) % 1000, first + step, {seq}, true);
      if (auto r = s.decode(batch); !r) return fail(3, "bench", r.error().message);
    }
    const double decode_s = seconds_since(t0);
    json += std::string(k ? "," : "") + "{\"batch\":" + std::to_string(b) +
            ",\"decode_tokens_per_s\":" + std::to_string(b * o.steps / decode_s);
    if (o.depth > 1) {
      json += ",\"depth\":" + std::to_string(o.depth) +
              ",\"fill_tokens_per_s\":" + std::to_string(static_cast<double>(b * (first - 1)) / fill_s);
    }
    if (b == 1 && o.prompt < code.n_ctx) {  // a prompt: batched steps of up to max_tokens tokens
      s.clear();
      std::vector<int32_t> prompt(static_cast<size_t>(o.prompt));
      for (int i = 0; i < o.prompt; ++i) prompt[static_cast<size_t>(i)] = 1 + (i * 13) % 1000;
      t0 = Clock::now();
      if (auto r = s.run(prompt); !r) return fail(3, "bench", r.error().message);
      json += ",\"prompt_tokens_per_s\":" + std::to_string(o.prompt / seconds_since(t0));
      // The same prompt with every row's logits, as `bitnet eval` runs a text: the prompt-mode LM
      // head over all of them, and every row copied back.
      auto all = (*model)->new_session({.all_logits = true, .n_ctx = code.n_ctx, .threads = 1, .n_seq_max = 1});
      if (!all) return fail(3, "bench", all.error().message);
      t0 = Clock::now();
      if (auto r = (*all)->run(prompt); !r) return fail(3, "bench", r.error().message);
      json += ",\"all_logits_tokens_per_s\":" + std::to_string(o.prompt / seconds_since(t0));
    }
    json += "}";
  }
  json += "]}";
  std::printf("%s\n", json.c_str());
  return exit_code;
}
