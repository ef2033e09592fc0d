// IEEE half and bfloat16 conversions with the rounding the F16C instructions use.
#include <cstring>

#include "ir/support/half.h"
#include "reference/kernels.h"

namespace bitnet::ref {

uint16_t fp32_to_fp16(float x) {
  return half::from_float(x);
}

float fp16_to_fp32(uint16_t h) {
  return half::to_float(h);
}

float bf16_to_fp32(uint16_t h) {
  const uint32_t f = uint32_t{h} << 16;
  float out;
  std::memcpy(&out, &f, 4);
  return out;
}

}  // namespace bitnet::ref
