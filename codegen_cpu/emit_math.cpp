// The exact numeric building blocks of emit_math.h, written as LLVM IR.
#include "codegen_cpu/emit_math.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace bitnet::codegen {
namespace {

unsigned lanes(llvm::Value* v) {
  auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(v->getType());
  return vt ? vt->getNumElements() : 1;
}

// A constant of the shape of `like` (scalar or vector) with element type `elem`.
llvm::Constant* constant_like(llvm::Value* like, llvm::Type* elem, double value) {
  llvm::Constant* c = elem->isIntegerTy()
                          ? llvm::ConstantInt::get(elem, static_cast<uint64_t>(static_cast<int64_t>(value)))
                          : llvm::ConstantFP::get(elem, value);
  const bool vector = like->getType()->isVectorTy();  // <1 x float> stays a vector
  return vector ? llvm::ConstantVector::getSplat(llvm::ElementCount::getFixed(lanes(like)), c) : c;
}

llvm::Type* type_like(KernelBuilder& kb, llvm::Value* like, llvm::Type* elem) {
  return like->getType()->isVectorTy() ? static_cast<llvm::Type*>(kb.vec(elem, lanes(like))) : elem;
}

}  // namespace

llvm::Value* slice(KernelBuilder& kb, llvm::Value* v, unsigned start, unsigned n) {
  if (n == 1) return kb.b.CreateExtractElement(v, static_cast<uint64_t>(start));
  if (start == 0 && n == lanes(v)) return v;
  llvm::SmallVector<int, 64> mask;
  for (unsigned i = 0; i < n; ++i) mask.push_back(static_cast<int>(start + i));
  return kb.b.CreateShuffleVector(v, mask);
}

llvm::Value* concat(KernelBuilder& kb, llvm::Value* a, llvm::Value* b) {
  const unsigned na = lanes(a);
  const unsigned nb = lanes(b);
  const unsigned n = std::max(na, nb);
  // shufflevector takes two operands of one type: widen the shorter one (undefined lanes).
  auto widen = [&](llvm::Value* v, unsigned from) {
    if (from == n) return v;
    llvm::SmallVector<int, 128> mask;
    for (unsigned i = 0; i < n; ++i) mask.push_back(i < from ? static_cast<int>(i) : -1);
    return kb.b.CreateShuffleVector(v, mask);
  };
  llvm::SmallVector<int, 256> mask;
  for (unsigned i = 0; i < na; ++i) mask.push_back(static_cast<int>(i));
  for (unsigned i = 0; i < nb; ++i) mask.push_back(static_cast<int>(n + i));
  return kb.b.CreateShuffleVector(widen(a, na), widen(b, nb), mask);
}

llvm::Value* load_vec(KernelBuilder& kb, llvm::Type* elem, unsigned n, llvm::Value* base, llvm::Value* index,
                      unsigned align) {
  llvm::Type* t = n > 1 ? static_cast<llvm::Type*>(kb.vec(elem, n)) : elem;
  return kb.b.CreateAlignedLoad(t, kb.element_ptr(elem, base, index), llvm::MaybeAlign(align));
}

llvm::Value* ldexp_exact(KernelBuilder& kb, llvm::Value* j, llvm::Value* k) {
  auto& b = kb.b;
  auto ci = [&](int v) { return constant_like(j, kb.i32(), v); };
  llvm::Value* bits = b.CreateBitCast(j, type_like(kb, j, kb.i32()));
  // Biased exponent of the result if it is normal; j is a positive normal float here.
  llvm::Value* exponent = b.CreateAdd(b.CreateLShr(bits, ci(23)), k);
  llvm::Value* normal = b.CreateAdd(bits, b.CreateShl(k, ci(23)));
  // Below the normal range: the 24-bit significand shifted right by 1 - exponent (at most 25:
  // everything further down rounds to 0 as well), rounded to nearest even.
  llvm::Value* shift = b.CreateSub(ci(1), exponent);
  shift = b.CreateSelect(b.CreateICmpSGT(shift, ci(25)), ci(25), shift);
  shift = b.CreateSelect(b.CreateICmpSLT(shift, ci(1)), ci(1), shift);  // (lanes that are normal)
  llvm::Value* significand = b.CreateOr(b.CreateAnd(bits, ci(0x7fffff)), ci(0x800000));
  llvm::Value* quotient = b.CreateLShr(significand, shift);
  llvm::Value* rest = b.CreateAnd(significand, b.CreateSub(b.CreateShl(ci(1), shift), ci(1)));
  llvm::Value* half = b.CreateShl(ci(1), b.CreateSub(shift, ci(1)));
  llvm::Value* odd = b.CreateICmpNE(b.CreateAnd(quotient, ci(1)), ci(0));
  llvm::Value* up = b.CreateOr(b.CreateICmpUGT(rest, half), b.CreateAnd(b.CreateICmpEQ(rest, half), odd));
  llvm::Value* subnormal = b.CreateAdd(quotient, b.CreateZExt(up, type_like(kb, j, kb.i32())));
  llvm::Value* result = b.CreateSelect(b.CreateICmpSLT(exponent, ci(1)), subnormal, normal);
  result = b.CreateSelect(b.CreateICmpSGT(exponent, ci(254)), ci(0x7f800000), result);
  // NaN in, NaN out.
  return b.CreateSelect(b.CreateFCmpUNO(j, j), j, b.CreateBitCast(result, j->getType()));
}

llvm::Value* fma_in_double(KernelBuilder& kb, llvm::Value* a, llvm::Value* b, llvm::Value* c) {
  auto& bb = kb.b;
  llvm::Type* wide = type_like(kb, a, kb.f64());
  llvm::Type* bits_type = type_like(kb, a, kb.i64());
  llvm::Value* product = bb.CreateFMul(bb.CreateFPExt(a, wide), bb.CreateFPExt(b, wide));  // exact
  llvm::Value* addend = bb.CreateFPExt(c, wide);
  // TwoSum: sum + error == addend + product exactly.
  llvm::Value* sum = bb.CreateFAdd(addend, product);
  llvm::Value* part = bb.CreateFSub(sum, addend);
  llvm::Value* error = bb.CreateFAdd(bb.CreateFSub(addend, bb.CreateFSub(sum, part)), bb.CreateFSub(product, part));
  // Round to odd: an inexact sum with an even last bit moves one ulp towards the exact value.
  llvm::Value* zero = constant_like(a, kb.f64(), 0.0);
  llvm::Value* sum_bits = bb.CreateBitCast(sum, bits_type);
  llvm::Value* even =
      bb.CreateICmpEQ(bb.CreateAnd(sum_bits, constant_like(a, kb.i64(), 1)), constant_like(a, kb.i64(), 0));
  llvm::Value* fix = bb.CreateAnd(bb.CreateFCmpONE(error, zero), even);
  llvm::Value* away = bb.CreateICmpEQ(bb.CreateFCmpOGT(sum, zero), bb.CreateFCmpOGT(error, zero));
  llvm::Value* step = bb.CreateSelect(away, constant_like(a, kb.i64(), 1), constant_like(a, kb.i64(), -1));
  sum_bits = bb.CreateSelect(fix, bb.CreateAdd(sum_bits, step), sum_bits);
  return bb.CreateFPTrunc(bb.CreateBitCast(sum_bits, wide), a->getType());
}

llvm::Value* ggml_expf(KernelBuilder& kb, llvm::Value* x) {
  auto& b = kb.b;
  auto c = [&](double v) { return constant_like(x, kb.f32(), v); };
  llvm::Type* int_type = type_like(kb, x, kb.i32());
  // n = round(x / ln 2) by the 1.5 * 2^23 shifter; b = x - n ln2 (two-part ln 2).
  llvm::Value* shifter = c(0x1.8p23);
  llvm::Value* z = kb.fma(x, c(0x1.715476p+0), shifter);
  llvm::Value* n = b.CreateFSub(z, shifter);
  llvm::Value* neg_n = b.CreateFNeg(n);
  llvm::Value* r = kb.fma(neg_n, c(0x1.7f7d1cp-20), kb.fma(neg_n, c(0x1.62e4p-1), x));
  llvm::Value* u = b.CreateFMul(r, r);
  llvm::Value* j =
      kb.fma(kb.fma(kb.fma(c(0x1.0e4020p-7), r, c(0x1.573e2ep-5)), u, kb.fma(c(0x1.555e66p-3), r, c(0x1.fffdb6p-2))), u,
             kb.fma(c(0x1.ffffecp-1), r, c(1.0)));
  // j * 2^n with one rounding (vscalefps), for n clamped to [-192, 192].
  llvm::Value* clamped =
      kb.intrinsic(llvm::Intrinsic::minnum, {x->getType()},
                   {kb.intrinsic(llvm::Intrinsic::maxnum, {x->getType()}, {n, c(-192.0)}), c(192.0)});
  llvm::Value* scaled = ldexp_exact(kb, j, b.CreateFPToSI(clamped, int_type));
  // |n| > 192 (ordered): 0 for n <= 0, +inf otherwise; -inf inputs (masked scores) give 0.
  llvm::Value* abs_n = kb.intrinsic(llvm::Intrinsic::fabs, {x->getType()}, {n});
  llvm::Value* special = b.CreateSelect(b.CreateFCmpOLE(n, c(0.0)), c(0.0), c(std::numeric_limits<double>::infinity()));
  return b.CreateSelect(b.CreateFCmpOGT(abs_n, c(192.0)), special, scaled);
}

llvm::Value* tree_sum16(KernelBuilder& kb, llvm::Value* v) {
  for (unsigned width = 8; width >= 1; width /= 2)
    v = kb.b.CreateFAdd(slice(kb, v, 0, width), slice(kb, v, width, width));
  return v;
}

// Level k + 1 from two level-k partials: every lane pair (i, i + w) of a row's partial sums (w =
// 8, 4, 2, 1 as in tree_sum16) is added; the two inputs' rows share the output. The lanes of
// one row stay adjacent (row_of records where each row went).
TreeSum16x16::Partial TreeSum16x16::combine(const Partial& a, const Partial& b) {
  const int width = 8 >> a.level;  // this level adds lane i and i + width of each row's partials
  const int group = 2 * width;     // lanes per row in the inputs
  std::vector<int> lo, hi;
  Partial out{nullptr, a.level + 1, std::vector<int>(16)};
  // Inputs hold 16 / group rows each, in groups of `group` lanes; the output keeps the groups
  // of each 128-bit lane together when groups are narrower than 4 lanes (cheap in-lane shuffles).
  int at = 0;
  const int blocks = group >= 8 ? 1 : 4;  // 512-bit granularity for the first two levels
  const int per_block = 16 / blocks;
  for (int blk = 0; blk < blocks; ++blk) {
    for (int src = 0; src < 2; ++src) {
      for (int start = blk * per_block; start < (blk + 1) * per_block; start += group) {
        for (int i = 0; i < width; ++i) {
          lo.push_back(src * 16 + start + i);
          hi.push_back(src * 16 + start + width + i);
          out.row_of[static_cast<size_t>(at++)] = (src ? b : a).row_of[static_cast<size_t>(start)];
        }
      }
    }
  }
  auto& bb = kb_.b;
  llvm::Value* x = bb.CreateShuffleVector(a.v, b.v, lo);
  llvm::Value* y = bb.CreateShuffleVector(a.v, b.v, hi);
  out.v = x->getType()->isFPOrFPVectorTy() ? bb.CreateFAdd(x, y) : bb.CreateAdd(x, y);
  return out;
}

void TreeSum16x16::push_level(llvm::Value* v, int level) {
  Partial p{v, level, std::vector<int>(16)};
  for (int lane = 0; lane < 16; ++lane) p.row_of[static_cast<size_t>(lane)] = pushed_ + (lane >> (4 - level));
  pushed_ += 1 << level;
  while (!stack_.empty() && stack_.back().level == p.level) {
    p = combine(stack_.back(), p);
    stack_.pop_back();
  }
  stack_.push_back(p);
}

llvm::Value* TreeSum16x16::finish() {
  // One level-4 partial: every lane a whole row's sum; put row c at lane c.
  const Partial& p = stack_.back();
  std::vector<int> mask(16);
  for (int lane = 0; lane < 16; ++lane) mask[static_cast<size_t>(p.row_of[static_cast<size_t>(lane)])] = lane;
  return kb_.b.CreateShuffleVector(p.v, mask);
}

llvm::Value* round_to_f16(KernelBuilder& kb, llvm::Value* x) {
  return kb.b.CreateFPExt(kb.b.CreateFPTrunc(x, type_like(kb, x, kb.f16())), x->getType());
}

llvm::Value* dot_lanes(KernelBuilder& kb, llvm::Value* k, llvm::Value* q, int64_t n) {
  auto& b = kb.b;
  llvm::Value* acc[4];
  for (auto& a : acc) a = kb.splat(16, kb.cf32(0.0f));
  for (unsigned i = 0; i + 64 <= static_cast<unsigned>(n); i += 64) {
    for (unsigned r = 0; r < 4; ++r)
      acc[r] = kb.fma(slice(kb, k, i + 16 * r, 16), slice(kb, q, i + 16 * r, 16), acc[r]);
  }
  acc[0] = b.CreateFAdd(acc[0], acc[2]);
  acc[1] = b.CreateFAdd(acc[1], acc[3]);
  return b.CreateFAdd(acc[0], acc[1]);
}

llvm::Value* dot_exact(KernelBuilder& kb, llvm::Value* k, llvm::Value* q, int64_t n) {
  auto& b = kb.b;
  const auto vector_end = static_cast<unsigned>(n - n % 64);
  llvm::Value* sum = llvm::ConstantFP::get(kb.f64(), 0.0);
  if (vector_end > 0) sum = b.CreateFPExt(tree_sum16(kb, dot_lanes(kb, k, q, n)), kb.f64());
  if (vector_end < n) {
    const auto tail = static_cast<unsigned>(n) - vector_end;
    llvm::Value* products = b.CreateFMul(slice(kb, k, vector_end, tail), slice(kb, q, vector_end, tail));
    products = b.CreateFPExt(products, type_like(kb, products, kb.f64()));
    for (unsigned i = 0; i < tail; ++i) sum = b.CreateFAdd(sum, slice(kb, products, i, 1));
  }
  return b.CreateFPTrunc(sum, kb.f32());
}

void sin_cos(KernelBuilder& kb, llvm::Value* angle, llvm::Value** sin_out, llvm::Value** cos_out) {
  auto& b = kb.b;
  llvm::Type* dt = type_like(kb, angle, kb.f64());
  auto c = [&](double v) { return constant_like(angle, kb.f64(), v); };
  llvm::Value* x = b.CreateFPExt(angle, dt);
  // x = k pi/2 + r, |r| <= pi/4. pi/2 = hi + lo; the fma keeps k * hi exact, so r carries
  // ~1e-16 relative error even for positions in the millions.
  constexpr double kPio2Hi = 1.5707963267948966;     // double nearest pi/2
  constexpr double kPio2Lo = 6.123233995736766e-17;  // pi/2 - kPio2Hi
  llvm::Value* k = kb.intrinsic(llvm::Intrinsic::roundeven, {dt}, {b.CreateFMul(x, c(0.63661977236758134))});
  llvm::Value* neg_k = b.CreateFNeg(k);
  llvm::Value* r = kb.fma(neg_k, c(kPio2Lo), kb.fma(neg_k, c(kPio2Hi), x));
  llvm::Value* r2 = b.CreateFMul(r, r);
  // Taylor series; on |r| <= pi/4 the first omitted terms are below 1e-16 relative.
  std::vector<double> sin_coeffs, cos_coeffs;  // -1/3!, 1/5!, ..., -1/15! and -1/2!, 1/4!, ..., 1/16!
  double fact = 1;
  for (int i = 1; i <= 16; ++i) {
    fact *= i;
    const double term = ((i / 2) % 2 ? -1.0 : 1.0) / fact;
    if (i % 2 == 1 && i >= 3) sin_coeffs.push_back(term);
    if (i % 2 == 0) cos_coeffs.push_back(term);
  }
  auto horner = [&](const std::vector<double>& coeffs) {  // sum coeffs[i] r2^i
    llvm::Value* p = c(coeffs.back());
    for (size_t i = coeffs.size() - 1; i-- > 0;) p = kb.fma(p, r2, c(coeffs[i]));
    return p;
  };
  llvm::Value* ps = horner(sin_coeffs);
  llvm::Value* pc = horner(cos_coeffs);
  llvm::Value* s = kb.fma(b.CreateFMul(r, r2), ps, r);  // r + r^3 (-1/6 + ...)
  llvm::Value* co = kb.fma(r2, pc, c(1.0));             // 1 + r^2 (-1/2 + ...)
  // Quadrant k mod 4: sin = s, c, -s, -c; cos = c, -s, -c, s.
  llvm::Type* it = type_like(kb, angle, kb.i32());
  llvm::Value* q = b.CreateAnd(b.CreateFPToSI(k, it), constant_like(angle, kb.i32(), 3));
  llvm::Value* odd =
      b.CreateICmpNE(b.CreateAnd(q, constant_like(angle, kb.i32(), 1)), constant_like(angle, kb.i32(), 0));
  llvm::Value* sin_neg =
      b.CreateICmpNE(b.CreateAnd(q, constant_like(angle, kb.i32(), 2)), constant_like(angle, kb.i32(), 0));
  llvm::Value* cos_neg = b.CreateICmpNE(b.CreateXor(sin_neg, odd), llvm::Constant::getNullValue(odd->getType()));
  llvm::Value* sv = b.CreateSelect(odd, co, s);
  llvm::Value* cv = b.CreateSelect(odd, s, co);
  sv = b.CreateSelect(sin_neg, b.CreateFNeg(sv), sv);
  cv = b.CreateSelect(cos_neg, b.CreateFNeg(cv), cv);
  *sin_out = sv;
  *cos_out = cv;
}

}  // namespace bitnet::codegen
