// Worker pool and spin barrier (see worker_pool.h).
#include "runtime/worker_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BITNET_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define BITNET_CPU_RELAX() asm volatile("yield")
#else
#define BITNET_CPU_RELAX() ((void)0)
#endif

namespace bitnet::runtime {

// Spin this many pause instructions (tens of microseconds: longer than a typical gap
// between threads finishing the same kernel) before sleeping in the kernel. Sleeping matters
// when the machine is oversubscribed: a spinning thread would hold the core the thread it
// waits for needs.
constexpr int kSpinIterations = 2000;

void SpinBarrier::arrive_and_wait() {
  if (threads_ == 1) return;
  const uint32_t phase = phase_.load(std::memory_order_acquire);
  if (waiting_.fetch_add(1, std::memory_order_acq_rel) == threads_ - 1) {
    waiting_.store(0, std::memory_order_relaxed);
    phase_.store(phase + 1, std::memory_order_release);
    phase_.notify_all();
    return;
  }
  for (int i = 0; i < kSpinIterations; ++i) {
    if (phase_.load(std::memory_order_acquire) != phase) return;
    BITNET_CPU_RELAX();
  }
  while (phase_.load(std::memory_order_acquire) == phase) phase_.wait(phase, std::memory_order_acquire);
}

WorkerPool::WorkerPool(int threads) : threads_(std::max(threads, 1)), barrier_(threads_) {
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

WorkerPool::~WorkerPool() {
  stop_.store(true, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.notify_all();
  for (auto& t : workers_) t.join();
}

void WorkerPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin for a while (the gap between two decode steps is short), then sleep.
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    uint64_t epoch = epoch_.load(std::memory_order_acquire);
    while (epoch == seen) {
      if (std::chrono::steady_clock::now() > spin_until) {
        epoch_.wait(seen, std::memory_order_acquire);
      } else {
        for (int i = 0; i < 64; ++i) BITNET_CPU_RELAX();
      }
      epoch = epoch_.load(std::memory_order_acquire);
    }
    seen = epoch;
    if (stop_.load(std::memory_order_acquire)) return;
    (*task_)(index);
    finished_.fetch_add(1, std::memory_order_acq_rel);
    finished_.notify_one();
  }
}

void WorkerPool::run(const std::function<void(int thread)>& fn) {
  if (threads_ == 1) {
    fn(0);
    return;
  }
  task_ = &fn;
  finished_.store(0, std::memory_order_relaxed);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.notify_all();
  fn(0);
  for (int i = 0; i < kSpinIterations && finished_.load(std::memory_order_acquire) != threads_ - 1; ++i) {
    BITNET_CPU_RELAX();
  }
  for (int done = finished_.load(std::memory_order_acquire); done != threads_ - 1;
       done = finished_.load(std::memory_order_acquire)) {
    finished_.wait(done, std::memory_order_acquire);
  }
}

}  // namespace bitnet::runtime
