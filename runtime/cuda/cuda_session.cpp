// CUDA sessions (see cuda_session.h).
#include "runtime/cuda/cuda_session.h"

#include <algorithm>
#include <cstring>

#include "runtime/kv_shift.h"

namespace bitnet::runtime::cuda {

namespace {

std::string weight_key(const CudaBuffer& b) {
  return b.name + "/" + std::to_string(b.bytes);
}

}  // namespace

CudaBackend::~CudaBackend() {
  for (const auto& [key, p] : weights_) device_->release(p);
}

Expected<int> CudaBackend::load(const std::shared_ptr<const CudaProgram>& program) {
  for (const auto& [p, module] : modules_) {
    if (p == program) return module;
  }
  BITNET_RETURN_IF_ERROR(program->check());
  for (size_t i = 0; i < program->buffers.size(); ++i) {
    const CudaBuffer& b = program->buffers[i];
    if (b.kind != BufferKind::kWeight || weights_.count(weight_key(b))) continue;
    auto bytes = program->weight_bytes(static_cast<int>(i));
    if (!bytes.ok()) return make_error("CUDA weights {}: {}", b.name, bytes.error().message);
    if (static_cast<int64_t>(bytes->size()) != b.bytes) {
      return make_error("CUDA weights {}: {} bytes made for a buffer of {}", b.name, bytes->size(), b.bytes);
    }
    auto p = device_->alloc(b.bytes);
    if (!p.ok()) return make_error("CUDA weights {} ({} bytes): {}", b.name, b.bytes, p.error().message);
    weights_[weight_key(b)] = *p;
    weight_bytes_ += b.bytes;
    BITNET_RETURN_IF_ERROR(device_->upload(*p, bytes->data(), b.bytes));
  }
  BITNET_ASSIGN_OR_RETURN(const int module, device_->load_module(program->image()));
  modules_.emplace_back(program, module);
  return module;
}

DevicePtr CudaBackend::weight(const CudaProgram& program, int buffer) const {
  auto it = weights_.find(weight_key(program.buffers[static_cast<size_t>(buffer)]));
  return it == weights_.end() ? 0 : it->second;
}

Expected<std::unique_ptr<CudaSession>> CudaSession::create(std::shared_ptr<CudaBackend> backend,
                                                           std::shared_ptr<const CudaProgram> program,
                                                           const CudaSessionOptions& options) {
  if (options.n_seq < 1) return make_error("n_seq_max must be at least 1");
  if (options.n_ctx < options.n_seq) {
    return make_error("a context of {} cells cannot hold {} sequences", options.n_ctx, options.n_seq);
  }
  if (options.n_ctx / options.n_seq > program->n_ctx) {
    return make_error("{} cells per sequence; the CUDA program was specialised to {}", options.n_ctx / options.n_seq,
                      program->n_ctx);
  }
  std::unique_ptr<CudaSession> session(new CudaSession(std::move(backend), std::move(program), options));
  Status allocated;
  {
    std::lock_guard lock(session->backend_->mutex());
    allocated = session->allocate();
  }
  if (!allocated.ok()) return allocated.error();  // the destructor (which locks) frees what was allocated
  return session;
}

CudaSession::CudaSession(std::shared_ptr<CudaBackend> backend, std::shared_ptr<const CudaProgram> program,
                         const CudaSessionOptions& options)
    : SequenceSession(options.n_seq, options.n_ctx, options.max_batch, program->n_vocab),
      backend_(std::move(backend)),
      program_(std::move(program)),
      options_(options) {}

CudaSession::~CudaSession() {
  std::lock_guard lock(backend_->mutex());
  Device& d = backend_->device();
  for (int g : graphs_) {
    if (g >= 0) d.destroy_graph(g);
  }
  for (const auto& [shape, g] : batch_graphs_) d.destroy_graph(g);
  for (DevicePtr p : owned_) d.release(p);
}

Status CudaSession::allocate() {
  Device& d = backend_->device();
  BITNET_ASSIGN_OR_RETURN(module_, backend_->load(program_));
  const CudaProgram& p = *program_;
  const size_t n_buffers = p.buffers.size();
  shared_.assign(n_buffers, 0);
  state_.assign(static_cast<size_t>(options_.n_seq), std::vector<DevicePtr>(n_buffers, 0));
  graphs_.assign(static_cast<size_t>(options_.n_seq), -1);
  auto own = [&](int64_t bytes) -> Expected<DevicePtr> {
    auto q = d.alloc(bytes);
    if (!q.ok()) return make_error("CUDA session ({} bytes): {}", bytes, q.error().message);
    owned_.push_back(*q);
    // Zeroed so that nothing reads stale memory (the kernels read only what a step wrote).
    BITNET_RETURN_IF_ERROR(d.fill_zero(*q, bytes));
    return *q;
  };
  for (size_t i = 0; i < n_buffers; ++i) {
    const CudaBuffer& b = p.buffers[i];
    switch (b.kind) {
      case BufferKind::kWeight:
        shared_[i] = backend_->weight(p, static_cast<int>(i));
        if (shared_[i] == 0) return make_error("CUDA session: weights {} are not on the device", b.name);
        break;
      case BufferKind::kState: {
        // One allocation, a region per sequence: a batched step's kernels find sequence s's
        // cells at s regions from the first.
        BITNET_ASSIGN_OR_RETURN(const DevicePtr base, own(b.bytes * options_.n_seq));
        for (size_t seq = 0; seq < state_.size(); ++seq) state_[seq][i] = base + seq * static_cast<uint64_t>(b.bytes);
        break;
      }
      default:
        BITNET_ASSIGN_OR_RETURN(shared_[i], own(b.bytes));
        break;
    }
  }
  return Status::success();
}

DevicePtr CudaSession::pointer(int32_t seq, int buffer) const {
  if (buffer < 0) return 0;
  const auto i = static_cast<size_t>(buffer);
  return program_->buffers[i].kind == BufferKind::kState ? state_[static_cast<size_t>(seq)][i] : shared_[i];
}

DevicePtr CudaSession::k_cache(int32_t seq, size_t layer) const {
  return pointer(seq, program_->kv[layer].k_buffer);
}
DevicePtr CudaSession::v_cache(int32_t seq, size_t layer) const {
  return pointer(seq, program_->kv[layer].v_buffer);
}

Status CudaSession::launch_step(int32_t seq) {
  Device& d = backend_->device();
  const CudaProgram& p = *program_;
  for (const CudaLaunch& l : p.launches) {
    args_.clear();
    for (int a : l.args) args_.push_back(KernelArg::ptr(pointer(seq, a)));
    if (l.n_tokens_arg) args_.push_back(KernelArg::int32(1));
    if (auto s = d.launch(module_, l.kernel, l.grid, l.threads, args_, p.programmatic_launch); !s.ok()) {
      return make_error("CUDA launch {}: {}", l.label, s.error().message);
    }
  }
  return Status::success();
}

Status CudaSession::launch_batch(int64_t n, int64_t n_out) {
  Device& d = backend_->device();
  const CudaProgram& p = *program_;
  for (const CudaLaunch& l : p.batch_launches) {
    const int64_t count = l.tokens == LaunchTokens::kOutputs ? n_out : n;
    if (count == 0) continue;  // no row wants logits: the final norm and the LM head do not run
    args_.clear();
    // K/V caches: the first sequence's region; the kernels add each token's sequence.
    for (int a : l.args) args_.push_back(KernelArg::ptr(pointer(0, a)));
    if (l.n_tokens_arg) args_.push_back(KernelArg::int32(static_cast<int32_t>(count)));
    if (auto s = d.launch(module_, l.kernel, launch_grid(l, count), l.threads, args_, p.programmatic_launch); !s.ok()) {
      return make_error("CUDA launch {}: {}", l.label, s.error().message);
    }
  }
  return Status::success();
}

// The batched launches read their inputs from the session's buffers and find every sequence's
// cells from the first region, so one graph per shape serves every step of that shape.
Status CudaSession::batch_step(int64_t n, int64_t n_out) {
  Device& d = backend_->device();
  if (!options_.use_graphs || !d.info().graphs) return launch_batch(n, n_out);
  const std::pair<int64_t, int64_t> shape(n, n_out);
  if (auto it = batch_graphs_.find(shape); it != batch_graphs_.end()) return d.replay(it->second);
  if (++batch_uses_[shape] < 2 || batch_graphs_.size() >= kMaxBatchGraphs) return launch_batch(n, n_out);
  BITNET_ASSIGN_OR_RETURN(const int graph, d.capture([&] { return launch_batch(n, n_out); }));
  batch_graphs_[shape] = graph;
  return d.replay(graph);
}

Status CudaSession::step(int32_t seq, int32_t token, int64_t pos) {
  Device& d = backend_->device();
  const CudaProgram& p = *program_;
  const auto pos32 = static_cast<int32_t>(pos);
  BITNET_RETURN_IF_ERROR(d.upload(shared_[static_cast<size_t>(p.token_buffer)], &token, 4));
  BITNET_RETURN_IF_ERROR(d.upload(shared_[static_cast<size_t>(p.pos_buffer)], &pos32, 4));
  if (!options_.use_graphs || !d.info().graphs) return launch_step(seq);
  int& graph = graphs_[static_cast<size_t>(seq)];
  if (graph < 0) {
    BITNET_ASSIGN_OR_RETURN(graph, d.capture([&] { return launch_step(seq); }));
  }
  return d.replay(graph);
}

Status CudaSession::run_layout(const BatchLayout& layout, Outputs& out) {
  std::lock_guard lock(backend_->mutex());
  if (!failed_.ok()) return failed_;
  Device& d = backend_->device();
  const CudaProgram& p = *program_;
  const int64_t n_rows = options_.all_logits ? layout.n_rows() : static_cast<int64_t>(layout.selected.size());
  Matrix& logits = out["logits"];
  logits.rows = n_rows;
  logits.cols = p.n_vocab;
  logits.data.resize(static_cast<size_t>(n_rows * p.n_vocab));
  const DevicePtr device_logits = shared_[static_cast<size_t>(p.logits_buffer)];
  if (!p.batch_launches.empty() && layout.n_rows() > 1) return run_batched(layout, logits);
  size_t next_selected = 0;
  for (const SequenceRows& g : layout.groups) {
    for (int64_t i = 0; i < g.n; ++i) {
      const int64_t row = g.row0 + i;
      const Status s = step(g.seq, layout.tokens[static_cast<size_t>(row)], g.pos0 + i);
      if (!s.ok()) {
        // The device may hold a partial step: this session's K/V cells are no longer trusted.
        failed_ = make_error("the CUDA device failed: {}", s.error().message);
        return failed_;
      }
      int64_t out_row = -1;
      if (options_.all_logits) {
        out_row = row;
      } else if (next_selected < layout.selected.size() && layout.selected[next_selected] == row) {
        out_row = static_cast<int64_t>(next_selected++);
      }
      if (out_row < 0) continue;
      if (auto s2 = d.download(logits.data.data() + out_row * p.n_vocab, device_logits, p.n_vocab * 4); !s2.ok()) {
        failed_ = make_error("the CUDA device failed: {}", s2.error().message);
        return failed_;
      }
    }
  }
  return Status::success();
}

// The layout's tokens in steps of up to max_tokens (any sequences mixed): inputs uploaded, the
// batched launches run, the wanted rows' logits downloaded in one copy per step.
Status CudaSession::run_batched(const BatchLayout& layout, Matrix& logits) {
  Device& d = backend_->device();
  const CudaProgram& p = *program_;
  const int64_t total = layout.n_rows();
  // Each row's logits row, or -1; they ascend with the rows, so a step's rows are consecutive.
  std::vector<int64_t> out_row(static_cast<size_t>(total), -1);
  if (options_.all_logits) {
    for (int64_t r = 0; r < total; ++r) out_row[static_cast<size_t>(r)] = r;
  } else {
    for (size_t k = 0; k < layout.selected.size(); ++k)
      out_row[static_cast<size_t>(layout.selected[k])] = static_cast<int64_t>(k);
  }
  // Per row: its sequence and position, and the reference's mode as the CPU engines run a
  // sequence's rows of one call (whatever steps the call is split into): prompt-mode attention
  // where the sequence has two or more tokens in the call, the prompt-mode F16 LM head where it
  // has two or more wanted rows.
  std::vector<int32_t> seq(static_cast<size_t>(total)), pos(static_cast<size_t>(total));
  std::vector<int32_t> prompt(static_cast<size_t>(total)), head_prompt(static_cast<size_t>(total));
  for (const SequenceRows& g : layout.groups) {
    int64_t wanted = 0;
    for (int64_t i = 0; i < g.n; ++i) wanted += out_row[static_cast<size_t>(g.row0 + i)] >= 0;
    for (int64_t i = 0; i < g.n; ++i) {
      const auto r = static_cast<size_t>(g.row0 + i);
      seq[r] = g.seq;
      pos[r] = static_cast<int32_t>(g.pos0 + i);
      prompt[r] = g.n >= 2 ? 1 : 0;
      head_prompt[r] = wanted >= 2 ? 1 : 0;
    }
  }
  auto buffer = [&](int index) { return shared_[static_cast<size_t>(index)]; };
  std::vector<int32_t> rows, rows_prompt;
  for (int64_t r0 = 0; r0 < total; r0 += p.max_tokens) {
    const int64_t n = std::min<int64_t>(p.max_tokens, total - r0);
    rows.clear();
    rows_prompt.clear();
    int64_t first_out = -1;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t o = out_row[static_cast<size_t>(r0 + i)];
      if (o < 0) continue;
      if (first_out < 0) first_out = o;
      rows.push_back(static_cast<int32_t>(i));
      rows_prompt.push_back(head_prompt[static_cast<size_t>(r0 + i)]);
    }
    const auto n_out = static_cast<int64_t>(rows.size());
    Status s = d.upload(buffer(p.token_buffer), layout.tokens.data() + r0, n * 4);
    if (s.ok()) s = d.upload(buffer(p.pos_buffer), pos.data() + r0, n * 4);
    if (s.ok()) s = d.upload(buffer(p.seq_buffer), seq.data() + r0, n * 4);
    if (s.ok() && p.prompt_buffer >= 0) s = d.upload(buffer(p.prompt_buffer), prompt.data() + r0, n * 4);
    if (s.ok() && n_out > 0) s = d.upload(buffer(p.rows_buffer), rows.data(), n_out * 4);
    if (s.ok() && n_out > 0 && p.head_prompt_buffer >= 0) {
      s = d.upload(buffer(p.head_prompt_buffer), rows_prompt.data(), n_out * 4);
    }
    if (s.ok()) s = batch_step(n, n_out);
    if (s.ok() && n_out > 0) {
      s = d.download(logits.data.data() + first_out * p.n_vocab, buffer(p.logits_buffer), n_out * p.n_vocab * 4);
    }
    if (!s.ok()) {
      // The device may hold a partial step: this session's K/V cells are no longer trusted.
      failed_ = make_error("the CUDA device failed: {}", s.error().message);
      return failed_;
    }
  }
  return Status::success();
}

// Cells [p0, p1) of every layer: K rows are contiguous; V is transposed ([n_embd_kv][cells]),
// so its cells are a column range of each of its rows.
void CudaSession::copy_cells(int32_t from_seq, int32_t to_seq, int64_t p0, int64_t p1) {
  std::lock_guard lock(backend_->mutex());
  if (!failed_.ok() || p1 <= p0) return;
  Device& d = backend_->device();
  const CudaProgram& p = *program_;
  const int64_t row = p.n_embd_kv * 2, pitch = p.n_ctx * 2;
  for (size_t layer = 0; layer < p.kv.size(); ++layer) {
    Status s = d.copy(k_cache(to_seq, layer) + p0 * row, k_cache(from_seq, layer) + p0 * row, (p1 - p0) * row);
    if (s.ok()) {
      s = d.copy_2d(v_cache(to_seq, layer) + p0 * 2, pitch, v_cache(from_seq, layer) + p0 * 2, pitch, (p1 - p0) * 2,
                    p.n_embd_kv);
    }
    if (!s.ok()) {
      failed_ = make_error("the CUDA device failed copying K/V cells: {}", s.error().message);
      return;
    }
  }
}

// Cells move down within a region (to < from); each moved key is rotated by the shift on the
// host (kv_shift.h, as the CPU backends do: the same bits), values go through a scratch copy
// because the ranges may overlap.
void CudaSession::move_cells(int32_t seq, int64_t from, int64_t to, int64_t n) {
  std::lock_guard lock(backend_->mutex());
  if (!failed_.ok() || n <= 0) return;
  Device& d = backend_->device();
  const CudaProgram& p = *program_;
  const int64_t row = p.n_embd_kv * 2, pitch = p.n_ctx * 2;
  const KeyRotation rotation{.rotated = true,
                             .neox = true,
                             .freq_base = p.rope_freq_base,
                             .freq_scale = p.rope_freq_scale,
                             .head_dim = p.head_dim};
  std::vector<uint16_t> keys(static_cast<size_t>(n * p.n_embd_kv));
  auto scratch = d.alloc(n * row);
  Status s = scratch.ok() ? Status::success() : Status(scratch.error());
  for (size_t layer = 0; layer < p.kv.size() && s.ok(); ++layer) {
    s = d.download(keys.data(), k_cache(seq, layer) + from * row, n * row);
    if (!s.ok()) break;
    for (int64_t head = 0; head < n * p.n_embd_kv / p.head_dim; ++head) {
      rotate_key(keys.data() + head * p.head_dim, rotation, to - from);
    }
    s = d.upload(k_cache(seq, layer) + to * row, keys.data(), n * row);
    if (s.ok()) s = d.copy_2d(*scratch, n * 2, v_cache(seq, layer) + from * 2, pitch, n * 2, p.n_embd_kv);
    if (s.ok()) s = d.copy_2d(v_cache(seq, layer) + to * 2, pitch, *scratch, n * 2, n * 2, p.n_embd_kv);
  }
  if (scratch.ok()) d.release(*scratch);
  if (!s.ok()) failed_ = make_error("the CUDA device failed shifting K/V cells: {}", s.error().message);
}

void install_cuda_sessions(Model& model, std::shared_ptr<CudaBackend> backend, CudaProgramFor program_for,
                           bool use_graphs) {
  model.set_session_factory([backend = std::move(backend), program_for = std::move(program_for),
                             use_graphs](const SessionOptions& s) -> Expected<std::unique_ptr<Session>> {
    if (s.n_seq_max < 1) return make_error("n_seq_max must be at least 1");
    BITNET_ASSIGN_OR_RETURN(std::shared_ptr<const CudaProgram> program, program_for(s.n_ctx / s.n_seq_max));
    BITNET_ASSIGN_OR_RETURN(
        auto session,
        CudaSession::create(
            backend, std::move(program),
            {.n_seq = s.n_seq_max, .n_ctx = s.n_ctx, .all_logits = s.all_logits, .use_graphs = use_graphs}));
    return std::unique_ptr<Session>(std::move(session));
  });
  model.set_device_backend("cuda");
}

}  // namespace bitnet::runtime::cuda
