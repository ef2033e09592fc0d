// Register decoders for the ggml block formats (Q8_0, Q4_0, Q6_K, TQ1_0, TQ2_0): one block
// of a weight row becomes float vectors in element order, with the same per-weight float
// arithmetic as reference/quant.cpp (so a decoded weight is bit-identical to the
// reference's dequantized one; only the summation order of the product differs).
#include "codegen_cpu/emit_matmul.h"

namespace bitnet::codegen {
namespace {

llvm::Value* load_bytes(KernelBuilder& kb, llvm::Value* block, int64_t offset, unsigned n) {
  return kb.b.CreateAlignedLoad(kb.vec(kb.i8(), n), kb.byte_offset(block, kb.c64(offset)), llvm::Align(1));
}

// The f16 at `offset` as a float scalar.
llvm::Value* load_half(KernelBuilder& kb, llvm::Value* block, int64_t offset) {
  llvm::Value* bits =
      kb.b.CreateAlignedLoad(kb.vec(kb.i16(), 1), kb.byte_offset(block, kb.c64(offset)), llvm::Align(1));
  return kb.b.CreateExtractElement(half_to_float(kb, bits), kb.c64(0));
}

llvm::Value* splat8(KernelBuilder& kb, llvm::Value* like, int v) {
  const unsigned n = llvm::cast<llvm::FixedVectorType>(like->getType())->getNumElements();
  return kb.splat(n, kb.b.getInt8(static_cast<uint8_t>(v)));
}

// Signed int8 lanes times a float scale (a scalar, or a vector of per-lane scales).
llvm::Value* scaled(KernelBuilder& kb, llvm::Value* q, llvm::Value* scale) {
  const unsigned n = llvm::cast<llvm::FixedVectorType>(q->getType())->getNumElements();
  llvm::Value* f = kb.b.CreateSIToFP(q, kb.vec(kb.f32(), n));
  if (!scale->getType()->isVectorTy()) scale = kb.b.CreateVectorSplat(n, scale);
  return kb.b.CreateFMul(f, scale);
}

llvm::Value* block_at(KernelBuilder& kb, llvm::Value* row, llvm::Value* index, int64_t bytes) {
  return kb.byte_offset(row, kb.b.CreateMul(index, kb.c64(bytes)));
}

// Q8_0: f16 d, 32 x int8; w = q * d.
std::vector<llvm::Value*> decode_q8_0(KernelBuilder& kb, llvm::Value* row, llvm::Value* index, unsigned width) {
  llvm::Value* block = block_at(kb, row, index, 34);
  llvm::Value* d = load_half(kb, block, 0);
  return regroup(kb, {scaled(kb, load_bytes(kb, block, 2, 32), d)}, width);
}

// Q4_0: f16 d, 16 bytes; byte j holds weight j (low nibble) and j + 16 (high), offset by 8.
std::vector<llvm::Value*> decode_q4_0(KernelBuilder& kb, llvm::Value* row, llvm::Value* index, unsigned width) {
  auto& b = kb.b;
  llvm::Value* block = block_at(kb, row, index, 18);
  llvm::Value* d = load_half(kb, block, 0);
  llvm::Value* qs = load_bytes(kb, block, 2, 16);
  llvm::Value* low = b.CreateSub(b.CreateAnd(qs, splat8(kb, qs, 0x0F)), splat8(kb, qs, 8));
  llvm::Value* high = b.CreateSub(b.CreateLShr(qs, splat8(kb, qs, 4)), splat8(kb, qs, 8));
  return regroup(kb, {scaled(kb, low, d), scaled(kb, high, d)}, width);
}

// Q6_K: ql[128] low nibbles, qh[64] high 2-bit pairs, int8 scales[16], f16 d. In each half
// of 128 weights, quarter k (32 weights) reads the low (k < 2) or high nibble of
// ql[32 * (k & 1) + l], bits 2k of qh[l], and the scales 2k (l < 16) and 2k + 1.
std::vector<llvm::Value*> decode_q6_k(KernelBuilder& kb, llvm::Value* row, llvm::Value* index, unsigned width) {
  auto& b = kb.b;
  llvm::Value* block = block_at(kb, row, index, 210);
  llvm::Value* d = load_half(kb, block, 208);
  std::vector<llvm::Value*> pieces;
  for (int half = 0; half < 2; ++half) {
    llvm::Value* qh = load_bytes(kb, block, 128 + 32 * half, 32);
    for (int k = 0; k < 4; ++k) {
      llvm::Value* ql = load_bytes(kb, block, 64 * half + 32 * (k & 1), 32);
      llvm::Value* nibble = k < 2 ? b.CreateAnd(ql, splat8(kb, ql, 0x0F)) : b.CreateLShr(ql, splat8(kb, ql, 4));
      llvm::Value* high =
          b.CreateShl(b.CreateAnd(b.CreateLShr(qh, splat8(kb, qh, 2 * k)), splat8(kb, qh, 3)), splat8(kb, qh, 4));
      llvm::Value* q = b.CreateSub(b.CreateOr(nibble, high), splat8(kb, ql, 32));
      // (d * scale) first, then * q, each rounded: the reference's order.
      std::vector<llvm::Value*> scales;
      for (int s = 0; s < 2; ++s) {
        llvm::Value* sc = b.CreateLoad(kb.i8(), kb.byte_offset(block, kb.c64(192 + 8 * half + 2 * k + s)));
        scales.push_back(b.CreateFMul(d, b.CreateSIToFP(sc, kb.f32())));
      }
      std::vector<int> mask;
      for (int l = 0; l < 32; ++l) mask.push_back(l < 16 ? 0 : 16);
      llvm::Value* per_lane =
          b.CreateShuffleVector(b.CreateVectorSplat(16, scales[0]), b.CreateVectorSplat(16, scales[1]), mask);
      pieces.push_back(scaled(kb, q, per_lane));
    }
  }
  return regroup(kb, pieces, width);
}

// TQ1_0 trit n of each byte: the byte is a base-3 fraction of 256 (5 trits); multiplying by
// 3^n (mod 256) brings trit n to the top and (q * 3) >> 8 reads it.
llvm::Value* tq1_trits(KernelBuilder& kb, llvm::Value* bytes, int n, llvm::Value* d) {
  auto& b = kb.b;
  static constexpr int kPow3[6] = {1, 3, 9, 27, 81, 243};
  const unsigned lanes = llvm::cast<llvm::FixedVectorType>(bytes->getType())->getNumElements();
  llvm::Value* q = b.CreateMul(bytes, splat8(kb, bytes, kPow3[n]));
  llvm::Value* wide = b.CreateZExt(q, kb.vec(kb.i16(), lanes));
  llvm::Value* trit = b.CreateLShr(b.CreateMul(wide, kb.splat(lanes, b.getInt16(3))), kb.splat(lanes, b.getInt16(8)));
  llvm::Value* w = b.CreateSub(b.CreateTrunc(trit, kb.vec(kb.i8(), lanes)), splat8(kb, bytes, 1));
  return scaled(kb, w, d);
}

// TQ1_0: qs[48] (5 trits per byte), qh[4] (4 trits per byte), f16 d; w = (t - 1) * d.
// qs[0..32) digit n -> weights 32n + m; qs[32..48) -> 160 + 16n + m; qh -> 240 + 4n + m.
std::vector<llvm::Value*> decode_tq1_0(KernelBuilder& kb, llvm::Value* row, llvm::Value* index, unsigned width) {
  llvm::Value* block = block_at(kb, row, index, 54);
  llvm::Value* d = load_half(kb, block, 52);
  std::vector<llvm::Value*> pieces;
  llvm::Value* a = load_bytes(kb, block, 0, 32);
  for (int n = 0; n < 5; ++n) pieces.push_back(tq1_trits(kb, a, n, d));
  llvm::Value* c = load_bytes(kb, block, 32, 16);
  for (int n = 0; n < 5; ++n) pieces.push_back(tq1_trits(kb, c, n, d));
  llvm::Value* h = load_bytes(kb, block, 48, 4);
  for (int n = 0; n < 4; ++n) pieces.push_back(tq1_trits(kb, h, n, d));
  return regroup(kb, pieces, width);
}

// TQ2_0: qs[64] of 2-bit codes (t + 1) and f16 d; bits 2l of byte m of each 32-byte group
// are weight 32l + m of that group's 128.
std::vector<llvm::Value*> decode_tq2_0(KernelBuilder& kb, llvm::Value* row, llvm::Value* index, unsigned width) {
  auto& b = kb.b;
  llvm::Value* block = block_at(kb, row, index, 66);
  llvm::Value* d = load_half(kb, block, 64);
  std::vector<llvm::Value*> pieces;
  for (int group = 0; group < 64; group += 32) {
    llvm::Value* qs = load_bytes(kb, block, group, 32);
    for (int l = 0; l < 4; ++l) {
      llvm::Value* t = b.CreateAnd(b.CreateLShr(qs, splat8(kb, qs, 2 * l)), splat8(kb, qs, 3));
      pieces.push_back(scaled(kb, b.CreateSub(t, splat8(kb, qs, 1)), d));
    }
  }
  return regroup(kb, pieces, width);
}

}  // namespace

bool quantized_block_decoder(ir::DType type, BlockDecoder& out, std::string* error) {
  switch (type) {
    case ir::DType::Q8_0:
      out = {32, 34, decode_q8_0};
      return true;
    case ir::DType::Q4_0:
      out = {32, 18, decode_q4_0};
      return true;
    case ir::DType::Q6_K:
      out = {256, 210, decode_q6_k};
      return true;
    case ir::DType::TQ1_0:
      out = {256, 54, decode_tq1_0};
      return true;
    case ir::DType::TQ2_0:
      out = {256, 66, decode_tq2_0};
      return true;
    default:
      break;
  }
  if (error) *error = std::string("no matmul kernel for weights of type ") + std::string(ir::dtype_name(type));
  return false;
}

}  // namespace bitnet::codegen
