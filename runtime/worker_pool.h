// Persistent worker threads for the compiled executor. A run dispatches one function to
// every thread (the caller is thread 0) and returns when all have finished it; inside,
// threads meet at a spinning barrier between kernels. Dispatch and barrier spin instead of
// sleeping, because a decode step is a few hundred kernels of tens of microseconds each
// and a futex round trip per kernel would cost more than the kernels themselves; idle
// workers stop spinning after a while and sleep until the next run.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace bitnet::runtime {

// Sense-reversing barrier for a fixed number of threads.
class SpinBarrier {
 public:
  explicit SpinBarrier(int threads) : threads_(threads) {}
  void arrive_and_wait();

 private:
  const int threads_;
  alignas(64) std::atomic<int> waiting_{0};
  alignas(64) std::atomic<uint32_t> phase_{0};
};

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return threads_; }
  // Runs fn(thread) on every thread 0..size()-1 (0 is the caller) and waits for all.
  void run(const std::function<void(int thread)>& fn);
  // The barrier the threads of a run share.
  SpinBarrier& barrier() { return barrier_; }

 private:
  void worker(int index);

  const int threads_;
  SpinBarrier barrier_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* task_ = nullptr;
  alignas(64) std::atomic<uint64_t> epoch_{0};
  alignas(64) std::atomic<int> finished_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace bitnet::runtime
