// Model loading for the compiler and the interpreter (see load_model.h).
#include "compiler/load_model.h"

#include "frontend_gguf/lowering.h"
#include "passes/lm_head.h"
#include "reference/interpreter.h"
#include "reference/locate_nonfinite.h"

namespace bitnet::compiler {

Expected<std::unique_ptr<runtime::Model>> load_model(const std::string& path, const LoadOptions& options) {
  BITNET_ASSIGN_OR_RETURN(auto m, runtime::Model::open(path, {.tokenizer_path = options.tokenizer_path}));
  ir::Graph graphs[2];
  for (bool all : {false, true}) {
    auto graph = gguf::lower_to_ir(m->file(), m->config(), {.all_logits = all});
    if (!graph.ok()) return make_error("{}: {}", path, graph.error().message);
    if (options.lm_head != ir::DType::F16) {
      // Before the pipeline, so the rewritten graph is verified and optimised like any other.
      auto head = passes::retarget_lm_head(*graph, options.lm_head);
      if (!head.ok())
        return make_error("{}: --lm-head {}: {}", path, ir::dtype_name(options.lm_head), head.error().message);
    }
    if (options.optimize) BITNET_RETURN_IF_ERROR(passes::default_pipeline().run(*graph, options.passes));
    graphs[all ? 1 : 0] = std::move(*graph);
  }
  m->set_graphs(std::move(graphs[0]), std::move(graphs[1]));
  use_interpreter(*m);
  reference::install_nonfinite_locator(*m);
  return m;
}

void use_interpreter(runtime::Model& model) {
  const runtime::Model* m = &model;  // the factory is owned by the model
  model.set_session_factory([m](const runtime::SessionOptions& so) -> Expected<std::unique_ptr<runtime::Session>> {
    reference::InterpreterOptions io{
        .n_ctx = so.n_ctx, .threads = so.threads, .arena_t_max = 0, .n_seq_max = so.n_seq_max};
    BITNET_ASSIGN_OR_RETURN(auto interp, reference::Interpreter::create(m->graph(so.all_logits), m->file(), io));
    return std::unique_ptr<runtime::Session>(std::move(interp));
  });
}

}  // namespace bitnet::compiler
