#include "codegen_cuda/emit_embed_f16.h"

#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"

namespace bitnet::codegen_cuda {

Dim3 embed_f16_grid(int64_t n_tokens) {
  return Dim3{static_cast<uint32_t>(n_tokens), 1, 1};
}

KernelSource emit_embed_f16(const EmbedF16Shape& shape) {
  if (shape.n_embd < 1 || shape.n_vocab < 1 || shape.n_vocab > (int64_t{1} << 31) - 1) {
    throw std::invalid_argument("emit_embed_f16: bad shape");
  }
  KernelSource k;
  k.threads = 256;
  k.min_blocks = 1;
  k.name = kernel_name("bn_embed_f16", {{"n", shape.n_embd}, {"v", shape.n_vocab}}) + pdl_suffix(shape.pdl);
  std::string s = "#include <cuda_fp16.h>\n" + device_prelude();
  s += "extern \"C\" __global__ void __launch_bounds__(256, 1) " + k.name + R"((
    const unsigned short* __restrict__ table, const int* __restrict__ tokens, float* __restrict__ x, int n_tokens) {
)" + int_constants({{"kN", std::to_string(shape.n_embd)}, {"kVocab", std::to_string(shape.n_vocab)}}) +
       R"(
)" + pdl_early_text(shape.pdl, "  ") +
       pdl_wait_text(shape.pdl, "  ") + R"(  const int t = blockIdx.x;
  if (t >= n_tokens) return;
  const int id = tokens[t];
  const bool valid = id >= 0 && id < kVocab;
  const unsigned short* row = table + (long long)(valid ? id : 0) * kN;
  for (int i = threadIdx.x; i < kN; i += 256) {
    x[(long long)t * kN + i] = valid ? __half2float(__ushort_as_half(row[i])) : 0.0f;
  }
}
)";
  k.source = std::move(s);
  return k;
}

}  // namespace bitnet::codegen_cuda
