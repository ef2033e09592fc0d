#include "codegen_cuda/emit_embed.h"

#include <stdexcept>
#include <string>

#include "codegen_cuda/emit_common.h"
#include "codegen_cuda/emit_q8_0.h"

namespace bitnet::codegen_cuda {

namespace {

// What differs per table type: the pointer type, the row's bytes, and value i of a row.
struct TableText {
  const char* emitter;   // for errors
  const char* prefix;    // kernel name prefix
  const char* element;   // table pointer's element type
  int64_t row_elements;  // table elements per row
  std::string helpers;   // device functions the value expression uses
  const char* value;     // float value i of `row`
};

KernelSource emit_embed(const EmbedShape& shape, const TableText& table) {
  if (shape.n_embd < 1 || shape.n_vocab < 1 || shape.n_vocab > (int64_t{1} << 31) - 1) {
    throw std::invalid_argument(std::string(table.emitter) + ": bad shape");
  }
  KernelSource k;
  k.threads = 256;
  k.min_blocks = 1;
  k.name = kernel_name(table.prefix, {{"n", shape.n_embd}, {"v", shape.n_vocab}}) + pdl_suffix(shape.pdl);
  std::string s = "#include <cuda_fp16.h>\n" + device_prelude() + table.helpers;
  s += "extern \"C\" __global__ void __launch_bounds__(256, 1) " + k.name + "(\n    const " + table.element +
       R"(* __restrict__ table, const int* __restrict__ tokens, float* __restrict__ x, int n_tokens) {
)" +
       int_constants({{"kN", std::to_string(shape.n_embd)},
                      {"kVocab", std::to_string(shape.n_vocab)},
                      {"kRowElements", std::to_string(table.row_elements)}}) +
       R"(
)" + pdl_early_text(shape.pdl, "  ") +
       pdl_wait_text(shape.pdl, "  ") + R"(  const int t = blockIdx.x;
  if (t >= n_tokens) return;
  const int id = tokens[t];
  const bool valid = id >= 0 && id < kVocab;
  const auto* row = table + (long long)(valid ? id : 0) * kRowElements;
  for (int i = threadIdx.x; i < kN; i += 256) {
    x[(long long)t * kN + i] = valid ? )" +
       table.value + R"( : 0.0f;
  }
}
)";
  k.source = std::move(s);
  return k;
}

}  // namespace

Dim3 embed_grid(int64_t n_tokens) {
  return Dim3{static_cast<uint32_t>(n_tokens), 1, 1};
}

KernelSource emit_embed_f16(const EmbedShape& shape) {
  return emit_embed(shape, {"emit_embed_f16", "bn_embed_f16", "unsigned short", shape.n_embd, "",
                            "__half2float(__ushort_as_half(row[i]))"});
}

KernelSource emit_embed_q8_0(const EmbedShape& shape) {
  if (shape.n_embd % 32 != 0) throw std::invalid_argument("emit_embed_q8_0: n_embd must be a multiple of 32");
  return emit_embed(
      shape, {"emit_embed_q8_0", "bn_embed_q8_0", "unsigned char", q8_0_row_bytes(shape.n_embd), q8_0_device_helpers(),
              "bn_q8_0_value(row + (i >> 5) * 34, bn_q8_0_scale(row + (i >> 5) * 34), i & 31)"});
}

}  // namespace bitnet::codegen_cuda
