// Tensor types of IR values: a dtype and a row-major shape whose dims are static or
// the symbolic token count T (the only dim that varies between calls; the position
// is a run-time argument of rope/attention, not a shape).
#pragma once

#include "ir/dtype.h"

#include <cstdint>
#include <string>
#include <vector>

namespace bitnet::ir {

struct Dim {
  static constexpr int64_t kTokens = -1;    // the symbolic dim "T" (tokens in this call)
  static constexpr int64_t kSelected = -2;  // the symbolic dim "R" (rows whose logits are wanted)
  int64_t size = 0;

  static Dim tokens() { return Dim{kTokens}; }
  static Dim selected() { return Dim{kSelected}; }
  bool is_tokens() const { return size == kTokens; }
  bool is_selected() const { return size == kSelected; }
  bool is_symbolic() const { return size < 0; }  // T or R: known per call, not at compile time
  bool operator==(const Dim&) const = default;
};

struct Type {
  DType dtype = DType::F32;
  std::vector<Dim> shape;  // row-major: the last dim is contiguous

  static Type of(DType dtype, std::vector<Dim> shape) { return Type{dtype, std::move(shape)}; }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  bool operator==(const Type&) const = default;
};

// "f32[T, 256]"
std::string to_string(const Dim& dim);
std::string to_string(const Type& type);

// Bytes an activation of `type` occupies in the arena for a call of n_tokens tokens (the
// layouts of schema/abi.h, before slot alignment); -1 for weight types, which have no slot.
//   f32 [T, N] : float[T][N]      i32 [T] : int32[T] (token ids)      i8q [T, K] : abi::i8q_bytes
int64_t activation_bytes(const Type& type, int64_t n_tokens);

}  // namespace bitnet::ir
