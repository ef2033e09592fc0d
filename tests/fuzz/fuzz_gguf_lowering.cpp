// libFuzzer target: a GGUF that parses goes on through what compiling a model does before any
// kernel is made: its configuration, lowering to the IR (with and without every row's logits),
// the verifier and the default pass pipeline, and the CUDA backend's reading of the optimised
// graph and planning of its decode step. Whatever the bytes, each step gives a value or an error:
// never a crash, a hang or an out-of-bounds read.
#include "codegen_cuda/decode_graph.h"
#include "codegen_cuda/decode_program.h"
#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/lowering.h"
#include "frontend_gguf/model_config.h"
#include "passes/pass_manager.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bitnet;
  // Where the loader maps a file: page-aligned, so that tensor data is as aligned as the file says
  // (libFuzzer's copy is not, and the reader refuses misaligned tensors).
  // (aligned_alloc wants a multiple of the alignment, never 0 here.)
  const size_t pages = size / 4096 + 1;
  std::unique_ptr<uint8_t, decltype(&std::free)> copy(static_cast<uint8_t*>(std::aligned_alloc(4096, pages * 4096)),
                                                      &std::free);
  if (copy == nullptr) return 0;
  if (size > 0) std::memcpy(copy.get(), data, size);  // (data may be null when size is 0)
  auto file = gguf::GgufFile::parse({copy.get(), size});
  if (!file.ok()) return 0;
  auto config = gguf::read_model_config(*file);
  if (!config.ok()) return 0;
  for (bool all_logits : {false, true}) {
    auto graph = gguf::lower_to_ir(*file, *config, {.all_logits = all_logits});
    if (!graph.ok()) continue;
    if (!passes::default_pipeline().run(*graph).ok()) continue;
    auto cuda = codegen_cuda::decode_config_from_graph(*graph, 64);
    if (!cuda.ok()) continue;
    (void)codegen_cuda::plan_decode_program(*cuda);
  }
  return 0;
}
