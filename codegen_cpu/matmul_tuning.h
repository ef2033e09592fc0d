// The tile sizes and code-shape choices of the matmul-family kernels, in one LLVM-free
// struct so that microbenchmarks can compare variants. The defaults are the measured best
// on the development machine (see bench/kernels_bench.cpp); compilers and plans use them.
#pragma once

#include <cstdint>

namespace bitnet::codegen {

struct MatmulTuning {
  // ---- I2_S x i8q ----
  int i2s_gemv_rows = 4;    // weight rows per micro-kernel when n_tokens < i2s_gemm_tokens
  int i2s_gemm_rows = 8;    // weight rows per micro-kernel in the token-tiled (prefill) path
  int i2s_gemm_tokens = 4;  // tokens per micro-kernel in the prefill path (>= 2)
  // How many accumulators a (row, token) pair gets in the VNNI path: 4 = the four 2-bit
  // fields are masked in place (codes * 1, 4, 16, 64) and summed into separate registers
  // (one AND per field, no shifts); 1 = fields shifted down first (3 shifts + 4 ANDs per
  // weight vector, one accumulator). The prefill path always uses 1.
  int i2s_gemv_split = 4;
  int i2s_gemm_accs = 1;  // accumulators per (row, token) in the prefill path (1 or 2)
  // The prefill path's code buffer (a row tile's extracted fields: 1 KiB per block of 128
  // weights for 8 rows) at most this big: longer rows are done in K chunks, each chunk's fields
  // extracted once and dotted with every token tile (the int32 sums wait in a stack buffer
  // between chunks; integer sums, so exact). Keeps the buffer and a token tile's activations in
  // L1: at K = 6912 (the FFN down projection) the whole-row buffer is 54 KiB and prefill ran
  // 25 % slower per weight than at K = 2560. 0: never chunk. Not the AVX2 path (4-row tiles).
  int i2s_gemm_chunk_bytes = 20480;
  // The prefill path with at most this many tokens (a batch of decode tokens, one per
  // sequence) skips the code buffer (VNNI only): tiles of 4 rows x 8 tokens (then one of 4,
  // then single tokens) extract their fields in registers, 8 ALU operations per 32 vpdpbusd,
  // where writing the buffer and reading it back cost as much again over so few tokens. 0: never.
  int i2s_direct_max_tokens = 16;
  int i2s_direct_rows = 4;    // the few-token tile: rows (over all weights of the product)
  int i2s_direct_tokens = 8;  // and tokens
  // The prefill tile of the AVX2 (256-bit vpmaddubsw) path, which has 16 vector registers:
  // rows x tokens int16 accumulators plus one activation vector per token and two temporaries
  // must fit (the fields above are for the AVX-512 paths). 4 x 2 measured best on Zen 5 with
  // --target x86-64-v3 (2560x2560, the QKV cat and the gated FFN at T=128).
  int i2s_gemm_rows_avx2 = 4;
  int i2s_gemm_tokens_avx2 = 2;
  // Software prefetch distance along each weight row (0: off). Measured on the 2B4T shape with
  // the weights on 2 MiB pages: 4 KiB beats 8 KiB by ~2 % at 1 and 2 threads.
  int i2s_prefetch_bytes = 4096;
  // Decode: bytes prefetched from the start of each memory stream before the first tile (0: off).
  int i2s_start_prefetch_bytes = 8192;
  // Decode: 2 = each tile takes half its rows from the first and half from the second half of
  // the thread's range (two distant memory streams instead of one), 1 = consecutive rows.
  int i2s_gemv_streams = 2;
  // Decode: the epilogue (row sums, (D - S) / s * scale, activation, store) of 8 tiles of 2
  // rows runs once on 16 rows (512-bit vectors only); false: per tile.
  bool i2s_gemv_batch = true;
  // Widest vector the I2_S code may use: 512 or 256 bits (512 needs AVX-512BW).
  int i2s_max_vector_bits = 512;
  bool i2s_allow_vnni = true;  // false: the vpmaddubsw path even where VNNI exists (also for TQ1_0/TQ2_0)

  // ---- float and block-quantized weights x f32 ----
  int float_gemv_rows = 4;  // rows per micro-kernel when n_tokens < float_gemm_tokens
  // Independent accumulators per (row, token) of one-token rows. It is also the arithmetic every
  // decode row keeps when several are batched, so it sets how many tokens a register tile of the
  // batched loop nest (below) can hold: with 1, a 512-bit tile holds 3 rows x 8 tokens and
  // converts each F16 block once for 8 tokens (2 accumulators: 3 x 4). The one-token GEMV streams
  // from memory either way (2B4T head: 22.0-22.2 ms with 1 or 2 on Zen 5, one run).
  int float_gemv_accs = 1;
  int float_gemm_rows = 4;
  int float_gemm_tokens = 4;
  int float_decode_tokens = 2;     // tokens per decode-path micro-kernel (several decode rows)
  int float_decode_rows_tile = 0;  // weight rows per micro-kernel for several decode rows (0: float_gemv_rows)
  // Several decode rows (KernelArgs::decode_rows) of a weight whose blocks are one or two
  // vectors (F32/F16/BF16, Q8_0 and the like) take their own loop nest: tiles of
  // float_rows_tile weight rows, groups of float_rows_group tokens, K in chunks whose
  // activations for one group (group x chunk x 4 bytes) fit in float_rows_chunk_bytes, and
  // register tiles of float_rows_reg_rows rows x the group's tokens, so that each weight block
  // is decoded once per group (a vcvtph2ps costs about two FMAs' issue slots) and the
  // activations come from L1. 0: 3 rows x 8 tokens with 512-bit vectors, else 2 x 6 (16
  // registers), each (row, token) with float_gemv_accs accumulators (1: 24 and 12 of them).
  // false: the generic decode tiles (float_decode_tokens tokens per tile, K in one pass).
  // Rows shorter than float_rows_min_k keep the generic tiles: their activations fit in L1
  // anyway, and the nest's per-(row, token) epilogue (accumulators through the stack) costs more
  // than it saves (Zen 5, F16 32000 x K at 8 rows: 0.5x at K = 384, a tie at 1536, 1.4x at 2048).
  int64_t float_rows_min_k = 2048;
  bool float_rows_chunked = true;
  int float_rows_tile = 12;
  int float_rows_reg_rows = 0;
  int float_rows_group = 0;
  int float_rows_chunk_bytes = 8192;
  int float_prefetch_bytes = 8192;  // the F16 LM head: 8 KiB beats 4 KiB by ~5 % (2B4T, huge pages)
  int float_gemv_streams = 2;       // as i2s_gemv_streams
  int float_max_vector_bits = 512;
  // Decode walks the rows of a float weight of at most this many bytes forwards and backwards
  // on alternate positions (see emit_matmul_float.cpp; 0: always forwards).
  int64_t float_zigzag_max_bytes = int64_t{64} << 20;

  // Only the portable code (no x86 intrinsics, 128-bit float vectors, integer f16 decoding):
  // what a CPU without AVX2/F16C gets. Lets tests check the fallback on any machine.
  bool portable_only = false;
};

// The tuning the emitters read. Change it only before compiling (kernels are cached by
// their description, which does not include the tuning): benchmarks use a fresh Jit per
// variant.
MatmulTuning& matmul_tuning();

}  // namespace bitnet::codegen
