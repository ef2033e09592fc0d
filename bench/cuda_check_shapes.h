// The kernels the standalone device check runs: BitNet b1.58 2B4T decode shapes (n_embd 2560,
// n_ff 6912, 5 kv heads x 128 = 640, vocab 128256) plus small-T GEMM tiles. Shared by the
// build-time embedder (cuda_kernel_embed.cpp) and the check (cuda_kernel_check.cpp).
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "codegen_cuda/decode_program.h"
#include "codegen_cuda/emit_lm_head_f16.h"
#include "codegen_cuda/emit_matmul_i2s.h"
#include "codegen_cuda/emit_rmsnorm_quant.h"

namespace bitnet::bench {

struct NamedMatmul {
  std::string role;  // "q/o", "k/v", "gate/up", "down"
  codegen_cuda::MatmulI2sShape shape;
  int n_tokens;
  std::string variant = "baseline";  // the tiling: "baseline" = the first slice's (r2 w8, no split)
};

// The decode GEMVs of one 2B4T layer: role, K, M.
struct DecodeRole {
  std::string role;
  int64_t k, m;
  int per_layer;  // launches per layer
};
inline std::vector<DecodeRole> decode_roles() {
  return {{"q/o", 2560, 2560, 2}, {"k/v", 2560, 640, 2}, {"gate/up", 2560, 6912, 2}, {"down", 6912, 2560, 1}};
}

// The T = 1 tilings the check times per decode shape (the device run picks the fastest for the
// decode-step graph): the first slice's, decode_gemv_shape()'s, and neighbours of the latter.
inline std::vector<std::pair<std::string, codegen_cuda::MatmulI2sShape>> gemv_variants(int64_t k, int64_t m) {
  const codegen_cuda::MatmulI2sShape d = codegen_cuda::decode_gemv_shape(k, m);
  const int steps = static_cast<int>(codegen_cuda::matmul_i2s_k_steps(k));
  const int s = d.k_split;
  std::vector<std::pair<std::string, codegen_cuda::MatmulI2sShape>> v = {
      {"baseline", {k, m, 1}},           {"decode", d},
      {"r1 g4", {k, m, 1, 1, 4 * s, s}}, {"r4 g2", {k, m, 1, 4, 2 * s, s}},
      {"r2 g8", {k, m, 1, 2, 8 * s, s}}, {"r2 g1", {k, m, 1, 2, s, s}},
  };
  if (steps > 1) v.push_back({"split all steps, r2 g2", {k, m, 1, 2, 2 * steps, steps}});
  if (s > 1) v.push_back({"no split, r2 g4", {k, m, 1, 2, 4, 1}});
  // Drop repeated tilings (same kernel).
  std::vector<std::pair<std::string, codegen_cuda::MatmulI2sShape>> out;
  std::set<std::string> names;
  for (auto& e : v) {
    if (names.insert(codegen_cuda::emit_matmul_i2s(e.second).name).second) out.push_back(e);
  }
  return out;
}

// One launch for q, k and v (gate and up) over their concatenated rows: a timing proxy for a
// fused launch (the real one needs a scale per tensor, not written yet).
inline std::vector<NamedMatmul> fused_proxies() {
  return {{"qkv fused proxy", codegen_cuda::decode_gemv_shape(2560, 3840), 1, "decode"},
          {"gate+up fused proxy", codegen_cuda::decode_gemv_shape(2560, 13824), 1, "decode"}};
}

inline std::vector<codegen_cuda::RmsNormQuantShape> check_norms() {
  return {{2560, 1e-5f, true, false}, {6912, 1e-5f, true, false}, {2560, 1e-5f, true, true}};
}

inline std::vector<NamedMatmul> check_matmuls() {
  std::vector<NamedMatmul> out = {{"q/o", {2560, 2560, 1}, 1},         {"k/v", {2560, 640, 1}, 1},
                                  {"gate/up", {2560, 6912, 1}, 1},     {"down", {6912, 2560, 1}, 1},
                                  {"gate/up T=8", {2560, 6912, 8}, 8}, {"down T=8", {6912, 2560, 8}, 8},
                                  {"q/o T=4", {2560, 2560, 4}, 4}};
  for (const DecodeRole& r : decode_roles()) {
    for (const auto& [variant, shape] : gemv_variants(r.k, r.m)) {
      if (variant != "baseline") out.push_back({r.role, shape, 1, variant});
    }
  }
  for (const NamedMatmul& f : fused_proxies()) out.push_back(f);
  return out;
}

inline codegen_cuda::LmHeadF16Shape check_lm_head() {
  return {2560, 128256};
}

// The whole-model decode steps the check runs (decode_program.h): the 2B4T shape on random
// weights (timed at several context lengths) and the shared tiny models (checked against the CPU
// reference, then timed). Their kernels are compiled in, so a model file must have exactly this
// configuration (the check compares it).
struct DecodeProgramCase {
  std::string name;
  std::string gguf;  // file name under --models, "" = random weights
  codegen_cuda::DecodeModelConfig config;
  codegen_cuda::DecodeProgramOptions options = {};
};
inline std::vector<DecodeProgramCase> decode_program_cases() {
  using codegen_cuda::FfnActivation;
  return {
      // Cases without "PDL" in their name: no programmatic dependent launch (the kernels' text as
      // before it existed). The tiny models with the norms folded (as in the recorded H200 runs) and separate.
      // (The bitnet-tiny-mha baseline with separate norms, for the PDL comparison below.)
      {"bitnet-tiny-mha, norms as separate launches",
       "bitnet-tiny-mha.i2_s.gguf",
       {256, 768, 4, 4, 4, 32000, 512, 1e-5f, 10000.0f, 1.0f, FfnActivation::kSilu},
       {.pdl = codegen_cuda::PdlMode::kOff}},
      {"bitnet-tiny-mha",
       "bitnet-tiny-mha.i2_s.gguf",
       {256, 768, 4, 4, 4, 32000, 512, 1e-5f, 10000.0f, 1.0f, FfnActivation::kSilu},
       {.fuse_norms = true, .pdl = codegen_cuda::PdlMode::kOff}},
      {"b158-tiny-gqa",
       "b158-tiny-gqa.i2_s.gguf",
       {256, 768, 8, 2, 4, 32000, 512, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = true, .pdl = codegen_cuda::PdlMode::kOff}},
      {"b158-tiny-gqa, norms as separate launches",
       "b158-tiny-gqa.i2_s.gguf",
       {256, 768, 8, 2, 4, 32000, 512, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.pdl = codegen_cuda::PdlMode::kOff}},
      {"2b4t-shape (random weights), norms folded into the GEMVs",
       "",
       {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = true, .pdl = codegen_cuda::PdlMode::kOff}},
      {"2b4t-shape (random weights), norms as separate launches",
       "",
       {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kOff}},
      // The same programs with programmatic dependent launch (sm_90+; skipped elsewhere), in the
      // same run as the cases above: the tiny models' parity with PDL and the 2B4T shape's timing.
      {"bitnet-tiny-mha, norms as separate launches, PDL",
       "bitnet-tiny-mha.i2_s.gguf",
       {256, 768, 4, 4, 4, 32000, 512, 1e-5f, 10000.0f, 1.0f, FfnActivation::kSilu},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait}},
      {"b158-tiny-gqa, norms as separate launches, PDL",
       "b158-tiny-gqa.i2_s.gguf",
       {256, 768, 8, 2, 4, 32000, 512, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait}},
      {"b158-tiny-gqa, norms folded, PDL",
       "b158-tiny-gqa.i2_s.gguf",
       {256, 768, 8, 2, 4, 32000, 512, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = true, .pdl = codegen_cuda::PdlMode::kAfterWait}},
      {"2b4t-shape (random weights), norms folded into the GEMVs, PDL",
       "",
       {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = true, .pdl = codegen_cuda::PdlMode::kAfterWait}},
      {"2b4t-shape (random weights), norms as separate launches, PDL",
       "",
       {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait}},
      // rope_kv as its own launch (every other case folds it into the scores kernel).
      {"2b4t-shape (random weights), norms as separate launches, PDL, rope_kv apart",
       "",
       {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait, .fuse_rope = false}},
      {"b158-tiny-gqa, norms as separate launches, PDL, rope_kv apart",
       "b158-tiny-gqa.i2_s.gguf",
       {256, 768, 8, 2, 4, 32000, 512, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait, .fuse_rope = false}},
      // The norms after o, gate|up and down done by the last block of that GEMV (tail_norms).
      {"2b4t-shape (random weights), tail norms, PDL",
       "",
       {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait, .tail_norms = true}},
      {"bitnet-tiny-mha, tail norms, PDL",
       "bitnet-tiny-mha.i2_s.gguf",
       {256, 768, 4, 4, 4, 32000, 512, 1e-5f, 10000.0f, 1.0f, FfnActivation::kSilu},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait, .tail_norms = true}},
      {"b158-tiny-gqa, tail norms, PDL",
       "b158-tiny-gqa.i2_s.gguf",
       {256, 768, 8, 2, 4, 32000, 512, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait, .tail_norms = true}},
      // The softmax as a launch of its own (separate_softmax: the only form above 8192 cells), at
      // 4096 cells against the default, whose softmax every block of softmax·V recomputes.
      {"2b4t-shape (random weights), norms as separate launches, PDL, separate softmax",
       "",
       {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait, .separate_softmax = true}},
      {"b158-tiny-gqa, norms as separate launches, PDL, separate softmax",
       "b158-tiny-gqa.i2_s.gguf",
       {256, 768, 8, 2, 4, 32000, 512, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kAfterWait, .separate_softmax = true}},
      // kEarly: each kernel lets its successor be scheduled before it waits for its predecessor.
      {"bitnet-tiny-mha, norms as separate launches, PDL early trigger",
       "bitnet-tiny-mha.i2_s.gguf",
       {256, 768, 4, 4, 4, 32000, 512, 1e-5f, 10000.0f, 1.0f, FfnActivation::kSilu},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kEarly}},
      {"b158-tiny-gqa, norms folded, PDL early trigger",
       "b158-tiny-gqa.i2_s.gguf",
       {256, 768, 8, 2, 4, 32000, 512, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = true, .pdl = codegen_cuda::PdlMode::kEarly}},
      {"2b4t-shape (random weights), norms folded into the GEMVs, PDL early trigger",
       "",
       {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = true, .pdl = codegen_cuda::PdlMode::kEarly}},
      {"2b4t-shape (random weights), norms as separate launches, PDL early trigger",
       "",
       {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, FfnActivation::kRelu2},
       {.fuse_norms = false, .pdl = codegen_cuda::PdlMode::kEarly}},
  };
}

// Every kernel above, one translation unit (one module on the device); kernels of the same name
// are the same text and appear once.
inline std::string check_source() {
  std::string source;
  std::set<std::string> names;
  auto add = [&](const codegen_cuda::KernelSource& k) {
    if (names.insert(k.name).second) source += k.source;
  };
  for (const auto& n : check_norms()) add(codegen_cuda::emit_rmsnorm_quant(n));
  for (const auto& m : check_matmuls()) add(codegen_cuda::emit_matmul_i2s(m.shape));
  add(codegen_cuda::emit_lm_head_f16(check_lm_head()));
  for (const DecodeProgramCase& c : decode_program_cases()) {
    auto program = codegen_cuda::plan_decode_program(c.config, c.options);
    if (!program) continue;  // the check reports it when it plans the same config
    for (const auto& k : program->kernels) add(k);
  }
  return source;
}

}  // namespace bitnet::bench
