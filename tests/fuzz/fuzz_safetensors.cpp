// libFuzzer target: bytes -> parse_safetensors (what `bitnet convert` does with each mapped
// .safetensors file). Any input must give tensors whose views lie inside the input and whose
// byte counts match dtype x shape, or an error with a message; never a crash, a hang or an
// exception.
#include "convert/safetensors.h"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <span>
#include <string>

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet::convert;
  const std::span<const uint8_t> bytes(data, size);
  std::map<std::string, std::string> metadata;
  auto tensors = parse_safetensors(bytes, "fuzz.safetensors", &metadata);
  if (!tensors.ok()) {
    check(!tensors.error().message.empty());
    return 0;
  }
  for (const StTensor& t : *tensors) {
    check(t.data.empty() || (t.data.data() >= data && t.data.data() + t.data.size() <= data + size));
    check(t.data.size() == t.elements() * st_dtype_size(t.dtype));
  }
  return 0;
}
