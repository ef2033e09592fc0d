// _bitnet: the C++ half of the `bitnet` Python package (bitnet/llama.py is the other half).
// Models, contexts and samplers of the public library (include/bitnet/) only. The GIL is
// released while the library computes (loading, decoding, sampling, tokenizing), so Llama
// objects on different Python threads run in parallel. The library returns errors as values;
// here they become ValueError (bad arguments, files that do not load) or RuntimeError (a
// decode that fails), as llama-cpp-python raises them.
#include "bitnet/bitnet.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

using bitnet::Token;

template <class T>
T value_or_value_error(bitnet::Result<T> result) {
  if (!result.ok()) throw py::value_error(result.error().message);
  return std::move(result).value();
}

// The library's messages (plan cache, compilation reports) go to stderr while verbose is on:
// each Llama sets it, process-wide, as llama-cpp-python's verbose flag is.
std::atomic<bool> g_log_to_stderr{false};

void set_verbose(bool on) {
  g_log_to_stderr = on;
}

void log_to_stderr(bitnet::LogLevel, std::string_view message) {
  if (!g_log_to_stderr.load(std::memory_order_relaxed)) return;
  std::string line(message);
  if (!line.ends_with('\n')) line += '\n';
  std::fputs(line.c_str(), stderr);
}

class ModelHandle {
 public:
  static std::shared_ptr<ModelHandle> load(const std::string& path, bool verbose, const std::string& backend) {
    bitnet::ModelParams params;
    params.verbose = verbose;
    params.backend = backend;
    bitnet::Result<std::shared_ptr<const bitnet::Model>> model = bitnet::Error{};
    {
      py::gil_scoped_release release;
      model = bitnet::Model::load(path, params);
    }
    return std::make_shared<ModelHandle>(value_or_value_error(std::move(model)));
  }
  explicit ModelHandle(std::shared_ptr<const bitnet::Model> model) : model_(std::move(model)) {}

  const std::shared_ptr<const bitnet::Model>& shared() const {
    if (!model_) throw std::runtime_error("the model has been closed");
    return model_;
  }
  const bitnet::Model& model() const { return *shared(); }
  const bitnet::Vocab& vocab() const { return model().vocab(); }
  void close() { model_.reset(); }

  py::dict metadata() const {
    py::dict out;
    for (const std::string& key : model().meta_keys()) out[py::str(key)] = py::str(model().meta(key).value_or(""));
    return out;
  }

  std::vector<Token> tokenize(const py::bytes& text, bool add_special, bool parse_special) const {
    // Copied while the GIL is held; the model is kept alive should another thread close it.
    const std::string copy(text);
    const std::shared_ptr<const bitnet::Model> model = shared();
    py::gil_scoped_release release;
    return model->vocab().tokenize(copy, add_special, parse_special);
  }

  // The pieces of `tokens` concatenated, as llama_token_to_piece renders each (no leading-space
  // rule: llama.py applies llama-cpp-python's).
  py::bytes pieces(const std::vector<Token>& tokens, bool special) const {
    const bitnet::Vocab& v = vocab();
    std::string out;
    for (Token id : tokens) {
      if (id < 0 || id >= v.n_tokens()) {
        throw py::value_error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                              std::to_string(v.n_tokens()) + ")");
      }
      out += v.token_to_piece(id, special);
    }
    return py::bytes(out);
  }

  std::string apply_chat_template(const std::string& name,
                                  const std::vector<std::pair<std::string, std::string>>& turns,
                                  bool add_generation_prompt) const {
    std::vector<bitnet::ChatMessage> messages;
    for (const auto& [role, content] : turns) messages.push_back({role, content});
    return value_or_value_error(bitnet::apply_chat_template(model(), name, messages, add_generation_prompt));
  }

 private:
  std::shared_ptr<const bitnet::Model> model_;
};

class ContextHandle {
 public:
  ContextHandle(const ModelHandle& model, int64_t n_ctx, int threads) : n_vocab_(model.model().n_vocab()) {
    const std::shared_ptr<const bitnet::Model>& shared = model.shared();
    bitnet::Result<std::unique_ptr<bitnet::Context>> ctx = bitnet::Error{};
    {
      py::gil_scoped_release release;  // the JIT backend compiles its kernels here on a cache miss
      ctx = bitnet::Context::create(shared, {.n_ctx = n_ctx, .threads = threads});
    }
    ctx_ = value_or_value_error(std::move(ctx));
  }

  // Decodes `tokens` at positions n_past.. of sequence 0 and returns the logits: one row per
  // token with logits_all, else the last token's row. A context is not synchronised: the mutex
  // keeps a second thread (or close()) out while the GIL is released.
  py::array_t<float> decode(const std::vector<Token>& tokens, int64_t n_past, bool logits_all) {
    if (tokens.empty()) throw py::value_error("no tokens to evaluate");
    bitnet::Batch batch;
    for (size_t i = 0; i < tokens.size(); ++i) {
      batch.add(tokens[i], n_past + static_cast<int64_t>(i), {0}, logits_all || i + 1 == tokens.size());
    }
    const auto rows = static_cast<py::ssize_t>(logits_all ? tokens.size() : 1);
    const auto n_vocab = static_cast<py::ssize_t>(n_vocab_);
    py::array_t<float> out({rows, n_vocab});
    float* into = out.mutable_data();
    py::gil_scoped_release release;
    std::lock_guard lock(mutex_);
    bitnet::Context& ctx = context();
    if (bitnet::Status s = ctx.decode(batch); !s.ok()) throw std::runtime_error(s.error().message);
    for (py::ssize_t r = 0; r < rows; ++r) {
      const std::span<const float> row = ctx.logits(static_cast<int32_t>(r - rows));
      std::copy(row.begin(), row.end(), into + r * n_vocab);
    }
    return out;
  }

  // Forgets positions p0.. of sequence 0 (what llama-cpp-python's kv_cache_seq_rm does).
  bool seq_rm(int64_t p0) {
    std::lock_guard lock(mutex_);
    return context().seq_rm(0, p0, -1);
  }

  int64_t n_ctx() const { return context().n_ctx(); }
  int64_t n_batch() const { return context().n_batch(); }
  int threads() const { return context().threads(); }
  std::string backend() const { return context().backend(); }

  void close() {
    py::gil_scoped_release release;  // waits for a decode on another thread
    std::lock_guard lock(mutex_);
    ctx_.reset();
  }

 private:
  bitnet::Context& context() const {
    if (!ctx_) throw std::runtime_error("the context has been closed");
    return *ctx_;
  }
  std::unique_ptr<bitnet::Context> ctx_;
  int64_t n_vocab_;
  std::mutex mutex_;
};

// A bitnet::Sampler (llama.cpp's chain: repetition, frequency and presence penalties over the
// last tokens it accepted, top-k, top-p, min-p, temperature, a seeded draw) that accepts what
// it samples, as llama_sampler_sample does.
class SamplerHandle {
 public:
  explicit SamplerHandle(const bitnet::SamplerParams& params)
      : sampler_(value_or_value_error(bitnet::Sampler::create(params))) {}

  Token sample(const py::array_t<float, py::array::c_style | py::array::forcecast>& logits) {
    if (logits.ndim() != 1 || logits.size() == 0) throw py::value_error("sample() needs one non-empty row of logits");
    const std::span<const float> row(logits.data(), static_cast<size_t>(logits.size()));
    py::gil_scoped_release release;
    const Token token = sampler_.sample(row);
    sampler_.accept(token);
    return token;
  }

 private:
  bitnet::Sampler sampler_;
};

}  // namespace

PYBIND11_MODULE(_bitnet, m) {
  m.doc() = "BitNet-cxx's public library for the bitnet package (use bitnet.Llama)";
  bitnet::set_log_callback(log_to_stderr);
  m.def("set_verbose", &set_verbose, "library messages to stderr (process-wide)");
  m.def("chat_template_names", &bitnet::chat_template_names);

  py::class_<ModelHandle, std::shared_ptr<ModelHandle>>(m, "Model")
      .def_static("load", &ModelHandle::load, py::arg("path"), py::arg("verbose") = false, py::arg("backend") = "jit")
      .def("close", &ModelHandle::close)
      .def("n_vocab", [](const ModelHandle& self) { return self.model().n_vocab(); })
      .def("n_embd", [](const ModelHandle& self) { return self.model().n_embd(); })
      .def("n_ctx_train", [](const ModelHandle& self) { return self.model().n_ctx_train(); })
      .def("description", [](const ModelHandle& self) { return self.model().description(); })
      .def("metadata", &ModelHandle::metadata)
      .def("token_bos", [](const ModelHandle& self) { return self.vocab().bos(); })
      .def("token_eos", [](const ModelHandle& self) { return self.vocab().eos(); })
      .def("is_eog", [](const ModelHandle& self, Token id) { return self.vocab().is_eog(id); })
      .def("tokenize", &ModelHandle::tokenize, py::arg("text"), py::arg("add_special"), py::arg("parse_special"))
      .def("pieces", &ModelHandle::pieces, py::arg("tokens"), py::arg("special"))
      .def("chat_template_name",
           [](const ModelHandle& self, const std::string& name) {
             return value_or_value_error(bitnet::chat_template_name(self.model(), name));
           })
      .def("apply_chat_template", &ModelHandle::apply_chat_template, py::arg("name"), py::arg("messages"),
           py::arg("add_generation_prompt"));

  py::class_<ContextHandle>(m, "Context")
      .def(py::init<const ModelHandle&, int64_t, int>(), py::arg("model"), py::arg("n_ctx"), py::arg("threads"))
      .def("decode", &ContextHandle::decode, py::arg("tokens"), py::arg("n_past"), py::arg("logits_all"))
      .def("seq_rm", &ContextHandle::seq_rm, py::arg("p0"))
      .def("n_ctx", &ContextHandle::n_ctx)
      .def("n_batch", &ContextHandle::n_batch)
      .def("threads", &ContextHandle::threads)
      .def("backend", &ContextHandle::backend)
      .def("close", &ContextHandle::close);

  py::class_<SamplerHandle>(m, "Sampler")
      .def(py::init([](float temperature, int32_t top_k, float top_p, float min_p, float repeat_penalty,
                       float frequency_penalty, float presence_penalty, int32_t penalty_last_n, uint64_t seed) {
             return SamplerHandle({.temperature = temperature,
                                   .top_k = top_k,
                                   .top_p = top_p,
                                   .min_p = min_p,
                                   .repeat_penalty = repeat_penalty,
                                   .frequency_penalty = frequency_penalty,
                                   .presence_penalty = presence_penalty,
                                   .repeat_last_n = penalty_last_n,
                                   .seed = seed});
           }),
           py::kw_only(), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"), py::arg("min_p"),
           py::arg("repeat_penalty"), py::arg("frequency_penalty"), py::arg("presence_penalty"),
           py::arg("penalty_last_n"), py::arg("seed"))
      .def("sample", &SamplerHandle::sample, py::arg("logits"));
}
