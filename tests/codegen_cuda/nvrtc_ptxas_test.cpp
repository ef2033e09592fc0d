// Every kernel kind at the 2B4T shapes compiled by NVRTC for sm_80 and sm_90 and checked with
// `ptxas -v`: no spills, no stack frame, registers within the launch bounds. Skips (with the
// reason) where NVRTC or ptxas is not installed.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "codegen_cuda/decode_program.h"
#include "codegen_cuda/emit_embed.h"
#include "codegen_cuda/emit_lm_head_f16.h"
#include "codegen_cuda/emit_matmul_i2s.h"
#include "codegen_cuda/emit_q8_0.h"
#include "codegen_cuda/emit_rmsnorm_quant.h"
#include "codegen_cuda/nvrtc.h"
#include "codegen_cuda/ptxas_report.h"

namespace bitnet::testing {
namespace {

namespace cc = codegen_cuda;

std::vector<cc::KernelSource> kernels_2b4t() {
  std::vector<cc::KernelSource> kernels = {
      cc::emit_rmsnorm_quant({2560, 1e-5f, true, false}),
      cc::emit_rmsnorm_quant({6912, 1e-5f, true, false}),
      cc::emit_rmsnorm_quant({2560, 1e-5f, true, true}),
      cc::emit_matmul_i2s({2560, 2560, 1}),  // q, o
      cc::emit_matmul_i2s({2560, 640, 1}),   // k, v
      cc::emit_matmul_i2s({2560, 6912, 1}),  // gate, up
      cc::emit_matmul_i2s({6912, 2560, 1}),  // down
      cc::emit_matmul_i2s({2560, 6912, 4}),  // prompt tiles
      cc::emit_matmul_i2s({6912, 2560, 8}),
      cc::emit_matmul_i2s(cc::decode_gemv_shape(2560, 2560)),  // the decode tilings (split-K)
      cc::emit_matmul_i2s(cc::decode_gemv_shape(2560, 640)),
      cc::emit_matmul_i2s(cc::decode_gemv_shape(2560, 6912)),
      cc::emit_matmul_i2s(cc::decode_gemv_shape(6912, 2560)),
      cc::emit_matmul_i2s({6912, 2560, 1, 2, 10, 5}),
      cc::emit_lm_head_f16({2560, 128256}),
      // Q8_0 token tables (bitnet.cpp's fallback for n_embd % 256 != 0), as a decode program plans them.
      cc::emit_embed_q8_0({384, 32000}),
      cc::emit_lm_head_q8_0({384, 32000}),
      cc::emit_lm_head_q8_0({12288, 128256, 4, 8, cc::PdlMode::kAfterWait}),
  };
  // The largest tensor-core tiles the emitter takes: 8 MMA tiles at 128 threads, 4 at 256.
  for (const auto& [tokens, rows, warps] : {std::tuple{32, 32, 4}, {32, 16, 8}, {16, 32, 16}}) {
    cc::MatmulI2sShape tile{6912, 2560, tokens, rows, warps};
    tile.mma = true;
    tile.epilogue = cc::MatmulI2sEpilogue::kResidualAdd;
    kernels.push_back(cc::emit_matmul_i2s(tile));
  }
  // GEMM tiles with programmatic dependent launch (their wait sits before the K loop).
  for (const int tokens : {4, 8}) {
    cc::MatmulI2sShape tile{6912, 2560, tokens};
    tile.pdl = cc::PdlMode::kAfterWait;
    kernels.push_back(cc::emit_matmul_i2s(tile));
  }
  // Every kernel of the 2B4T decode step (embedding, fused GEMV epilogues, RoPE + KV append,
  // attention, at 4K and 128K cells) and of the two shared tiny models' steps (silu and relu2, GQA with head_dim 32).
  const std::vector<cc::DecodeModelConfig> configs = {
      {2560, 6912, 20, 5, 30, 128256, 4096, 1e-5f, 500000.0f, 1.0f, cc::FfnActivation::kRelu2},
      // 128K cells: the softmax as a launch of its own (only the attention kernels are new).
      {2560, 6912, 20, 5, 30, 128256, 131072, 1e-5f, 500000.0f, 1.0f, cc::FfnActivation::kRelu2},
      {256, 768, 4, 4, 4, 32000, 512, 1e-5f, 10000.0f, 1.0f, cc::FfnActivation::kSilu},
      {256, 768, 8, 2, 4, 32000, 512, 1e-5f, 500000.0f, 1.0f, cc::FfnActivation::kRelu2},
  };
  for (const cc::DecodeModelConfig& c : configs) {
    // Programmatic dependent launch in both modes at the 2B4T shape only (the same text otherwise).
    std::vector<cc::PdlMode> modes = {cc::PdlMode::kOff};
    if (c.n_embd == 2560) modes = {cc::PdlMode::kOff, cc::PdlMode::kAfterWait, cc::PdlMode::kEarly};
    // The batched step's GEMMs on dp4a and on tensor cores (with the default norms only); the
    // one-token GEMVs with tail norms.
    struct Variant {
      bool fuse_norms, mma_gemm, tail_norms;
    };
    for (const Variant& v :
         {Variant{true, false, false}, {false, false, false}, {false, true, false}, {false, false, true}}) {
      for (const cc::PdlMode pdl : modes) {
        auto program = cc::plan_decode_program(
            c, {.fuse_norms = v.fuse_norms, .pdl = pdl, .mma_gemm = v.mma_gemm, .tail_norms = v.tail_norms});
        EXPECT_TRUE(program) << program.error().message;
        if (!program) continue;
        for (const cc::KernelSource& k : program->kernels) {
          bool seen = false;
          for (const cc::KernelSource& other : kernels) seen = seen || other.name == k.name;
          if (!seen) kernels.push_back(k);
        }
      }
    }
  }
  return kernels;
}

std::string ptxas_path() {
#ifdef BITNET_PTXAS
  if (std::filesystem::exists(BITNET_PTXAS)) return BITNET_PTXAS;
#endif
  return "";
}

TEST(CudaNvrtc, EveryKernelCompilesForSm80AndSm90WithoutSpills) {
  auto nvrtc = cc::Nvrtc::load();
  if (!nvrtc) GTEST_SKIP() << nvrtc.error().message;
  const std::string ptxas = ptxas_path();
  if (ptxas.empty()) GTEST_SKIP() << "ptxas not found (configure with the CUDA toolkit)";
  const std::vector<cc::KernelSource> kernels = kernels_2b4t();
  // One NVRTC program per architecture: the prelude is guarded and cuda_fp16.h is parsed once.
  std::string source;
  for (const cc::KernelSource& k : kernels) source += k.source;
  for (int sm : {80, 90}) {
    auto out = (*nvrtc)->compile(source, "kernels_2b4t.cu", {sm});
    ASSERT_TRUE(out) << out.error().message;
    EXPECT_GT(out->cubin.size(), 1000u);
    EXPECT_NE(out->ptx.find(".target sm_" + std::to_string(sm)), std::string::npos);
    EXPECT_NE(out->ptx.find("dp4a.s32.s32"), std::string::npos);
    EXPECT_NE(out->ptx.find("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32"), std::string::npos);
    // Programmatic dependent launch: every PDL kernel waits for its predecessor on sm_90; no
    // griddepcontrol at all on sm_80.
    size_t waits = 0;
    for (size_t at = out->ptx.find("griddepcontrol.wait"); at != std::string::npos;
         at = out->ptx.find("griddepcontrol.wait", at + 1)) {
      ++waits;
    }
    size_t pdl_kernels = 0;
    for (const cc::KernelSource& k : kernels) pdl_kernels += k.name.find("_pdl") != std::string::npos;
    if (sm == 90) {
      EXPECT_GE(waits, pdl_kernels);
      EXPECT_GT(pdl_kernels, 20u);
      EXPECT_NE(out->ptx.find("griddepcontrol.launch_dependents"), std::string::npos);
    } else {
      EXPECT_EQ(waits, 0u);
    }
    auto report = cc::run_ptxas(ptxas, out->ptx, sm);
    ASSERT_TRUE(report) << report.error().message;
    for (const cc::KernelSource& k : kernels) {
      const cc::PtxasEntry* entry = nullptr;
      for (const cc::PtxasEntry& e : *report) {
        if (e.name == k.name) entry = &e;
      }
      ASSERT_NE(entry, nullptr) << k.name << " missing from the ptxas report";
      SCOPED_TRACE(k.name + " sm_" + std::to_string(sm));
      EXPECT_EQ(entry->spill_store_bytes, 0);
      EXPECT_EQ(entry->spill_load_bytes, 0);
      EXPECT_EQ(entry->stack_frame_bytes, 0);
      EXPECT_GT(entry->registers, 0);
      EXPECT_LE(entry->registers, cc::register_limit(k));
      EXPECT_LE(entry->shared_bytes, 48 * 1024);  // static shared memory, at any number of cells
      std::cout << "[ptxas] sm_" << sm << " " << k.name << ": " << entry->registers << " registers (limit "
                << cc::register_limit(k) << "), spill " << entry->spill_store_bytes << "/" << entry->spill_load_bytes
                << " B, stack " << entry->stack_frame_bytes << " B, smem " << entry->shared_bytes << " B\n";
    }
  }
}

TEST(CudaNvrtc, CompileErrorsCarryTheLog) {
  auto nvrtc = cc::Nvrtc::load();
  if (!nvrtc) GTEST_SKIP() << nvrtc.error().message;
  auto out = (*nvrtc)->compile("extern \"C\" __global__ void broken() { undeclared_thing(); }", "broken.cu", {90});
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message.find("undeclared_thing"), std::string::npos) << out.error().message;
  EXPECT_NE(out.error().message.find("broken.cu"), std::string::npos);
}

TEST(CudaNvrtc, PtxasReportParser) {
  const std::string text =
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Compiling entry function 'alpha' for 'sm_90'\n"
      "ptxas info    : Function properties for alpha\n"
      "    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n"
      "ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem, 380 bytes cmem[0]\n"
      "ptxas info    : Compiling entry function 'beta' for 'sm_90'\n"
      "ptxas info    : Function properties for beta\n"
      "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 128 registers, used 0 barriers, 372 bytes cmem[0]\n";
  const auto entries = cc::parse_ptxas_report(text);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, "alpha");
  EXPECT_EQ(entries[0].arch, "sm_90");
  EXPECT_EQ(entries[0].registers, 40);
  EXPECT_EQ(entries[0].stack_frame_bytes, 8);
  EXPECT_EQ(entries[0].spill_store_bytes, 4);
  EXPECT_EQ(entries[0].spill_load_bytes, 12);
  EXPECT_EQ(entries[0].shared_bytes, 1024);
  EXPECT_EQ(entries[1].name, "beta");
  EXPECT_EQ(entries[1].registers, 128);
  EXPECT_EQ(entries[1].shared_bytes, 0);
}

}  // namespace
}  // namespace bitnet::testing
