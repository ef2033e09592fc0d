// The host emulator's scheduler: blocks over OS threads, each block's threads as fibers that
// switch only where CUDA threads may wait for each other. Deterministic per block (fibers run in
// thread order, round after round), and a round in which no fiber gets anywhere is a deadlock.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda_host_emu.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace bn_emu {
namespace {

constexpr size_t kStackBytes = 64 * 1024;  // kernels keep little on the stack; a guard page below
constexpr size_t kGuardBytes = 4096;
constexpr int kMaxThreads = 1024;

#if defined(__x86_64__)
// Saves the callee-saved registers on the current stack, stores its pointer in *save_sp, then
// resumes the stack `load_sp` where a previous switch (or prepare_stack) left it. About 20x
// cheaper than swapcontext, which makes a system call to save the signal mask every time.
extern "C" void bn_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .p2align 4
  .globl bn_emu_switch
  .hidden bn_emu_switch
  .type bn_emu_switch,@function
bn_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size bn_emu_switch, .-bn_emu_switch
)");
#endif

enum class Wait : uint8_t { kNone, kBarrier, kWarp };

struct Fiber {
  ThreadState state;
  char* stack = nullptr;
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t context;
#endif
  bool done = false;
  Wait wait = Wait::kNone;
};

struct WarpSync {
  unsigned mask = 0;
  int arrived = 0;
  uint64_t generation = 0;
  uint64_t slots[2][32] = {};  // by generation parity: a lane cannot lap a slower one
};

struct Block {
  int threads = 0;
  int live = 0;
  int barrier_arrived = 0;
  uint64_t barrier_generation = 0;
  uint64_t progress = 0;  // bumped by every arrival, release and exit
  bool failed = false;
  std::string failure;
  WarpSync warps[kMaxThreads / 32];
};

struct Worker {
  std::vector<Fiber> fibers = std::vector<Fiber>(kMaxThreads);
  char* arena = nullptr;
#if defined(__x86_64__)
  void* scheduler_sp = nullptr;
#else
  ucontext_t scheduler;
#endif
  Fiber* current = nullptr;
  Block* block = nullptr;
  void (*body)(void*) = nullptr;
  void* arg = nullptr;
};

thread_local Worker* tls_worker = nullptr;

// Stack arenas are reused across launches: mapping and guarding 1024 stacks is the slow part.
// Each arena is ~2 * kMaxThreads mappings (a guard page per stack); they are unmapped when the
// runtime's copy goes away (a test's kernel module is dlclose'd), or a test process that loads
// many modules runs out of vm.max_map_count and dlopen fails with "failed to map segment".
constexpr size_t kArenaBytes = static_cast<size_t>(kMaxThreads) * kStackBytes;
std::mutex arena_mutex;
struct ArenaPool {
  std::vector<char*> free;
  ~ArenaPool() {
    for (char* a : free) munmap(a, kArenaBytes);
  }
};
ArenaPool arena_pool;
std::vector<char*>& free_arenas = arena_pool.free;

char* take_arena() {
  {
    std::lock_guard<std::mutex> lock(arena_mutex);
    if (!free_arenas.empty()) {
      char* a = free_arenas.back();
      free_arenas.pop_back();
      return a;
    }
  }
  void* p = mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  char* arena = static_cast<char*>(p);
  for (int i = 0; i < kMaxThreads; ++i) mprotect(arena + i * kStackBytes, kGuardBytes, PROT_NONE);
  return arena;
}

void give_arena(char* arena) {
  std::lock_guard<std::mutex> lock(arena_mutex);
  free_arenas.push_back(arena);
}

void to_scheduler(Fiber& f) {
#if defined(__x86_64__)
  bn_emu_switch(&f.sp, tls_worker->scheduler_sp);
#else
  swapcontext(&f.context, &tls_worker->scheduler);
#endif
}

void resume(Worker& w, Fiber& f) {
  w.current = &f;
#if defined(__x86_64__)
  bn_emu_switch(&w.scheduler_sp, f.sp);
#else
  swapcontext(&w.scheduler, &f.context);
#endif
  w.current = nullptr;
}

void release_barrier_if_complete(Block& b) {
  if (b.barrier_arrived > 0 && b.barrier_arrived >= b.live) {
    b.barrier_arrived = 0;
    ++b.barrier_generation;
    ++b.progress;
  }
}

// A thread's body; never returns (the scheduler abandons finished fibers).
void fiber_main() {
  Worker& w = *tls_worker;
  Fiber& f = *w.current;
  w.body(w.arg);
  f.done = true;
  Block& b = *w.block;
  --b.live;
  ++b.progress;
  release_barrier_if_complete(b);  // exited threads count as arrived
  for (;;) to_scheduler(f);
}

void prepare_stack(Worker& w, Fiber& f) {
#if defined(__x86_64__)
  // The frame bn_emu_switch pops: six callee-saved registers, then fiber_main as the return
  // address, entered with rsp = 8 mod 16 as after a call.
  void** sp = reinterpret_cast<void**>(f.stack + kStackBytes);
  *--sp = nullptr;
  *--sp = reinterpret_cast<void*>(&fiber_main);
  for (int i = 0; i < 6; ++i) *--sp = nullptr;
  f.sp = sp;
  (void)w;
#else
  getcontext(&f.context);
  f.context.uc_stack.ss_sp = f.stack;
  f.context.uc_stack.ss_size = kStackBytes;
  f.context.uc_link = nullptr;
  makecontext(&f.context, fiber_main, 0);
#endif
}

void fail(Block& b, const std::string& why) {
  if (!b.failed) {
    b.failed = true;
    b.failure = why;
  }
  for (;;) to_scheduler(*tls_worker->current);
}

void wait_until(Fiber& f, Wait kind, const uint64_t& generation, uint64_t seen) {
  f.wait = kind;
  while (generation == seen) to_scheduler(f);
  f.wait = Wait::kNone;
}

std::string describe_deadlock(const Worker& w, const Block& b) {
  int at_barrier = 0, at_warp = 0, finished = 0;
  for (int i = 0; i < b.threads; ++i) {
    const Fiber& f = w.fibers[i];
    if (f.done)
      ++finished;
    else if (f.wait == Wait::kBarrier)
      ++at_barrier;
    else if (f.wait == Wait::kWarp)
      ++at_warp;
  }
  const bn_emu_dim3 bi = w.fibers[0].state.block_idx;
  char text[256];
  std::snprintf(text, sizeof text,
                "deadlock in block (%u,%u,%u): %d threads at __syncthreads, %d at a warp collective, %d finished", bi.x,
                bi.y, bi.z, at_barrier, at_warp, finished);
  return text;
}

// Runs one block to completion; false (with b.failure) on a deadlock or a misuse.
bool run_block(Worker& w, Block& b, bn_emu_dim3 block_idx, bn_emu_dim3 block_dim, bn_emu_dim3 grid_dim) {
  b.threads = static_cast<int>(block_dim.x * block_dim.y * block_dim.z);
  b.live = b.threads;
  w.block = &b;
  for (int i = 0; i < b.threads; ++i) {
    Fiber& f = w.fibers[i];
    const unsigned x = i % block_dim.x, y = (i / block_dim.x) % block_dim.y, z = i / (block_dim.x * block_dim.y);
    f.state = ThreadState{{x, y, z}, block_idx, block_dim, grid_dim, i};
    f.stack = w.arena + static_cast<size_t>(i) * kStackBytes;
    f.done = false;
    f.wait = Wait::kNone;
    prepare_stack(w, f);
  }
  while (b.live > 0) {
    const uint64_t before = b.progress;
    for (int i = 0; i < b.threads; ++i) {
      if (w.fibers[i].done) continue;
      resume(w, w.fibers[i]);
      if (b.failed) return false;
    }
    if (b.live > 0 && b.progress == before) {
      b.failed = true;
      b.failure = describe_deadlock(w, b);
      return false;
    }
  }
  return true;
}

}  // namespace

const ThreadState* current() {
  return &tls_worker->current->state;
}

void syncthreads() {
  Worker& w = *tls_worker;
  Block& b = *w.block;
  const uint64_t seen = b.barrier_generation;
  ++b.barrier_arrived;
  ++b.progress;
  release_barrier_if_complete(b);
  wait_until(*w.current, Wait::kBarrier, b.barrier_generation, seen);
}

const uint64_t* warp_collective(unsigned mask, uint64_t value) {
  Worker& w = *tls_worker;
  Block& b = *w.block;
  const int linear = w.current->state.linear;
  const int lane = linear & 31;
  WarpSync& ws = b.warps[linear >> 5];
  if (!(mask >> lane & 1u)) fail(b, "warp collective called by lane " + std::to_string(lane) + " outside its mask");
  if (ws.arrived == 0) {
    ws.mask = mask;
  } else if (ws.mask != mask) {
    fail(b, "warp collective with different masks in one warp (one collective at a time is emulated)");
  }
  const uint64_t seen = ws.generation;
  uint64_t* slots = ws.slots[seen & 1];
  slots[lane] = value;
  ++ws.arrived;
  ++b.progress;
  if (ws.arrived == __builtin_popcount(mask)) {
    ws.arrived = 0;
    ++ws.generation;
  }
  wait_until(*w.current, Wait::kWarp, ws.generation, seen);
  return slots;
}

}  // namespace bn_emu

extern "C" int bn_emu_launch(bn_emu_dim3 grid, bn_emu_dim3 block, void (*body)(void*), void* arg, int workers,
                             char* error, unsigned long error_size) {
  using namespace bn_emu;
  auto report = [&](const std::string& message) {
    if (error && error_size > 0) std::snprintf(error, error_size, "%s", message.c_str());
    return 1;
  };
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  const uint64_t blocks = static_cast<uint64_t>(grid.x) * grid.y * grid.z;
  if (threads == 0 || threads > kMaxThreads) return report("block size must be 1..1024 threads");
  if (blocks == 0) return report("empty grid");
  if (workers <= 0) workers = static_cast<int>(std::min(8u, std::max(1u, std::thread::hardware_concurrency())));
  workers = static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(workers), blocks));

  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex failure_mutex;
  std::string failure;
  auto work = [&] {
    Worker w;
    w.arena = take_arena();
    if (!w.arena) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      failed = true;
      failure = "cannot map fiber stacks";
      return;
    }
    w.body = body;
    w.arg = arg;
    tls_worker = &w;
    auto state = std::make_unique<Block>();
    for (uint64_t id = next++; id < blocks && !failed; id = next++) {
      const bn_emu_dim3 idx{static_cast<unsigned>(id % grid.x), static_cast<unsigned>(id / grid.x % grid.y),
                            static_cast<unsigned>(id / (static_cast<uint64_t>(grid.x) * grid.y))};
      *state = Block{};
      if (!run_block(w, *state, idx, block, grid)) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failed.exchange(true)) failure = state->failure;
      }
    }
    tls_worker = nullptr;
    give_arena(w.arena);
  };
  if (workers == 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (int i = 0; i < workers; ++i) pool.emplace_back(work);
    for (std::thread& t : pool) t.join();
  }
  return failed ? report(failure) : 0;
}
