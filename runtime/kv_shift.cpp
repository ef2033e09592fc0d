// Rotating cached keys (see kv_shift.h).
#include "runtime/kv_shift.h"

#include "ir/support/half.h"
#include "ir/support/rope.h"

#include <vector>

namespace bitnet::runtime {

void rotate_key(uint16_t* key, const KeyRotation& r, int64_t delta) {
  if (!r.rotated || delta == 0) return;
  std::vector<float> row(static_cast<size_t>(r.head_dim));  // a KV edit, not a hot path
  float* x = row.data();
  for (int64_t d = 0; d < r.head_dim; ++d) x[d] = half::to_float(key[d]);
  rope::rotate_head(x, r.head_dim, delta, rope::theta_scale(r.freq_base, r.head_dim), r.freq_scale, r.neox);
  for (int64_t d = 0; d < r.head_dim; ++d) key[d] = half::from_float(x[d]);
}

}  // namespace bitnet::runtime
