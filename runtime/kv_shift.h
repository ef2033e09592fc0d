// Shifting cached positions (seq_add): a sequence's cells move to their new positions and each
// cached key is rotated again by the shift, as llama.cpp's K shift does: the F16 key read as
// F32, rotated by `delta` positions with the model's RoPE (ir/support/rope.h), written back
// as F16. Values do not depend on the position and only move.
#pragma once

#include <cstdint>

namespace bitnet::runtime {

struct KeyRotation {
  bool rotated = false;  // false: the keys carry no position (no RoPE): nothing to rotate
  bool neox = false;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  int64_t head_dim = 0;
};

// One key head (head_dim halves, contiguous).
void rotate_key(uint16_t* key, const KeyRotation& rotation, int64_t delta);

}  // namespace bitnet::runtime
