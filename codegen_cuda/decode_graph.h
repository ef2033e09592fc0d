// The CUDA decode program's configuration read from a model's optimised IR (the graph
// passes::default_pipeline leaves, the one the CPU compilers start from), so that both targets
// compile the same graph: the graph is walked op by op and each fused op is matched to the
// kernels that run it (decode_program.h):
//   embed                      -> the F16 / Q8_0 lookup
//   norm_quantize              -> rmsnorm_quant (or a tail / folded norm)
//   matmul_cat (3 I2_S)        -> the q|k|v GEMV
//   rope_attention (NEOX)      -> rope + scores, (softmax,) softmax·V
//   matmul_add (I2_S)          -> o and down GEMVs with the residual-add epilogue
//   gated_ffn (relu2 | silu)   -> the gate|up GEMV with act(gate) * up in its epilogue
//   select_rows, norm, matmul  -> the row gather, the final norm, the F16 / Q8_0 LM head
// Every dimension comes from the values' types, eps and RoPE from the ops' attributes, every
// tensor name from the weights the ops read. A graph the kernels do not run (another op,
// operand or type, layers that differ) is an error naming the first node that does not fit and
// what the kernels run there.
#pragma once

#include <cstdint>

#include "bitnet/result.h"
#include "codegen_cuda/decode_program.h"
#include "ir/graph.h"

namespace bitnet::codegen_cuda {

// For n_ctx cells per sequence (rounded up to a multiple of 32).
Expected<DecodeModelConfig> decode_config_from_graph(const ir::Graph& graph, int64_t n_ctx);

}  // namespace bitnet::codegen_cuda
