#include "codegen_cuda/emit_gather_rows.h"

#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"

namespace bitnet::codegen_cuda {

Dim3 gather_rows_grid(int64_t n_out) {
  return Dim3{static_cast<uint32_t>(n_out), 1, 1};
}

KernelSource emit_gather_rows(const GatherRowsShape& shape) {
  if (shape.n < 1) throw std::invalid_argument("emit_gather_rows: bad shape");
  KernelSource k;
  k.threads = 256;
  k.min_blocks = 1;
  k.name = kernel_name("bn_gather_rows", {{"n", shape.n}}) + pdl_suffix(shape.pdl);
  std::string s = device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(256, 1) " + k.name + R"((
    const float* __restrict__ x, const int* __restrict__ rows, float* __restrict__ out, int n_out) {
)" + int_constants({{"kN", std::to_string(shape.n)}}) +
       R"(
)" + pdl_early_text(shape.pdl, "  ") +
       pdl_wait_text(shape.pdl, "  ") + R"(  const int i = blockIdx.x;
  if (i >= n_out) return;
  const float* src = x + (long long)rows[i] * kN;
  for (int e = threadIdx.x; e < kN; e += 256) out[(long long)i * kN + e] = src[e];
}
)";
  k.source = std::move(s);
  return k;
}

}  // namespace bitnet::codegen_cuda
