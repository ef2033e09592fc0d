// Rotary position embedding: the rope kernel (token rows [begin, end), every head of row t
// rotated at position pos + t, NEOX or GPT-J pairs) and the rotation helpers rope_attention
// shares, with the reference's angles and roundings.
//
// The reference takes cos and sin from glibc's cosf / sinf, which are not correctly rounded:
// about 1 % of their results are the other float next to the exact value (the neighbour on
// the exact value's side, never further). A kernel cannot call libm, so it computes the
// correctly rounded values (sin_cos) and moves those to the neighbour where glibc does,
// following a bit table computed here with the host's libm for positions below
// kRopeExactPositions (64 KiB at head_dim 128; beyond it values are within 1 ulp). A 1-ulp
// difference would be harmless by itself but can flip an F16 rounding of q or k and so move
// attention scores by ~1e-4 relative.
#include "codegen_cpu/emit_rope.h"
#include "codegen_cpu/emitters.h"

#include <bit>
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>

namespace bitnet::codegen {
namespace {

struct FixBits {
  int64_t half_bytes = 0;     // bytes of one position's cos (or sin) bits
  std::vector<uint8_t> bits;  // per position: head_dim/2 cos bits, then head_dim/2 sin bits
};

// Bit i set where glibc's result for pair i is not the correctly rounded one (std::cos on the
// double argument is; its rounding to float is the correctly rounded float). Cached per
// rope configuration: a model's kernels all share one.
const FixBits& fix_bits(const RopeParams& p) {
  static std::mutex mutex;
  static std::map<std::tuple<int64_t, uint32_t, uint32_t>, FixBits> cache;
  const auto key =
      std::make_tuple(p.head_dim, std::bit_cast<uint32_t>(p.theta_scale), std::bit_cast<uint32_t>(p.freq_scale));
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  FixBits f;
  const int64_t half = p.head_dim / 2;
  f.half_bytes = (half + 7) / 8;
  const int64_t row = 2 * f.half_bytes;
  f.bits.assign(static_cast<size_t>(kRopeExactPositions * row), 0);
  for (int64_t pos = 0; pos < kRopeExactPositions; ++pos) {
    float theta = static_cast<float>(pos);
    uint8_t* r = f.bits.data() + pos * row;
    for (int64_t i = 0; i < half; ++i) {
      const float angle = p.freq_scale * theta;
      if (std::cos(angle) != static_cast<float>(std::cos(static_cast<double>(angle))))
        r[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
      if (std::sin(angle) != static_cast<float>(std::sin(static_cast<double>(angle)))) {
        r[f.half_bytes + i / 8] |= static_cast<uint8_t>(1u << (i % 8));
      }
      theta = theta * p.theta_scale;
    }
  }
  return cache.emplace(key, std::move(f)).first->second;
}

// y (double, accurate) rounded to float, moved one ulp toward y in the lanes of `fix`.
llvm::Value* round_like_glibc(KernelBuilder& kb, llvm::Value* y, llvm::Value* fix) {
  auto& b = kb.b;
  const auto n = llvm::cast<llvm::FixedVectorType>(y->getType())->getNumElements();
  llvm::Value* c = b.CreateFPTrunc(y, kb.vec(kb.f32(), n));
  llvm::Value* toward_larger = b.CreateFCmpOGT(y, b.CreateFPExt(c, y->getType()));
  llvm::Value* negative = b.CreateFCmpOLT(c, kb.splat(n, kb.cf32(0.0f)));
  // For a positive float the next larger one has bits + 1, for a negative one bits - 1.
  llvm::Value* step =
      b.CreateSelect(b.CreateXor(toward_larger, negative), kb.splat(n, kb.c32(1)), kb.splat(n, kb.c32(-1)));
  llvm::Value* moved = b.CreateBitCast(b.CreateAdd(b.CreateBitCast(c, kb.vec(kb.i32(), n)), step), c->getType());
  return b.CreateSelect(fix, moved, c);
}

}  // namespace

RopeParams rope_params(const KernelDesc& desc) {
  RopeParams p;
  p.head_dim = desc.attr_int("head_dim");
  const auto base = static_cast<float>(desc.attr_float("freq_base"));
  // powf with a float exponent, exactly as the reference computes theta_scale.
  p.theta_scale = std::pow(base, -2.0f / static_cast<float>(p.head_dim));
  p.freq_scale = static_cast<float>(desc.attr_float("freq_scale"));
  p.neox = desc.attr_string("style") == "neox";
  return p;
}

RopeTable rope_table(KernelBuilder& kb, const RopeParams& p, llvm::Value* position) {
  auto& b = kb.b;
  const auto half = static_cast<unsigned>(p.head_dim / 2);
  llvm::Value* theta = b.CreateSIToFP(position, kb.f32());
  llvm::Value* angles = llvm::PoisonValue::get(kb.vec(kb.f32(), half));
  for (unsigned i = 0; i < half; ++i) {
    angles = b.CreateInsertElement(angles, b.CreateFMul(kb.cf32(p.freq_scale), theta), static_cast<uint64_t>(i));
    theta = b.CreateFMul(theta, kb.cf32(p.theta_scale));
  }
  llvm::Value* sin_d;
  llvm::Value* cos_d;
  sin_cos(kb, angles, &sin_d, &cos_d);

  // This position's row of the fix table (a constant of the kernel); none past its end.
  const FixBits& fix = fix_bits(p);
  llvm::GlobalVariable* table = kb.module.getNamedGlobal("rope_fix");  // one per kernel module
  if (table == nullptr) {
    auto* data = llvm::ConstantDataArray::get(kb.ctx, llvm::ArrayRef<uint8_t>(fix.bits));
    table =
        new llvm::GlobalVariable(kb.module, data->getType(), true, llvm::GlobalValue::PrivateLinkage, data, "rope_fix");
    table->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
  }
  llvm::Value* in_table = b.CreateICmpULT(position, kb.c64(kRopeExactPositions));
  llvm::Value* row =
      kb.byte_offset(table, b.CreateMul(b.CreateSelect(in_table, position, kb.c64(0)), kb.c64(2 * fix.half_bytes)));
  auto lanes = [&](int64_t offset) {
    const auto bits = static_cast<unsigned>(8 * fix.half_bytes);
    llvm::Value* word =
        b.CreateAlignedLoad(b.getIntNTy(bits), kb.byte_offset(row, kb.c64(offset)), llvm::MaybeAlign(1));
    llvm::Value* mask = slice(kb, b.CreateBitCast(word, kb.vec(b.getInt1Ty(), bits)), 0, half);
    if (half == 1) mask = b.CreateVectorSplat(1, mask);
    return b.CreateAnd(mask, b.CreateVectorSplat(half, in_table));
  };
  RopeTable t;
  t.cos = round_like_glibc(kb, cos_d, lanes(0));
  t.sin = round_like_glibc(kb, sin_d, lanes(fix.half_bytes));
  return t;
}

llvm::Value* rope_head(KernelBuilder& kb, const RopeParams& p, const RopeTable& t, llvm::Value* head) {
  auto& b = kb.b;
  const auto dim = static_cast<unsigned>(p.head_dim);
  const unsigned half = dim / 2;
  llvm::Value* x0;
  llvm::Value* x1;
  if (p.neox) {  // pairs (i, i + dim/2)
    x0 = load_vec(kb, kb.f32(), half, head, kb.c64(0), 4);
    x1 = load_vec(kb, kb.f32(), half, head, kb.c64(half), 4);
  } else {  // GPT-J pairs (2i, 2i + 1)
    llvm::Value* x = load_vec(kb, kb.f32(), dim, head, kb.c64(0), 4);
    llvm::SmallVector<int, 128> even, odd;
    for (unsigned i = 0; i < half; ++i) {
      even.push_back(static_cast<int>(2 * i));
      odd.push_back(static_cast<int>(2 * i + 1));
    }
    x0 = b.CreateShuffleVector(x, even);
    x1 = b.CreateShuffleVector(x, odd);
  }
  llvm::Value* y0 = kb.fma(x0, t.cos, b.CreateFNeg(b.CreateFMul(x1, t.sin)));
  llvm::Value* y1 = kb.fma(x0, t.sin, b.CreateFMul(x1, t.cos));
  if (p.neox) return concat(kb, y0, y1);
  llvm::SmallVector<int, 256> interleave;
  for (unsigned i = 0; i < half; ++i) {
    interleave.push_back(static_cast<int>(i));
    interleave.push_back(static_cast<int>(half + i));
  }
  return b.CreateShuffleVector(y0, y1, interleave);
}

bool emit_rope(KernelBuilder& kb, std::string* error) {
  auto& b = kb.b;
  const KernelDesc& d = kb.desc;
  const RopeParams p = rope_params(d);
  const int64_t heads = d.attr_int("n_head");
  const int64_t width = d.operands[0].shape[1].size;
  if (p.head_dim <= 0 || p.head_dim % 2 != 0 || heads * p.head_dim != width) {
    if (error) *error = "rope: heads do not tile the row";
    return false;
  }
  llvm::Value* x = kb.in(0);
  llvm::Value* out = kb.out();
  llvm::Value* pos = kb.pos();
  kb.loop(kb.begin(), kb.end(), 1, [&](llvm::Value* t) {
    const RopeTable table = rope_table(kb, p, b.CreateAdd(pos, t));
    llvm::Value* row = b.CreateMul(t, kb.c64(width));
    kb.loop(kb.c64(0), kb.c64(heads), 1, [&](llvm::Value* h) {
      llvm::Value* at = b.CreateAdd(row, b.CreateMul(h, kb.c64(p.head_dim)));
      llvm::Value* y = rope_head(kb, p, table, kb.element_ptr(kb.f32(), x, at));
      b.CreateAlignedStore(y, kb.element_ptr(kb.f32(), out, at), llvm::MaybeAlign(4));
    });
  });
  return true;
}

}  // namespace bitnet::codegen
