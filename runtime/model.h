// A model ready to run: the mapped GGUF, its configuration and tokenizer, and the forward
// graph lowered from it. Sessions (interpreters) are created from it.
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/model_config.h"
#include "ir/graph.h"
#include "passes/pass_manager.h"
#include "runtime/interpreter.h"
#include "runtime/tokenizer.h"

#include <functional>
#include <memory>
#include <string>

namespace bitnet::runtime {

struct ModelOptions {
  std::string tokenizer_path;  // a tokenizer.json or GGUF to use instead of the model's own
  bool optimize = true;        // run the IR pass pipeline (results are identical either way)
  passes::PassOptions passes;  // printing and timing of the pipeline (both graphs go through it)
  // q8_0 | q6_k: the logits matmul reads a requantized copy of an F16 head (passes/lm_head.h),
  // whose bytes the session factory must supply (the interpreter has none). F16: the file's.
  ir::DType lm_head = ir::DType::F16;
};

class Model {
 public:
  static Expected<std::unique_ptr<Model>> load(const std::string& path, const ModelOptions& options = {});
  // The same with graphs made earlier (a plan's) instead of lowering and optimising the file's.
  static Expected<std::unique_ptr<Model>> load_with_graphs(const std::string& path, ir::Graph graph_last,
                                                           ir::Graph graph_all, const ModelOptions& options = {});

  const gguf::GgufFile& file() const { return file_; }
  const gguf::ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

  // The forward graph with logits for the last token only (generation) or all tokens (eval).
  const ir::Graph& graph(bool all_logits) const { return all_logits ? graph_all_ : graph_last_; }
  // A fresh session (own KV cache) over this model: the reference interpreter, or whatever
  // the session factory builds (the compiled executor; see set_session_factory). n_ctx <= 0
  // picks the model's training context capped at 4096.
  Expected<std::unique_ptr<Session>> new_session(bool all_logits, int64_t n_ctx, int threads) const;

  // Backends that need a compiler (which the runtime never links) plug in here.
  using SessionFactory = std::function<Expected<std::unique_ptr<Session>>(
      const ir::Graph& graph, const gguf::GgufFile& file, int64_t n_ctx, int threads)>;
  void set_session_factory(SessionFactory factory) { factory_ = std::move(factory); }

 private:
  Model(gguf::GgufFile file) : file_(std::move(file)) {}
  static Expected<std::unique_ptr<Model>> open(const std::string& path, const ModelOptions& options);
  gguf::GgufFile file_;
  gguf::ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ir::Graph graph_last_;
  ir::Graph graph_all_;
  SessionFactory factory_;
};

}  // namespace bitnet::runtime
