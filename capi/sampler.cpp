// llama.h's samplers: each built-in sampler is a SamplerState behind one shared interface
// table; a chain applies its members in order. The algorithms are llama.cpp's (llama-sampling):
// the same filters on a llama_token_data_array, so a chain written for llama.cpp behaves the
// same here (the draw's random sequence differs: the generator is ours).
#include "capi/handles.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <numeric>
#include <random>
#include <unordered_map>

namespace {

class SamplerState {
 public:
  virtual ~SamplerState() = default;
  virtual const char* name() const = 0;
  virtual void accept(llama_token) {}
  virtual void apply(llama_token_data_array& cur) = 0;
  virtual void reset() {}
  virtual std::unique_ptr<SamplerState> clone() const = 0;
  virtual uint32_t seed() const { return LLAMA_DEFAULT_SEED; }
};

SamplerState* state_of(const llama_sampler* s);
llama_sampler* wrap(std::unique_ptr<SamplerState> state);

llama_sampler_i builtin_interface = {
    .name = [](const llama_sampler* s) { return state_of(s)->name(); },
    .accept = [](llama_sampler* s, llama_token t) { state_of(s)->accept(t); },
    .apply = [](llama_sampler* s, llama_token_data_array* cur) { state_of(s)->apply(*cur); },
    .reset = [](llama_sampler* s) { state_of(s)->reset(); },
    .clone = [](const llama_sampler* s) { return wrap(state_of(s)->clone()); },
    .free = [](llama_sampler* s) { delete state_of(s); },
};

SamplerState* state_of(const llama_sampler* s) {
  return static_cast<SamplerState*>(s->ctx);
}
llama_sampler* wrap(std::unique_ptr<SamplerState> state) {
  return llama_sampler_init(&builtin_interface, state.release());
}
template <class T>
T* builtin(const llama_sampler* s) {
  return s != nullptr && s->iface == &builtin_interface ? dynamic_cast<T*>(state_of(s)) : nullptr;
}

template <class Derived>
class Cloneable : public SamplerState {
 public:
  std::unique_ptr<SamplerState> clone() const override {
    return std::make_unique<Derived>(static_cast<const Derived&>(*this));
  }
};

// ---- helpers on candidate arrays (llama.cpp's llama_sampler_*_impl) --------------------

// The order of a sorted array: descending logit, ties by lower id.
bool better(const llama_token_data& a, const llama_token_data& b) {
  return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
}

void sort_descending(llama_token_data_array& cur) {
  if (cur.sorted) return;
  std::sort(cur.data, cur.data + cur.size, better);
  cur.sorted = true;
}

// The index of the highest logit, the first of equal ones; 0 for an empty array.
size_t argmax(const llama_token_data_array& cur) {
  size_t best = 0;
  for (size_t i = 1; i < cur.size; ++i) {
    if (cur.data[i].logit > cur.data[best].logit) best = i;
  }
  return best;
}

// -sum(p log p) of the probabilities softmax() wrote.
double entropy(const llama_token_data_array& cur) {
  double h = 0;
  for (size_t i = 0; i < cur.size; ++i) {
    if (cur.data[i].p > 0) h -= cur.data[i].p * std::log(cur.data[i].p);
  }
  return h;
}

// p = softmax(logit), sorted by descending logit.
void softmax(llama_token_data_array& cur) {
  if (cur.size == 0) return;
  sort_descending(cur);
  const float max_logit = cur.data[0].logit;
  double sum = 0;
  for (size_t i = 0; i < cur.size; ++i) {
    cur.data[i].p = std::exp(cur.data[i].logit - max_logit);
    sum += cur.data[i].p;
  }
  for (size_t i = 0; i < cur.size; ++i) cur.data[i].p = static_cast<float>(cur.data[i].p / sum);
}

void keep_top_k(llama_token_data_array& cur, int32_t k) {
  if (k <= 0 || cur.size == 0) return;
  const size_t keep = std::min(static_cast<size_t>(k), cur.size);
  if (!cur.sorted) {
    std::partial_sort(cur.data, cur.data + keep, cur.data + cur.size, better);
    cur.sorted = true;
  }
  cur.size = keep;
}

// ---- the samplers ------------------------------------------------------------------

class Greedy : public Cloneable<Greedy> {
 public:
  const char* name() const override { return "greedy"; }
  void apply(llama_token_data_array& cur) override {
    cur.selected = cur.size > 0 ? static_cast<int64_t>(argmax(cur)) : -1;
  }
};

class Dist : public Cloneable<Dist> {
 public:
  explicit Dist(uint32_t seed) : seed_(seed) { reset(); }
  const char* name() const override { return "dist"; }
  void apply(llama_token_data_array& cur) override {
    if (cur.size == 0) {
      cur.selected = -1;
      return;
    }
    softmax(cur);
    std::vector<float> p(cur.size);
    for (size_t i = 0; i < cur.size; ++i) p[i] = cur.data[i].p;
    std::discrete_distribution<size_t> pick(p.begin(), p.end());
    cur.selected = static_cast<int64_t>(pick(rng_));
  }
  void reset() override {
    used_seed_ = seed_ == LLAMA_DEFAULT_SEED ? std::random_device{}() : seed_;
    rng_.seed(used_seed_);
  }
  uint32_t seed() const override { return used_seed_; }

 private:
  uint32_t seed_;
  uint32_t used_seed_ = 0;
  std::mt19937 rng_;
};

class TopK : public Cloneable<TopK> {
 public:
  explicit TopK(int32_t k) : k_(k) {}
  const char* name() const override { return "top-k"; }
  void apply(llama_token_data_array& cur) override { keep_top_k(cur, k_); }

 private:
  int32_t k_;
};

class TopP : public Cloneable<TopP> {
 public:
  TopP(float p, size_t min_keep) : p_(p), min_keep_(min_keep) {}
  const char* name() const override { return "top-p"; }
  void apply(llama_token_data_array& cur) override {
    if (p_ >= 1.0f || cur.size == 0) return;
    softmax(cur);
    double sum = 0;
    size_t keep = cur.size;
    for (size_t i = 0; i < cur.size; ++i) {
      sum += cur.data[i].p;
      if (sum >= p_ && i + 1 >= min_keep_) {
        keep = i + 1;
        break;
      }
    }
    cur.size = keep;
  }

 private:
  float p_;
  size_t min_keep_;
};

class MinP : public Cloneable<MinP> {
 public:
  MinP(float p, size_t min_keep) : p_(p), min_keep_(min_keep) {}
  const char* name() const override { return "min-p"; }
  void apply(llama_token_data_array& cur) override {
    if (p_ <= 0.0f || cur.size == 0) return;
    sort_descending(cur);
    const float min_logit = cur.data[0].logit + std::log(p_);
    size_t keep = 1;
    while (keep < cur.size && cur.data[keep].logit >= min_logit) ++keep;
    cur.size = std::max(keep, std::min(min_keep_, cur.size));
  }

 private:
  float p_;
  size_t min_keep_;
};

// Locally typical sampling: keep the tokens whose surprise is closest to the entropy.
class Typical : public Cloneable<Typical> {
 public:
  Typical(float p, size_t min_keep) : p_(p), min_keep_(min_keep) {}
  const char* name() const override { return "typical"; }
  void apply(llama_token_data_array& cur) override {
    if (p_ >= 1.0f || cur.size == 0) return;
    softmax(cur);
    const double h = entropy(cur);
    std::vector<double> shift(cur.size);
    for (size_t i = 0; i < cur.size; ++i) shift[i] = std::fabs(-std::log(cur.data[i].p) - h);
    std::vector<size_t> order(cur.size);
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return shift[a] < shift[b]; });
    double sum = 0;
    size_t keep = order.size();
    for (size_t i = 0; i < order.size(); ++i) {
      sum += cur.data[order[i]].p;
      if (sum > p_ && i + 1 >= min_keep_) {
        keep = i + 1;
        break;
      }
    }
    std::vector<llama_token_data> kept;
    for (size_t i = 0; i < keep; ++i) kept.push_back(cur.data[order[i]]);
    std::copy(kept.begin(), kept.end(), cur.data);
    cur.size = keep;
    cur.sorted = false;
  }

 private:
  float p_;
  size_t min_keep_;
};

void apply_temperature(llama_token_data_array& cur, float t) {
  if (t <= 0.0f) {  // only the most likely token survives
    const size_t best = argmax(cur);
    for (size_t i = 0; i < cur.size; ++i) {
      if (i != best) cur.data[i].logit = -std::numeric_limits<float>::infinity();
    }
    return;
  }
  for (size_t i = 0; i < cur.size; ++i) cur.data[i].logit /= t;
}

class Temp : public Cloneable<Temp> {
 public:
  explicit Temp(float t) : t_(t) {}
  const char* name() const override { return "temp"; }
  void apply(llama_token_data_array& cur) override { apply_temperature(cur, t_); }

 private:
  float t_;
};

// Dynamic temperature: the temperature moves in [t - delta, t + delta] with the normalised
// entropy of the distribution raised to `exponent`.
class TempExt : public Cloneable<TempExt> {
 public:
  TempExt(float t, float delta, float exponent) : t_(t), delta_(delta), exponent_(exponent) {}
  const char* name() const override { return "temp-ext"; }
  void apply(llama_token_data_array& cur) override {
    if (delta_ <= 0.0f || cur.size <= 1) {
      apply_temperature(cur, t_);
      return;
    }
    const float min_t = std::max(0.0f, t_ - delta_), max_t = t_ + delta_;
    softmax(cur);
    const double normalised = entropy(cur) / std::log(static_cast<double>(cur.size));
    const auto t = static_cast<float>(min_t + (max_t - min_t) * std::pow(normalised, exponent_));
    apply_temperature(cur, t);
    softmax(cur);
  }

 private:
  float t_, delta_, exponent_;
};

// Repetition, frequency and presence penalties over the last `last_n` accepted tokens.
class Penalties : public Cloneable<Penalties> {
 public:
  Penalties(int32_t last_n, float repeat, float freq, float present)
      : last_n_(static_cast<size_t>(std::max(last_n, 0))), repeat_(repeat), freq_(freq), present_(present) {}
  const char* name() const override { return "penalties"; }
  void accept(llama_token token) override {
    if (last_n_ == 0) return;
    recent_.push_back(token);
    if (recent_.size() > last_n_) recent_.pop_front();
  }
  void apply(llama_token_data_array& cur) override {
    if (last_n_ == 0 || (repeat_ == 1.0f && freq_ == 0.0f && present_ == 0.0f) || recent_.empty()) return;
    std::unordered_map<llama_token, int> count;
    for (llama_token t : recent_) ++count[t];
    for (size_t i = 0; i < cur.size; ++i) {
      auto it = count.find(cur.data[i].id);
      if (it == count.end()) continue;
      float& logit = cur.data[i].logit;
      logit = logit <= 0 ? logit * repeat_ : logit / repeat_;
      logit -= static_cast<float>(it->second) * freq_ + present_;
    }
    cur.sorted = false;
  }
  void reset() override { recent_.clear(); }

 private:
  size_t last_n_;
  float repeat_, freq_, present_;
  std::deque<llama_token> recent_;
};

class LogitBias : public Cloneable<LogitBias> {
 public:
  explicit LogitBias(std::vector<llama_logit_bias> biases) : biases_(std::move(biases)) {}
  const char* name() const override { return "logit-bias"; }
  void apply(llama_token_data_array& cur) override {
    for (const llama_logit_bias& b : biases_) {
      // The usual array is the whole vocabulary in id order: index directly.
      if (b.token >= 0 && static_cast<size_t>(b.token) < cur.size && cur.data[b.token].id == b.token) {
        cur.data[b.token].logit += b.bias;
        continue;
      }
      for (size_t i = 0; i < cur.size; ++i) {
        if (cur.data[i].id == b.token) cur.data[i].logit += b.bias;
      }
    }
    cur.sorted = false;
  }

 private:
  std::vector<llama_logit_bias> biases_;
};

class Chain : public SamplerState {
 public:
  explicit Chain(bool measure) : measure_(measure) {}
  Chain(const Chain&) = delete;
  ~Chain() override {
    for (llama_sampler* s : members_) llama_sampler_free(s);
  }
  const char* name() const override { return "chain"; }
  void accept(llama_token token) override {
    for (llama_sampler* s : members_) llama_sampler_accept(s, token);
  }
  void apply(llama_token_data_array& cur) override {
    for (llama_sampler* s : members_) llama_sampler_apply(s, &cur);
  }
  void reset() override {
    for (llama_sampler* s : members_) llama_sampler_reset(s);
    sample_ms = 0;
    n_sample = 0;
  }
  std::unique_ptr<SamplerState> clone() const override {
    auto copy = std::make_unique<Chain>(measure_);
    for (llama_sampler* s : members_) copy->members_.push_back(llama_sampler_clone(s));
    return copy;
  }
  uint32_t seed() const override {
    for (auto it = members_.rbegin(); it != members_.rend(); ++it) {
      if (uint32_t seed = llama_sampler_get_seed(*it); seed != LLAMA_DEFAULT_SEED) return seed;
    }
    return LLAMA_DEFAULT_SEED;
  }

  std::vector<llama_sampler*> members_;
  bool measure_;
  double sample_ms = 0;
  int32_t n_sample = 0;
};

}  // namespace

extern "C" {

llama_sampler_chain_params llama_sampler_chain_default_params(void) {
  return {.no_perf = true};
}

llama_sampler* llama_sampler_init(llama_sampler_i* iface, llama_sampler_context_t ctx) {
  return new llama_sampler{iface, ctx};
}
const char* llama_sampler_name(const llama_sampler* smpl) {
  if (smpl == nullptr || smpl->iface->name == nullptr) return "(custom)";
  return smpl->iface->name(smpl);
}
void llama_sampler_accept(llama_sampler* smpl, llama_token token) {
  if (smpl != nullptr && smpl->iface->accept != nullptr) smpl->iface->accept(smpl, token);
}
void llama_sampler_apply(llama_sampler* smpl, llama_token_data_array* cur_p) {
  if (smpl == nullptr || cur_p == nullptr) return;
  smpl->iface->apply(smpl, cur_p);
}
void llama_sampler_reset(llama_sampler* smpl) {
  if (smpl != nullptr && smpl->iface->reset != nullptr) smpl->iface->reset(smpl);
}
llama_sampler* llama_sampler_clone(const llama_sampler* smpl) {
  if (smpl == nullptr) return nullptr;
  if (smpl->iface->clone != nullptr) return smpl->iface->clone(smpl);
  if (smpl->ctx == nullptr) return llama_sampler_init(smpl->iface, nullptr);  // stateless
  capi::log_error("llama_sampler_clone: the sampler '{}' cannot be cloned", llama_sampler_name(smpl));
  return nullptr;
}
void llama_sampler_free(llama_sampler* smpl) {
  if (smpl == nullptr) return;
  if (smpl->iface->free != nullptr) smpl->iface->free(smpl);
  delete smpl;
}

llama_sampler* llama_sampler_chain_init(llama_sampler_chain_params params) {
  return wrap(std::make_unique<Chain>(!params.no_perf));
}
void llama_sampler_chain_add(llama_sampler* chain, llama_sampler* smpl) {
  Chain* c = builtin<Chain>(chain);
  if (c == nullptr || smpl == nullptr) {
    capi::log_error("llama_sampler_chain_add: {}", c == nullptr ? "not a sampler chain" : "NULL sampler");
    return;
  }
  c->members_.push_back(smpl);
}
llama_sampler* llama_sampler_chain_get(llama_sampler* chain, int32_t i) {
  Chain* c = builtin<Chain>(chain);
  if (c == nullptr) return nullptr;
  if (i == -1) return chain;
  if (i < 0 || static_cast<size_t>(i) >= c->members_.size()) return nullptr;
  return c->members_[static_cast<size_t>(i)];
}
int llama_sampler_chain_n(const llama_sampler* chain) {
  const Chain* c = builtin<Chain>(chain);
  return c != nullptr ? static_cast<int>(c->members_.size()) : 0;
}
llama_sampler* llama_sampler_chain_remove(llama_sampler* chain, int32_t i) {
  Chain* c = builtin<Chain>(chain);
  if (c == nullptr || i < 0 || static_cast<size_t>(i) >= c->members_.size()) return nullptr;
  llama_sampler* removed = c->members_[static_cast<size_t>(i)];
  c->members_.erase(c->members_.begin() + i);
  return removed;
}

llama_sampler* llama_sampler_init_greedy(void) {
  return wrap(std::make_unique<Greedy>());
}
llama_sampler* llama_sampler_init_dist(uint32_t seed) {
  return wrap(std::make_unique<Dist>(seed));
}
llama_sampler* llama_sampler_init_top_k(int32_t k) {
  return wrap(std::make_unique<TopK>(k));
}
llama_sampler* llama_sampler_init_top_p(float p, size_t min_keep) {
  return wrap(std::make_unique<TopP>(p, min_keep));
}
llama_sampler* llama_sampler_init_min_p(float p, size_t min_keep) {
  return wrap(std::make_unique<MinP>(p, min_keep));
}
llama_sampler* llama_sampler_init_typical(float p, size_t min_keep) {
  return wrap(std::make_unique<Typical>(p, min_keep));
}
llama_sampler* llama_sampler_init_temp(float t) {
  return wrap(std::make_unique<Temp>(t));
}
llama_sampler* llama_sampler_init_temp_ext(float t, float delta, float exponent) {
  return wrap(std::make_unique<TempExt>(t, delta, exponent));
}
llama_sampler* llama_sampler_init_penalties(int32_t penalty_last_n, float penalty_repeat, float penalty_freq,
                                            float penalty_present) {
  return wrap(std::make_unique<Penalties>(penalty_last_n, penalty_repeat, penalty_freq, penalty_present));
}
llama_sampler* llama_sampler_init_logit_bias(int32_t /*n_vocab: the array says which tokens exist*/,
                                             int32_t n_logit_bias, const llama_logit_bias* logit_bias) {
  std::vector<llama_logit_bias> biases;
  if (n_logit_bias > 0 && logit_bias != nullptr) biases.assign(logit_bias, logit_bias + n_logit_bias);
  return wrap(std::make_unique<LogitBias>(std::move(biases)));
}

uint32_t llama_sampler_get_seed(const llama_sampler* smpl) {
  if (smpl == nullptr || smpl->iface != &builtin_interface) return LLAMA_DEFAULT_SEED;
  return state_of(smpl)->seed();
}

llama_token llama_sampler_sample(llama_sampler* smpl, llama_context* ctx, int32_t idx) {
  llama_context* c = capi::checked(ctx, "llama_sampler_sample");
  if (c == nullptr) return LLAMA_TOKEN_NULL;
  if (smpl == nullptr) {
    capi::log_error("llama_sampler_sample: NULL sampler");
    return LLAMA_TOKEN_NULL;
  }
  const float* logits = llama_get_logits_ith(c, idx);
  if (logits == nullptr) return LLAMA_TOKEN_NULL;
  const auto start = std::chrono::steady_clock::now();
  const auto n_vocab = static_cast<size_t>(c->engine->model().n_vocab());
  c->candidates.resize(n_vocab);
  for (size_t id = 0; id < n_vocab; ++id) c->candidates[id] = {static_cast<llama_token>(id), logits[id], 0.0f};
  llama_token_data_array cur{c->candidates.data(), n_vocab, -1, false};
  llama_sampler_apply(smpl, &cur);
  if (cur.selected < 0 || static_cast<size_t>(cur.selected) >= cur.size) {
    capi::log_error("llama_sampler_sample: the sampler selected no token (end the chain with greedy or dist)");
    return LLAMA_TOKEN_NULL;
  }
  const llama_token token = cur.data[cur.selected].id;
  llama_sampler_accept(smpl, token);
  if (Chain* chain = builtin<Chain>(smpl); chain != nullptr && chain->measure_) {
    chain->sample_ms += capi::elapsed_ms(start);
    chain->n_sample += 1;
  }
  return token;
}

llama_perf_sampler_data llama_perf_sampler(const llama_sampler* chain) {
  const Chain* c = builtin<Chain>(chain);
  if (c == nullptr) return {};
  return {c->sample_ms, std::max(1, c->n_sample)};
}
void llama_perf_sampler_print(const llama_sampler* chain) {
  const Chain* c = builtin<Chain>(chain);
  if (c == nullptr) {
    capi::log_error("llama_perf_sampler_print: not a sampler chain");
    return;
  }
  const llama_perf_sampler_data d = llama_perf_sampler(chain);
  capi::log_info(
      "llama_perf_sampler_print:    sampling time = {:10.2f} ms / {:5} runs   ({:8.2f} ms per token, "
      "{:8.2f} tokens per second)",
      d.t_sample_ms, d.n_sample, d.t_sample_ms / d.n_sample, 1e3 / d.t_sample_ms * d.n_sample);
}
void llama_perf_sampler_reset(llama_sampler* chain) {
  if (Chain* c = builtin<Chain>(chain)) {
    c->sample_ms = 0;
    c->n_sample = 0;
  }
}

}  // extern "C"
