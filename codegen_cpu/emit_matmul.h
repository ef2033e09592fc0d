// Internal interface of the matmul-family emitters: the op-level driver (emit_matmul.cpp)
// hands one "product" (one or two weight matrices of one type times the activations, over
// a range of weight rows) to the generator for the weight type, which calls back with the
// finished values of a few rows for one token so the driver can apply its epilogue.
#pragma once

#include "codegen_cpu/kernel_builder.h"
#include "codegen_cpu/matmul_tuning.h"

#include <functional>
#include <vector>

namespace bitnet::codegen {

// Stores the results of weight rows [row, row + n) for token `t`: `y[i]` is a <n x float>
// vector with the product of weight matrix i (the driver knows n from the vector type).
using ProductStore = std::function<void(llvm::Value* t, llvm::Value* row, const std::vector<llvm::Value*>& y)>;

struct ProductArgs {
  ir::DType act = ir::DType::F32;     // F32 or I8Q
  ir::DType weight = ir::DType::F32;  // the weights' dtype (all weights of one product share it)
  llvm::Value* x = nullptr;           // activation buffer (see schema/abi.h for the i8q layout)
  std::vector<llvm::Value*> weights;  // 1 (matmul) or 2 (gate and up) weight matrices [rows, cols]
  int64_t rows = 0;                   // M
  int64_t cols = 0;                   // K
  llvm::Value* row_begin = nullptr;   // i64, local rows [row_begin, row_end) of each weight
  llvm::Value* row_end = nullptr;
  llvm::Value* n_tokens = nullptr;  // i64
  ProductStore store;
  // Optional: the stores of one tile's tokens at once (one weight per vector, no second
  // stream), rows [row, row + n) of token tokens[k] in lanes [k * n, (k + 1) * n) of ys[i],
  // so that the epilogue runs on wider vectors (the silu FFN's; see emit_matmul.cpp).
  std::function<void(const std::vector<llvm::Value*>& tokens, llvm::Value* row, const std::vector<llvm::Value*>& ys)>
      store_tokens;

  // Stores one token's results of a tile: ys has one vector per weight (from rows r0), or with
  // two streams (r1 set: one weight) ys[0] for the rows at r0 and ys[1] for those at r1.
  void store_tile(llvm::Value* token, llvm::Value* r0, llvm::Value* r1, const std::vector<llvm::Value*>& ys) const {
    if (r1 == nullptr) return store(token, r0, ys);
    store(token, r0, {ys[0]});
    store(token, r1, {ys[1]});
  }
};

// The loop nest shared by the generators: weight rows [row_begin, row_end) in tiles of
// `rows` rows (per weight matrix) and the tokens in tiles of `tokens`. Calls micro(rows,
// tokens, gemm, row, token) for each tile; rows and tokens are compile-time tile sizes
// (remainders get tiles of 1), gemm tells the prefill path (n_tokens >= gemm_tokens, rows
// outermost so a tile of weights is reused by every token) from the decode path.
using MicroKernel =
    std::function<void(int rows, int tokens, bool gemm, llvm::Value* row, llvm::Value* token, llvm::Value* row2)>;
using RowPrologue = std::function<void(int rows, llvm::Value* row)>;
// `groups` consecutive decode tiles from `row` (and from `row2`) with one shared epilogue.
using BatchKernel = std::function<void(int groups, llvm::Value* row, llvm::Value* token, llvm::Value* row2)>;
struct TileOptions {
  // In the prefill path, prologue(rows, row) (if set) runs once per row tile before its tokens.
  RowPrologue prologue;
  // In the prefill path, if set: the whole of each row tile (its own prologues and token loops)
  // instead of the prologue and the token tiles above.
  RowPrologue gemm_tile;
  // 2: the decode path of a single-weight product reads two distant row ranges at once (the
  // first and second half of the range; more memory streams in flight): micro then gets
  // `row2`, the first of `rows` more rows of the same weight, and stores both.
  int gemv_streams = 1;
  // An i1 (or nullptr: never): the decode path visits its row tiles in descending order.
  llvm::Value* reverse = nullptr;
  // Decode: batch(batch_groups, ...) covers batch_groups whole tiles at a time where it can
  // (the rest of the range goes tile by tile through micro).
  BatchKernel batch;
  int batch_groups = 0;
  // An i1 (or nullptr: never): take the decode path whatever the token count (each token's
  // rows then get the one-token arithmetic: KernelArgs::decode_rows).
  llvm::Value* force_decode = nullptr;
  // Decode: tokens per micro call (the micro kernel's arithmetic per token must not depend on
  // it: rows of one-token sequences are then bit-identical to calls of one token).
  int decode_tokens = 1;
  // Rows per decode tile when force_decode holds for more than one token (0: gemv_rows).
  int decode_rows_tile = 0;
  // Decode (forwards): called once before the tiles with the first row of each memory stream
  // (the generator prefetches their first bytes: the in-loop prefetches only reach ahead).
  std::function<void(const std::vector<llvm::Value*>& stream_rows)> decode_start;
};
void emit_tiles(KernelBuilder& kb, const ProductArgs& p, int gemv_rows, int gemm_rows, int gemm_tokens,
                const MicroKernel& micro, const TileOptions& options = {});

// I2_S weights times i8q activations, bit-exact with ref::matmul_i8q_rows (emit_matmul_i2s.cpp).
bool emit_product_i2s(KernelBuilder& kb, const ProductArgs& p, std::string* error);
// TQ1_0 / TQ2_0 weights times i8q activations, bit-exact with ref::matmul_i8q_rows_tq
// (emit_matmul_tq.cpp).
bool emit_product_tq(KernelBuilder& kb, const ProductArgs& p, std::string* error);
// F32 / F16 / BF16 and the block formats times f32 activations (emit_matmul_float.cpp).
bool emit_product_float(KernelBuilder& kb, const ProductArgs& p, std::string* error);

// A weight format decoded one block at a time into float registers (emit_matmul_blocks.cpp
// for the block-quantized formats, emit_matmul_float.cpp for F32/F16/BF16).
struct BlockDecoder {
  int64_t block_elems = 0;  // weights per block (a multiple of the vector width)
  int64_t block_bytes = 0;
  // Block `index` of the row starting at `row`, as block_elems / width vectors <width x float>
  // in element order.
  std::function<std::vector<llvm::Value*>(KernelBuilder& kb, llvm::Value* row, llvm::Value* index, unsigned width)>
      decode;
};
bool quantized_block_decoder(ir::DType type, BlockDecoder& out, std::string* error);

// ---- small helpers shared by the generators (emit_matmul_float.cpp) ----
// IEEE half bits (<n x i16>) to <n x float>: vcvtph2ps where the target has F16C, exact
// integer arithmetic elsewhere (so kernels never call a runtime conversion routine).
llvm::Value* half_to_float(KernelBuilder& kb, llvm::Value* bits);
// x rounded to the nearest IEEE half (ties to even) and back, as <n x float>.
llvm::Value* round_to_half(KernelBuilder& kb, llvm::Value* x);
// Splits or joins vectors (in element order) into vectors of `width` elements; the total
// element count must be a multiple of width.
std::vector<llvm::Value*> regroup(KernelBuilder& kb, const std::vector<llvm::Value*>& pieces, unsigned width);
// Software prefetch of the cache line at `address` (read, into all cache levels).
void prefetch(KernelBuilder& kb, llvm::Value* address);
// A <n x T> vector from n scalars.
llvm::Value* gather_scalars(KernelBuilder& kb, const std::vector<llvm::Value*>& scalars);

}  // namespace bitnet::codegen
