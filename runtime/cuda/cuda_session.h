// The CUDA backend's sessions. A CudaBackend belongs to a model: the device, and the model's
// weights uploaded once and shared by every session (and by programs specialised to different
// context sizes). A CudaSession is a SequenceSession (session.h) whose tokens run as CudaProgram
// steps, each sequence with its own K/V cells in device memory (one region per sequence in one allocation per layer). A
// call of one token runs the one-token step, captured once per sequence as a graph and replayed where the device has
// graphs; a call of several tokens (a prompt, a token of each of several sequences) runs them as
// batched steps of up to CudaProgram::max_tokens tokens, each launch covering them all (the
// weights read once per step, not once per token), replayed as a graph per step shape once a
// shape repeats. Either way every row gets the arithmetic the CPU engines give it in the same
// call: a sequence's two or more tokens of a call in the reference's prompt mode (and its two or
// more wanted rows through the prompt-mode LM head), a single token in decode mode, so a
// sequence's results do not depend on the others in the batch (batch invariance).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/cuda/cuda_program.h"
#include "runtime/cuda/device.h"
#include "runtime/model.h"
#include "runtime/session.h"

namespace bitnet::runtime::cuda {

class CudaBackend {
 public:
  explicit CudaBackend(std::unique_ptr<Device> device) : device_(std::move(device)) {}
  ~CudaBackend();
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device& device() { return *device_; }
  // One session at a time uses the device (the Device is not synchronised).
  std::mutex& mutex() { return mutex_; }

  // Checks `program`, loads its module and uploads the weight buffers not yet on the device
  // (by name and size: programs for other context sizes share all but their RoPE tables).
  // Returns the module id; the device pointer of each of its weight buffers is weight(program, i).
  Expected<int> load(const std::shared_ptr<const CudaProgram>& program);
  DevicePtr weight(const CudaProgram& program, int buffer) const;
  int64_t weight_bytes() const { return weight_bytes_; }

 private:
  std::unique_ptr<Device> device_;
  std::mutex mutex_;
  std::map<std::string, DevicePtr> weights_;  // "name/bytes"
  // Loaded programs (kept alive: the key must not be reused by another program).
  std::vector<std::pair<std::shared_ptr<const CudaProgram>, int>> modules_;
  int64_t weight_bytes_ = 0;
};

struct CudaSessionOptions {
  int32_t n_seq = 1;
  int64_t n_ctx = 0;        // cells of all sequences; each gets n_ctx / n_seq (<= program.n_ctx)
  bool all_logits = false;  // every token's logits (eval), else the rows the batch selects
  int64_t max_batch = 512;  // tokens per decode call
  bool use_graphs = true;   // capture and replay each sequence's step where the device can
};

class CudaSession final : public SequenceSession {
 public:
  static Expected<std::unique_ptr<CudaSession>> create(std::shared_ptr<CudaBackend> backend,
                                                       std::shared_ptr<const CudaProgram> program,
                                                       const CudaSessionOptions& options);
  ~CudaSession() override;

  std::string_view backend() const override { return "cuda"; }

 protected:
  Status run_layout(const BatchLayout& layout, Outputs& out) override;
  void copy_cells(int32_t from_seq, int32_t to_seq, int64_t p0, int64_t p1) override;
  void move_cells(int32_t seq, int64_t from, int64_t to, int64_t n) override;

 private:
  CudaSession(std::shared_ptr<CudaBackend> backend, std::shared_ptr<const CudaProgram> program,
              const CudaSessionOptions& options);
  Status allocate();
  DevicePtr pointer(int32_t seq, int buffer) const;
  Status launch_step(int32_t seq);  // every launch of one token, with sequence seq's K/V
  Status step(int32_t seq, int32_t token, int64_t pos);
  Status launch_batch(int64_t n, int64_t n_out);  // the batched launches for n tokens, n_out wanted rows
  Status batch_step(int64_t n, int64_t n_out);    // launch_batch, or the replay of its graph
  Status run_batched(const BatchLayout& layout, Matrix& logits);
  DevicePtr k_cache(int32_t seq, size_t layer) const;
  DevicePtr v_cache(int32_t seq, size_t layer) const;

  std::shared_ptr<CudaBackend> backend_;
  std::shared_ptr<const CudaProgram> program_;
  CudaSessionOptions options_;
  int module_ = -1;
  std::vector<DevicePtr> shared_;              // by buffer: weights, scratch, inputs, outputs (0 for state)
  std::vector<std::vector<DevicePtr>> state_;  // by sequence, by buffer: the K/V caches (0 elsewhere)
  std::vector<DevicePtr> owned_;               // what this session allocated
  std::vector<int> graphs_;                    // by sequence; -1 until captured
  // Batched steps' graphs by (tokens, wanted rows): a shape is captured on its second use (a
  // prompt's odd-sized last step is not worth one), at most kMaxBatchGraphs of them.
  static constexpr size_t kMaxBatchGraphs = 16;
  std::map<std::pair<int64_t, int64_t>, int> batch_graphs_;
  std::map<std::pair<int64_t, int64_t>, int> batch_uses_;
  std::vector<KernelArg> args_;        // launch_step's, reused
  Status failed_ = Status::success();  // a device error of a KV edit, reported by the next decode
};

// Makes `model`'s sessions CudaSessions on `backend` (and says "cuda" for its backend): each
// session runs program_for(cells per sequence), a program already loaded on the backend: a
// plan's one program, or the JIT's, compiled for that many cells on first use.
using CudaProgramFor = std::function<Expected<std::shared_ptr<const CudaProgram>>(int64_t cells)>;
void install_cuda_sessions(Model& model, std::shared_ptr<CudaBackend> backend, CudaProgramFor program_for,
                           bool use_graphs = true);

}  // namespace bitnet::runtime::cuda
