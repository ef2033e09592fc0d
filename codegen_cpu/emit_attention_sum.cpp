// The weighted sums of V for the attention emitter: decode mode as ref::vec_dot_f16 on F16
// probabilities, prompt mode as llamafile tinyBLAS on F32 probabilities, lane for lane.
#include "codegen_cpu/emit_attention.h"
#include "codegen_cpu/emit_math.h"

#include <algorithm>

namespace bitnet::codegen {

// The double sums after the probability and spare rows (see kMaxBlock).
llvm::Value* AttentionEmitter::sums_area() {
  return kb_.byte_offset(scratch_,
                         b_.CreateAdd(b_.CreateMul(cells_, kb_.c64(4 * kMaxBlock)), kb_.c64(4 * kMaxBlock * s_.dim)));
}

llvm::Value* AttentionEmitter::fext(llvm::Value* halves) {
  return b_.CreateFPExt(halves,
                        kb_.vec(kb_.f32(), llvm::cast<llvm::FixedVectorType>(halves->getType())->getNumElements()));
}

// Decode: out[d] = vec_dot_f16(V row d, f16(p), n_kv) for every query of KV head g, in two
// loops over the rows: the 64-cell chunks (4 x 16-lane chains per row and query), whose
// double sums go to scratch, then per 8 or 16 rows the n_kv % 64 leftovers (0 or 32: the
// window is a multiple of 32). Two plain loops keep the kernel small (it compiles faster).
void AttentionEmitter::weighted_sum_decode(llvm::Value* g, const std::vector<Query>& queries) {
  if (s_.dim % 8 != 0) {
    weighted_sum_decode_rows(g, queries[0]);  // attend() runs such shapes one query at a time
    return;
  }
  const auto n = static_cast<unsigned>(queries.size());
  llvm::Value* sums = sums_area();  // double [query][head_dim]
  auto sum_at = [&](unsigned i, llvm::Value* d) {
    return kb_.element_ptr(kb_.f64(), sums, b_.CreateAdd(kb_.c64(i * s_.dim), d));
  };
  llvm::Value* vector_end = b_.CreateSub(n_kv_, b_.CreateSRem(n_kv_, kb_.c64(64)));
  // Rows per chunk loop: rows x queries x 4 accumulators fill at most 16 vector registers.
  const unsigned rows = n > 1 ? 1 : kb_.target.vector_bits() >= 512 ? 4 : 2;
  kb_.loop(kb_.c64(0), kb_.c64(s_.dim), rows, [&](llvm::Value* d) {
    std::vector<llvm::Value*> v(rows);
    for (unsigned u = 0; u < rows; ++u) v[u] = v_row(g, b_.CreateAdd(d, kb_.c64(u)));
    const std::vector<llvm::Value*> row_sums = chunk_sums(v, queries, vector_end);  // [row][query]
    for (unsigned u = 0; u < rows; ++u) {
      for (unsigned i = 0; i < n; ++i)
        b_.CreateAlignedStore(row_sums[u * n + i], sum_at(i, b_.CreateAdd(d, kb_.c64(u))), llvm::MaybeAlign(4));
    }
  });
  // The leftovers are float products added in double one cell at a time: a serial chain per
  // row, so rows are transposed into lanes and 8 chains advance per instruction; 16 rows for
  // one query give two independent chains.
  const unsigned step = n == 1 && s_.dim % 16 == 0 ? 16 : 8;
  kb_.loop(kb_.c64(0), kb_.c64(s_.dim), step, [&](llvm::Value* d) {
    std::vector<llvm::Value*> v(step);
    for (unsigned u = 0; u < step; ++u) v[u] = v_row(g, b_.CreateAdd(d, kb_.c64(u)));
    // acc[k][i]: lanes = rows d + 8k .. d + 8k + 7 of query i.
    std::vector<std::vector<llvm::Value*>> acc(step / 8, std::vector<llvm::Value*>(n));
    for (unsigned k = 0; k < step / 8; ++k) {
      for (unsigned i = 0; i < n; ++i) {
        acc[k][i] = b_.CreateAlignedLoad(kb_.vec(kb_.f64(), 8), sum_at(i, b_.CreateAdd(d, kb_.c64(8 * k))),
                                         llvm::MaybeAlign(4));
      }
    }
    llvm::Value* tail = b_.CreateSub(n_kv_, vector_end);
    llvm::Value* is32 = b_.CreateICmpEQ(tail, kb_.c64(32));
    llvm::BasicBlock* before = b_.GetInsertBlock();
    std::vector<std::vector<llvm::Value*>> acc32;
    llvm::BasicBlock* after32 = nullptr;
    kb_.if_then(is32, [&] {
      acc32 = tail_32(v, queries, vector_end, acc);
      after32 = b_.GetInsertBlock();
    });
    std::vector<llvm::Value*> flat;
    for (size_t k = 0; k < acc.size(); ++k) {
      for (unsigned i = 0; i < n; ++i) {
        llvm::PHINode* merged = b_.CreatePHI(acc[k][i]->getType(), 2);
        merged->addIncoming(acc32[k][i], after32);
        merged->addIncoming(acc[k][i], before);
        flat.push_back(merged);
      }
    }
    // Any other leftover count (kv_cells not a multiple of 32): cell by cell.
    llvm::Value* other = b_.CreateSelect(is32, n_kv_, vector_end);
    flat = kb_.loop_carried(other, n_kv_, 1, flat, [&](llvm::Value* j, const std::vector<llvm::Value*>& a) {
      std::vector<llvm::Value*> next = a;
      for (unsigned i = 0; i < n; ++i) {
        llvm::Value* p = kb_.load(kb_.f32(), queries[i].probs, j, 4);
        for (unsigned u = 0; u < step; ++u) {
          llvm::Value* x =
              b_.CreateFMul(b_.CreateFPExt(kb_.load(kb_.f16(), v_at(v[u], j), kb_.c64(0), 2), kb_.f32()), p);
          llvm::Value*& lanes = next[(u / 8) * n + i];
          llvm::Value* sum =
              b_.CreateFAdd(b_.CreateExtractElement(lanes, static_cast<uint64_t>(u % 8)), b_.CreateFPExt(x, kb_.f64()));
          lanes = b_.CreateInsertElement(lanes, sum, static_cast<uint64_t>(u % 8));
        }
      }
      return next;
    });
    for (size_t k = 0; k < acc.size(); ++k) {
      for (unsigned i = 0; i < n; ++i) {
        llvm::Value* at =
            kb_.element_ptr(kb_.f32(), queries[i].out, b_.CreateAdd(d, kb_.c64(static_cast<int64_t>(8 * k))));
        b_.CreateAlignedStore(b_.CreateFPTrunc(flat[k * n + i], kb_.vec(kb_.f32(), 8)), at, llvm::MaybeAlign(4));
      }
    }
  });
}

// The vector part of vec_dot_f16 over cells [0, vector_end) for the given V rows and queries:
// per (row, query) 4 x 16-lane chains over chunks of 64, folded (0+2, 1+3, 0+1) and
// tree-summed, widened to double. Each V chunk is loaded and converted once for all queries.
std::vector<llvm::Value*> AttentionEmitter::chunk_sums(const std::vector<llvm::Value*>& rows,
                                                       const std::vector<Query>& queries, llvm::Value* vector_end) {
  const size_t n = queries.size();
  std::vector<llvm::Value*> init(4 * rows.size() * n, kb_.splat(16, kb_.cf32(0.0f)));
  auto at_acc = [&](size_t u, size_t i, unsigned r) { return (u * n + i) * 4 + r; };
  std::vector<llvm::Value*> acc =
      kb_.loop_carried(kb_.c64(0), vector_end, 64, init, [&](llvm::Value* c, const std::vector<llvm::Value*>& a) {
        std::vector<llvm::Value*> next(a.size());
        for (unsigned r = 0; r < 4; ++r) {
          llvm::Value* at = b_.CreateAdd(c, kb_.c64(16 * r));
          std::vector<llvm::Value*> p(n);
          for (size_t i = 0; i < n; ++i) p[i] = load_vec(kb_, kb_.f32(), 16, queries[i].probs, at, 4);
          for (size_t u = 0; u < rows.size(); ++u) {
            llvm::Value* vv = fext(load_vec(kb_, kb_.f16(), 16, v_at(rows[u], at), kb_.c64(0), 2));
            for (size_t i = 0; i < n; ++i) next[at_acc(u, i, r)] = kb_.fma(vv, p[i], a[at_acc(u, i, r)]);
          }
        }
        return next;
      });
  std::vector<llvm::Value*> sums;
  for (size_t u = 0; u < rows.size(); ++u) {
    for (size_t i = 0; i < n; ++i) {
      llvm::Value* a0 = b_.CreateFAdd(acc[at_acc(u, i, 0)], acc[at_acc(u, i, 2)]);
      llvm::Value* a1 = b_.CreateFAdd(acc[at_acc(u, i, 1)], acc[at_acc(u, i, 3)]);
      sums.push_back(b_.CreateFPExt(tree_sum16(kb_, b_.CreateFAdd(a0, a1)), kb_.f64()));
    }
  }
  return sums;
}

// 32 leftover cells from `start`: each 8 x 8 tile of V (8 rows, 8 cells) is transposed once,
// so column j holds cell j of the 8 rows; times p[j] of each query that is float(V * p) per
// lane, added in cell order into acc[k][i] (rows 8k.., query i).
std::vector<std::vector<llvm::Value*>> AttentionEmitter::tail_32(const std::vector<llvm::Value*>& rows,
                                                                 const std::vector<Query>& queries, llvm::Value* start,
                                                                 std::vector<std::vector<llvm::Value*>> acc) {
  for (unsigned block = 0; block < 32; block += 8) {
    llvm::Value* at = b_.CreateAdd(start, kb_.c64(block));
    std::vector<llvm::Value*> p(queries.size());
    for (size_t i = 0; i < queries.size(); ++i) p[i] = load_vec(kb_, kb_.f32(), 8, queries[i].probs, at, 4);
    std::vector<std::vector<llvm::Value*>> columns;
    for (size_t k = 0; k < acc.size(); ++k) {
      std::vector<llvm::Value*> r(8);
      for (unsigned u = 0; u < 8; ++u)
        r[u] = fext(load_vec(kb_, kb_.f16(), 8, v_at(rows[8 * k + u], at), kb_.c64(0), 2));
      columns.push_back(transpose8(r));
    }
    for (unsigned j = 0; j < 8; ++j) {
      for (size_t k = 0; k < acc.size(); ++k) {
        for (size_t i = 0; i < queries.size(); ++i) {
          llvm::Value* x = b_.CreateFMul(
              columns[k][j], b_.CreateVectorSplat(8, b_.CreateExtractElement(p[i], static_cast<uint64_t>(j))));
          acc[k][i] = b_.CreateFAdd(acc[k][i], b_.CreateFPExt(x, kb_.vec(kb_.f64(), 8)));
        }
      }
    }
  }
  return acc;
}

// The 8 x 8 transpose of AVX (unpack, shuffle, 128-bit permute): 24 two-input shuffles.
std::vector<llvm::Value*> AttentionEmitter::transpose8(const std::vector<llvm::Value*>& r) {
  auto shuffle = [&](llvm::Value* a, llvm::Value* b, std::initializer_list<int> mask) {
    return b_.CreateShuffleVector(a, b, llvm::ArrayRef<int>(mask.begin(), mask.size()));
  };
  std::vector<llvm::Value*> t(8), s(8), c(8);
  for (unsigned i = 0; i < 8; i += 2) {
    t[i] = shuffle(r[i], r[i + 1], {0, 8, 1, 9, 4, 12, 5, 13});
    t[i + 1] = shuffle(r[i], r[i + 1], {2, 10, 3, 11, 6, 14, 7, 15});
  }
  for (unsigned i = 0; i < 8; i += 4) {
    s[i] = shuffle(t[i], t[i + 2], {0, 1, 8, 9, 4, 5, 12, 13});            // columns 0 | 4 of rows i..i+3
    s[i + 1] = shuffle(t[i], t[i + 2], {2, 3, 10, 11, 6, 7, 14, 15});      // columns 1 | 5
    s[i + 2] = shuffle(t[i + 1], t[i + 3], {0, 1, 8, 9, 4, 5, 12, 13});    // columns 2 | 6
    s[i + 3] = shuffle(t[i + 1], t[i + 3], {2, 3, 10, 11, 6, 7, 14, 15});  // columns 3 | 7
  }
  for (unsigned j = 0; j < 4; ++j) {
    c[j] = shuffle(s[j], s[j + 4], {0, 1, 2, 3, 8, 9, 10, 11});
    c[j + 4] = shuffle(s[j], s[j + 4], {4, 5, 6, 7, 12, 13, 14, 15});
  }
  return c;
}

// Head dims that are not a multiple of 8: one row at a time, leftovers cell by cell.
void AttentionEmitter::weighted_sum_decode_rows(llvm::Value* g, const Query& query) {
  llvm::Value* vector_end = b_.CreateSub(n_kv_, b_.CreateSRem(n_kv_, kb_.c64(64)));
  kb_.loop(kb_.c64(0), kb_.c64(s_.dim), 1, [&](llvm::Value* d) {
    llvm::Value* row = v_row(g, d);
    std::vector<llvm::Value*> sum = chunk_sums({row}, {query}, vector_end);
    sum = kb_.loop_carried(vector_end, n_kv_, 1, sum, [&](llvm::Value* j, const std::vector<llvm::Value*>& s) {
      llvm::Value* x = b_.CreateFMul(b_.CreateFPExt(kb_.load(kb_.f16(), v_at(row, j), kb_.c64(0), 2), kb_.f32()),
                                     kb_.load(kb_.f32(), query.probs, j, 4));
      return std::vector<llvm::Value*>{b_.CreateFAdd(s[0], b_.CreateFPExt(x, kb_.f64()))};
    });
    kb_.store(b_.CreateFPTrunc(sum[0], kb_.f32()), query.out, d, 4);
  });
}

// Prompt: llamafile tinyBLAS, one 16-lane FMA chain per output over the cells with F32 p,
// then the tree sum. Several rows and queries at a time: independent chains, and each V
// chunk converted once for all queries.
void AttentionEmitter::weighted_sum_prompt(llvm::Value* g, const std::vector<Query>& queries, llvm::Value* window) {
  const auto n = static_cast<unsigned>(queries.size());
  unsigned rows = std::max(1u, (kb_.target.vector_bits() >= 512 ? 16u : 8u) / n);
  while (rows > 1 && s_.dim % rows != 0) rows /= 2;
  kb_.loop(kb_.c64(0), kb_.c64(s_.dim), rows, [&](llvm::Value* d) {
    std::vector<llvm::Value*> v(rows);
    for (unsigned u = 0; u < rows; ++u) v[u] = v_row(g, b_.CreateAdd(d, kb_.c64(u)));
    std::vector<llvm::Value*> init(rows * n, kb_.splat(16, kb_.cf32(0.0f)));
    std::vector<llvm::Value*> acc =
        kb_.loop_carried(kb_.c64(0), window, 16, init, [&](llvm::Value* c, const std::vector<llvm::Value*>& a) {
          std::vector<llvm::Value*> p(n);
          llvm::Value* subnormal = nullptr;
          for (unsigned i = 0; i < n; ++i) {
            p[i] = load_vec(kb_, kb_.f32(), 16, queries[i].probs, c, 4);
            llvm::Value* s = b_.CreateAnd(b_.CreateFCmpOLT(p[i], kb_.splat(16, kb_.cf32(0x1p-126f))),
                                          b_.CreateFCmpOGT(p[i], kb_.splat(16, kb_.cf32(0.0f))));
            subnormal = subnormal ? b_.CreateOr(subnormal, s) : s;
          }
          // A subnormal p in a float FMA costs a ~150-cycle microcode assist, once per V row; wide
          // score ranges produce many. Chunks holding one take the exact FMA in double instead.
          auto chunk = [&](bool in_double) {
            std::vector<llvm::Value*> next(a.size());
            for (unsigned u = 0; u < rows; ++u) {
              llvm::Value* vv = fext(load_vec(kb_, kb_.f16(), 16, v_at(v[u], c), kb_.c64(0), 2));
              for (unsigned i = 0; i < n; ++i) {
                next[u * n + i] =
                    in_double ? fma_in_double(kb_, vv, p[i], a[u * n + i]) : kb_.fma(vv, p[i], a[u * n + i]);
              }
            }
            return next;
          };
          return kb_.if_else(
              kb_.intrinsic(llvm::Intrinsic::vector_reduce_or, {subnormal->getType()}, {subnormal}),
              [&] { return chunk(true); }, [&] { return chunk(false); });
        });
    if (rows * n != 16) {
      for (unsigned u = 0; u < rows; ++u) {
        for (unsigned i = 0; i < n; ++i)
          kb_.store(tree_sum16(kb_, acc[u * n + i]), queries[i].out, b_.CreateAdd(d, kb_.c64(u)), 4);
      }
      return;
    }
    // 16 chains: their tree sums together, as one vector (lane u * n + i: row u of query i).
    TreeSum16x16 tree(kb_);
    for (llvm::Value* a : acc) tree.push(a);
    llvm::Value* sums = tree.finish();
    if (n == 1) {
      b_.CreateAlignedStore(sums, kb_.element_ptr(kb_.f32(), queries[0].out, d), llvm::MaybeAlign(4));
      return;
    }
    for (unsigned u = 0; u < rows; ++u) {
      for (unsigned i = 0; i < n; ++i) {
        kb_.store(b_.CreateExtractElement(sums, static_cast<uint64_t>(u * n + i)), queries[i].out,
                  b_.CreateAdd(d, kb_.c64(u)), 4);
      }
    }
  });
}

}  // namespace bitnet::codegen
