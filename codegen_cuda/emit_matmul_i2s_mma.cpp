// The I2_S product on int8 tensor cores (MatmulI2sShape::mma): mma.m16n8k32 with the ternary
// codes as the unsigned A operand (0, 1, 2 as stored, so the code sum is subtracted in the
// epilogue exactly as the dp4a kernels do) and the activation codes as the signed B operand.
//
// The K order inside one MMA is free (integer sums are exact in any order), so the fragments are
// cut to fit repack_i2s()'s words instead of the other way round: lane (gid, tid) of a warp takes
// the weight words of chunks c = tid (mod 4) for rows gid and gid + 8 of each row tile, and the
// activations of the same chunks for token gid of each token tile. A word holds 16 codes, the
// codes of k = 16c + 4i .. 16c + 4i + 3 at (word >> 2i) & 0x03030303: groups 2p and 2p + 1 are
// one MMA's a0/a2 (rows gid) and a1/a3 (rows gid + 8) registers, and the int8 activations of the
// same k, one 8-byte load at 16c + 8p, are its b0/b1. One MMA thus covers 8 codes of each of
// the four chunks its lanes hold (32 k), two MMAs a chunk word. Weights stream with 16-byte
// loads, 64 contiguous bytes per row and load instruction.
#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"
#include "codegen_cuda/emit_matmul_i2s.h"
#include "codegen_cuda/repack.h"

namespace bitnet::codegen_cuda {

KernelSource emit_matmul_i2s_mma(const MatmulI2sShape& shape) {
  const bool gated = shape.epilogue == MatmulI2sEpilogue::kGluRelu2 || shape.epilogue == MatmulI2sEpilogue::kGluSilu;
  if (shape.k <= 0 || shape.k % 128 != 0 || shape.m <= 0) throw std::invalid_argument("emit_matmul_i2s_mma: bad shape");
  if (shape.rows_per_warp % 16 != 0 || shape.rows_per_warp < 16 || shape.rows_per_warp > 64 ||
      shape.tokens_per_block % 8 != 0 || shape.tokens_per_block < 8 || shape.tokens_per_block > 32 || shape.warps < 1 ||
      shape.warps > 16 || shape.k_split != 1 || shape.fuse_norm || shape.tail_norm) {
    throw std::invalid_argument("emit_matmul_i2s_mma: bad tiling");
  }
  // Registers: 4 accumulators per 16 x 8 tile; ptxas keeps 8 tiles in 150 registers (fits the
  // 255 of blocks up to 128 threads) and 4 in 116 (the 128 of 2 resident 256-thread blocks).
  const int tiles = (shape.rows_per_warp / 16) * (shape.tokens_per_block / 8);
  if (tiles > (shape.warps <= 4 ? 8 : 4)) {
    throw std::invalid_argument("emit_matmul_i2s_mma: too many MMA tiles per warp for the registers");
  }
  check_matmul_i2s_epilogue(shape, "emit_matmul_i2s_mma");
  KernelSource kern;
  kern.threads = shape.warps * 32;
  kern.min_blocks = kern.threads <= 256 ? 2 : 1;
  kern.name = kernel_name(
      "bn_matmul_i2s_mma",
      {{"k", shape.k}, {"m", shape.m}, {"t", shape.tokens_per_block}, {"r", shape.rows_per_warp}, {"w", shape.warps}});
  kern.name += matmul_i2s_name_suffix(shape);
  auto num = [](int64_t v) { return std::to_string(v); };

  std::string s = device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(" + num(kern.threads) + ", " + num(kern.min_blocks) + ") " +
       kern.name + matmul_i2s_parameters(shape) +
       int_constants({{"kK", num(shape.k)},
                      {"kM", num(shape.m)},
                      {"kRowTiles", num(shape.rows_per_warp / 16)},
                      {"kTokTiles", num(shape.tokens_per_block / 8)},
                      {"kWarps", num(shape.warps)}}) +
       R"(
  constexpr int kWordsPerRow = kK / 16;
  constexpr int kTileWords = )" +
       num(kI2sTileChunks) + R"(;
  constexpr int kTiles = kWordsPerRow / kTileWords;
  constexpr int kTailWords = kWordsPerRow % kTileWords;  // a multiple of 8: the same count for every tid
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int gid = lane >> 2;
  const int tid = lane & 3;
  const int row0 = (blockIdx.x * kWarps + warp) * (16 * kRowTiles);
  if (row0 >= kM) return;  // uniform over the warp; no block-level barrier below
  const int tok0 = blockIdx.y * (8 * kTokTiles);

  // This lane's rows (gid and gid + 8 of each row tile) and tokens (gid of each token tile),
  // clamped for loading (every lane must take part in every MMA) and never stored past the end.
  const unsigned int* wrow[kRowTiles][2];
#pragma unroll
  for (int rt = 0; rt < kRowTiles; ++rt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = row0 + 16 * rt + 8 * h + gid;
      wrow[rt][h] = w + (long long)(r < kM ? r : kM - 1) * kWordsPerRow;
    }
  }
  const signed char* qtok[kTokTiles];
#pragma unroll
  for (int nt = 0; nt < kTokTiles; ++nt) {
    const int t = tok0 + 8 * nt + gid;
    qtok[nt] = q + (long long)(t < n_tokens ? t : n_tokens - 1) * kK;
  }
  int acc[kRowTiles][kTokTiles][4];
#pragma unroll
  for (int rt = 0; rt < kRowTiles; ++rt) {
#pragma unroll
    for (int nt = 0; nt < kTokTiles; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[rt][nt][i] = 0;
    }
  }
)" + pdl_early_text(shape.pdl, "  ") +
       pdl_wait_text(shape.pdl, "  ") + R"(
  // Chunk c of this lane (its words of each row, `word`): two MMAs per row and token tile, groups
  // 2p and 2p + 1 of the word against activation bytes 16c + 8p .. 16c + 8p + 7.
  auto chunk = [&](const unsigned (&word)[kRowTiles][2], int c) {
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      int2 b[kTokTiles];
#pragma unroll
      for (int nt = 0; nt < kTokTiles; ++nt) b[nt] = __ldg(reinterpret_cast<const int2*>(qtok[nt] + 16 * c + 8 * p));
#pragma unroll
      for (int rt = 0; rt < kRowTiles; ++rt) {
        const unsigned a0 = (word[rt][0] >> (4 * p)) & 0x03030303u;
        const unsigned a1 = (word[rt][1] >> (4 * p)) & 0x03030303u;
        const unsigned a2 = (word[rt][0] >> (4 * p + 2)) & 0x03030303u;
        const unsigned a3 = (word[rt][1] >> (4 * p + 2)) & 0x03030303u;
#pragma unroll
        for (int nt = 0; nt < kTokTiles; ++nt) {
          bn_mma_u8s8(acc[rt][nt], a0, a1, a2, a3, (unsigned)b[nt].x, (unsigned)b[nt].y);
        }
      }
    }
  };
  // Whole tiles (lane-major): lane slot l = tid + 4m holds chunks l, 32 + l, 64 + l, 96 + l.
#pragma unroll 1
  for (int tile = 0; tile < kTiles; ++tile) {
#pragma unroll 1
    for (int m = 0; m < 8; ++m) {
      const int l = tid + 4 * m;
      uint4 wv[kRowTiles][2];
#pragma unroll
      for (int rt = 0; rt < kRowTiles; ++rt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) wv[rt][h] = __ldg(reinterpret_cast<const uint4*>(wrow[rt][h] + tile * kTileWords) + l);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        unsigned word[kRowTiles][2];
#pragma unroll
        for (int rt = 0; rt < kRowTiles; ++rt) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            word[rt][h] = j == 0 ? wv[rt][h].x : j == 1 ? wv[rt][h].y : j == 2 ? wv[rt][h].z : wv[rt][h].w;
          }
        }
        chunk(word, tile * kTileWords + 32 * j + l);
      }
    }
  }
  // The remaining chunks, stored in order: lane tid takes tid, tid + 4, ...
#pragma unroll 1
  for (int c = tid; c < kTailWords; c += 4) {
    unsigned word[kRowTiles][2];
#pragma unroll
    for (int rt = 0; rt < kRowTiles; ++rt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) word[rt][h] = __ldg(wrow[rt][h] + kTiles * kTileWords + c);
    }
    chunk(word, kTiles * kTileWords + c);
  }

)";
  s += matmul_i2s_epilogue_text(shape);
  // Accumulator i of a tile is row gid (+ 8 for i >= 2), token 2 tid + (i & 1).
  s += R"(#pragma unroll
  for (int rt = 0; rt < kRowTiles; ++rt) {
#pragma unroll
    for (int nt = 0; nt < kTokTiles; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int row = row0 + 16 * rt + gid + (i >= 2 ? 8 : 0);
        const int tok = tok0 + 8 * nt + 2 * tid + (i & 1);
)";
  if (!gated) {
    s += R"(        if (row < kM && tok < n_tokens) bn_out(acc[rt][nt][i], row, tok);
)";
  } else {
    // Gate row 2r is held by a lane with even gid, its up row 2r + 1 by the lane 4 above.
    s += R"(        const int up = __shfl_xor_sync(0xffffffffu, acc[rt][nt][i], 4);
        if ((gid & 1) == 0 && row < kM && tok < n_tokens) bn_out_pair(acc[rt][nt][i], up, row, tok);
)";
  }
  s += R"(      }
    }
  }
}
)";
  kern.source = std::move(s);
  return kern;
}

}  // namespace bitnet::codegen_cuda
