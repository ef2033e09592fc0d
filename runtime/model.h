// A model ready to run: the mapped GGUF, its configuration and tokenizer, and the backend that
// makes its sessions. The runtime opens models and runs plans; the graphs a model runs are
// made by the compiler (compiler/load_model.h) or read from a plan (runtime/plan_model.h),
// which also install the session factory.
#pragma once

#include "frontend_gguf/gguf_file.h"
#include "frontend_gguf/model_config.h"
#include "ir/graph.h"
#include "runtime/session.h"
#include "runtime/tokenizer.h"

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace bitnet::runtime {

// What a session is made for.
struct SessionOptions {
  bool all_logits = false;  // the graph of all tokens' logits (eval) or of the selected rows
  int64_t n_ctx = 0;        // cells of all sequences; <= 0: the training context capped at 4096
  int threads = 1;
  int32_t n_seq_max = 1;  // sequences (KV regions of n_ctx / n_seq_max cells)
};

struct ModelOptions {
  std::string tokenizer_path;  // a tokenizer.json or GGUF to use instead of the model's own
};

class Model {
 public:
  // Opens the GGUF with compat-check's load checks (gguf::check_loadable), reads its
  // configuration and tokenizer. The model has no graphs and no backend yet.
  static Expected<std::unique_ptr<Model>> open(const std::string& path, const ModelOptions& options = {});

  const gguf::GgufFile& file() const { return file_; }
  const gguf::ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

  // The forward graph with logits for the last token only (generation) or all tokens (eval):
  // what the compiler made, or a plan's graph as stored (descriptive: sessions of a plan run
  // its schedule, not this graph).
  const ir::Graph& graph(bool all_logits) const { return all_logits ? graph_all_ : graph_last_; }
  void set_graphs(ir::Graph last, ir::Graph all) {
    graph_last_ = std::move(last);
    graph_all_ = std::move(all);
  }

  // A fresh session (own KV cache) from the backend's factory. n_ctx <= 0 picks the model's
  // training context capped at 4096. Fails when no backend was installed.
  Expected<std::unique_ptr<Session>> new_session(const SessionOptions& options) const;
  Expected<std::unique_ptr<Session>> new_session(bool all_logits, int64_t n_ctx, int threads) const {
    return new_session(SessionOptions{all_logits, n_ctx, threads, 1});
  }

  // Backends plug in here: a plan's executor (runtime), the JIT's in-memory plan or the
  // reference interpreter (compiler). The factory is owned by the model, so it may refer to it.
  // Called with n_ctx resolved (> 0).
  using SessionFactory = std::function<Expected<std::unique_ptr<Session>>(const SessionOptions& options)>;
  void set_session_factory(SessionFactory factory) { factory_ = std::move(factory); }
  // What the factory's sessions run on, where it is not the CPU ("cuda"); "" otherwise.
  void set_device_backend(std::string name) { device_backend_ = std::move(name); }
  const std::string& device_backend() const { return device_backend_; }

  // Explains non-finite logits seen after feeding `tokens` to a session of `backend` (see
  // nonfinite.h); installed where a reference interpreter is linked, absent in the lean runtime.
  using NonfiniteLocator = std::function<std::string(std::span<const int32_t> tokens, std::string_view backend)>;
  void set_nonfinite_locator(NonfiniteLocator locator) { locator_ = std::move(locator); }
  const NonfiniteLocator& nonfinite_locator() const { return locator_; }

 private:
  Model(gguf::GgufFile file) : file_(std::move(file)) {}
  gguf::GgufFile file_;
  gguf::ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ir::Graph graph_last_;
  ir::Graph graph_all_;
  SessionFactory factory_;
  std::string device_backend_;
  NonfiniteLocator locator_;
};

}  // namespace bitnet::runtime
