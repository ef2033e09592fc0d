// Unit tests of the host emulation shim itself: its kernels here are compiled straight into
// the test binary (the same header and runtime the generated kernels are built against).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "reference/kernels.h"

// After the library headers: the shim defines the CUDA keywords and index variables as macros.
#include "host_emu/cuda_host_emu.h"

namespace {

struct Launch {
  bn_emu_dim3 grid{1, 1, 1};
  bn_emu_dim3 block{32, 1, 1};
  int workers = 0;
};

template <class F>
std::string run(const Launch& l, F&& thread_body) {
  char error[512] = {};
  auto trampoline = [](void* p) { (*static_cast<F*>(p))(); };
  const int rc = bn_emu_launch(l.grid, l.block, trampoline, &thread_body, l.workers, error, sizeof error);
  return rc == 0 ? std::string() : std::string(error);
}

TEST(HostEmu, EveryThreadOfA3dGridRunsOnceWithItsIndices) {
  const Launch l{{3, 2, 2}, {8, 4, 2}, 2};
  std::vector<int> hits(3 * 2 * 2 * 64, 0);
  ASSERT_EQ(run(l,
                [&] {
                  const int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
                  const int thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
                  hits[block * 64 + thread] += 1;  // blocks are disjoint; threads of a block share one OS thread
                }),
            "");
  for (int h : hits) EXPECT_EQ(h, 1);
}

TEST(HostEmu, SyncthreadsOrdersEveryWriteBeforeEveryRead) {
  constexpr int kThreads = 256;
  std::vector<int> out(kThreads * 4);
  ASSERT_EQ(run({{1, 1, 1}, {kThreads, 1, 1}, 1},
                [&] {
                  __shared__ int buf[kThreads];
                  const int t = threadIdx.x;
                  int value = t;
                  // Each round every thread reads its neighbour's value of the previous round:
                  // any read before all writes would see a stale number.
                  for (int round = 0; round < 4; ++round) {
                    buf[t] = value * 3 + round;
                    __syncthreads();
                    value = buf[(t + 1) % kThreads];
                    __syncthreads();
                    out[round * kThreads + t] = value;
                  }
                }),
            "");
  std::vector<int> expect(kThreads);
  for (int t = 0; t < kThreads; ++t) expect[t] = t;
  for (int round = 0; round < 4; ++round) {
    std::vector<int> next(kThreads);
    for (int t = 0; t < kThreads; ++t) next[t] = expect[(t + 1) % kThreads] * 3 + round;
    expect = next;
    for (int t = 0; t < kThreads; ++t) ASSERT_EQ(out[round * kThreads + t], expect[t]) << round << " " << t;
  }
}

TEST(HostEmu, SyncthreadsSeparatesPhasesInExecutionOrder) {
  std::vector<std::pair<int, int>> log;  // (phase, thread) in the order they ran
  ASSERT_EQ(run({{1, 1, 1}, {96, 1, 1}, 1},
                [&] {
                  log.emplace_back(0, threadIdx.x);
                  __syncthreads();
                  log.emplace_back(1, threadIdx.x);
                }),
            "");
  ASSERT_EQ(log.size(), 192u);
  for (size_t i = 0; i < 96; ++i) EXPECT_EQ(log[i].first, 0);
  for (size_t i = 96; i < 192; ++i) EXPECT_EQ(log[i].first, 1);
}

// The decode kernels' programmatic-dependent-launch pattern (each block issues its own loads,
// waits for the previous grid, frees the next, then reads what the previous grid wrote): in the
// emulator the wait and the trigger are no-ops that must not disturb barriers or the order of
// launches, so a consumer grid sees every write of the producer grid before it.
TEST(HostEmu, GridDependencyWaitAndTriggerAreAcceptedAndLaunchesStayOrdered) {
  constexpr int kBlocks = 8, kThreads = 64;
  std::vector<int> weights(kBlocks * kThreads), produced(kBlocks * kThreads, -1), consumed(kBlocks * kThreads, -1);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<int>(3 * i + 1);
  const Launch launch{{kBlocks, 1, 1}, {kThreads, 1, 1}, 3};
  ASSERT_EQ(run(launch,
                [&] {
                  const int i = blockIdx.x * kThreads + threadIdx.x;
                  const int w = weights[i];  // independent of the predecessor: before the wait
                  cudaGridDependencySynchronize();
                  cudaTriggerProgrammaticLaunchCompletion();
                  produced[i] = 2 * w;
                }),
            "");
  ASSERT_EQ(run(launch,
                [&] {
                  __shared__ int tile[kThreads];
                  const int i = blockIdx.x * kThreads + threadIdx.x;
                  const int w = weights[i];
                  if (threadIdx.x % 2 == 0) cudaGridDependencySynchronize();  // divergent calls are fine
                  cudaGridDependencySynchronize();
                  cudaTriggerProgrammaticLaunchCompletion();
                  tile[threadIdx.x] = produced[i];
                  __syncthreads();
                  consumed[i] = tile[(threadIdx.x + 1) % kThreads] + w;
                }),
            "");
  for (int b = 0; b < kBlocks; ++b) {
    for (int t = 0; t < kThreads; ++t) {
      const int i = b * kThreads + t;
      EXPECT_EQ(produced[i], 2 * weights[i]) << i;
      EXPECT_EQ(consumed[i], 2 * weights[b * kThreads + (t + 1) % kThreads] + weights[i]) << i;
    }
  }
}

TEST(HostEmu, SharedMemoryIsPerBlockWithBlocksOnSeveralWorkers) {
  constexpr int kBlocks = 64;
  std::vector<long> sums(kBlocks);
  ASSERT_EQ(run({{kBlocks, 1, 1}, {128, 1, 1}, 4},
                [&] {
                  __shared__ long partial[128];
                  partial[threadIdx.x] = static_cast<long>(blockIdx.x) * 1000 + threadIdx.x;
                  __syncthreads();
                  if (threadIdx.x == 0) {
                    long s = 0;
                    for (int i = 0; i < 128; ++i) s += partial[i];
                    sums[blockIdx.x] = s;
                  }
                }),
            "");
  for (long b = 0; b < kBlocks; ++b) EXPECT_EQ(sums[b], b * 1000 * 128 + 127 * 128 / 2) << b;
}

// The last-block pattern of the CUDA programming guide's memory-fence example: every block
// stores its part, fences, counts itself in; the block that counts last sees every part (blocks
// run on several workers at once) and resets the counter for the next launch.
TEST(HostEmu, TheLastBlockToCountItselfInSeesEveryBlocksStores) {
  constexpr int kBlocks = 96;
  std::vector<int> parts(kBlocks, 0);
  unsigned counter = 0;
  for (int launch = 0; launch < 3; ++launch) {
    std::vector<long> totals;
    std::vector<int> last_blocks;
    std::mutex m;
    ASSERT_EQ(run({{kBlocks, 1, 1}, {64, 1, 1}, 4},
                  [&] {
                    __shared__ bool s_last;
                    if (threadIdx.x == 0) parts[blockIdx.x] = static_cast<int>(blockIdx.x) + 1 + launch;
                    __threadfence();
                    __syncthreads();
                    if (threadIdx.x == 0) s_last = atomicAdd(&counter, 1u) == gridDim.x - 1;
                    __syncthreads();
                    if (!s_last || threadIdx.x != 0) return;
                    __threadfence();
                    long total = 0;
                    for (int b = 0; b < kBlocks; ++b) total += __ldcg(&parts[b]);
                    counter = 0;
                    std::lock_guard lock(m);
                    totals.push_back(total);
                    last_blocks.push_back(static_cast<int>(blockIdx.x));
                  }),
              "");
    ASSERT_EQ(totals.size(), 1u) << "exactly one block is last";
    EXPECT_EQ(totals[0], kBlocks * (kBlocks + 1) / 2 + static_cast<long>(kBlocks) * launch);
    EXPECT_EQ(counter, 0u);
  }
}

TEST(HostEmu, ShufflesFollowTheWidthRules) {
  constexpr int kThreads = 64;  // two warps: lanes are threadIdx.x % 32
  std::vector<int> idx(kThreads), up(kThreads), down(kThreads), bfly(kThreads), idx8(kThreads), down16(kThreads);
  std::vector<double> dbl(kThreads);
  std::vector<float> flt(kThreads);
  ASSERT_EQ(run({{1, 1, 1}, {kThreads, 1, 1}, 1},
                [&] {
                  const int t = threadIdx.x;
                  const int v = 100 * t;
                  idx[t] = __shfl_sync(0xffffffffu, v, 5);
                  up[t] = __shfl_up_sync(0xffffffffu, v, 3);
                  down[t] = __shfl_down_sync(0xffffffffu, v, 3);
                  bfly[t] = __shfl_xor_sync(0xffffffffu, v, 9);
                  idx8[t] = __shfl_sync(0xffffffffu, v, 10, 8);
                  down16[t] = __shfl_down_sync(0xffffffffu, v, 4, 16);
                  dbl[t] = __shfl_xor_sync(0xffffffffu, 0.5 + t, 1);
                  flt[t] = __shfl_sync(0xffffffffu, 0.25f * t, 31);
                }),
            "");
  for (int t = 0; t < kThreads; ++t) {
    const int lane = t % 32, base = t - lane;
    EXPECT_EQ(idx[t], 100 * (base + 5));
    EXPECT_EQ(up[t], lane >= 3 ? 100 * (t - 3) : 100 * t);
    EXPECT_EQ(down[t], lane + 3 < 32 ? 100 * (t + 3) : 100 * t);
    EXPECT_EQ(bfly[t], 100 * (base + (lane ^ 9)));
    EXPECT_EQ(idx8[t], 100 * (base + (lane & ~7) + 2));
    EXPECT_EQ(down16[t], (lane % 16) + 4 < 16 ? 100 * (t + 4) : 100 * t);
    EXPECT_EQ(dbl[t], 0.5 + (base + (lane ^ 1)));
    EXPECT_EQ(flt[t], 0.25f * (base + 31));
  }
}

TEST(HostEmu, XorShuffleWithNarrowWidthNeverReadsALaterGroup) {
  std::vector<int> out(32);
  ASSERT_EQ(run({}, [&] { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 8, 8); }), "");
  // lane ^ 8 leaves a group of 8 upwards for lanes 0-7 of each 16 (they keep their value) and
  // reaches the earlier group for lanes 8-15.
  for (int lane = 0; lane < 32; ++lane) EXPECT_EQ(out[lane], (lane % 16) < 8 ? lane : lane ^ 8) << lane;
}

TEST(HostEmu, VotesSeeEveryLane) {
  std::vector<unsigned> ballot(32);
  std::vector<int> any_none(32), any_some(32), all_some(32), all_every(32);
  ASSERT_EQ(run({},
                [&] {
                  const int lane = threadIdx.x;
                  ballot[lane] = __ballot_sync(0xffffffffu, lane % 3 == 0);
                  any_none[lane] = __any_sync(0xffffffffu, 0);
                  any_some[lane] = __any_sync(0xffffffffu, lane == 17);
                  all_some[lane] = __all_sync(0xffffffffu, lane != 4);
                  all_every[lane] = __all_sync(0xffffffffu, 1);
                }),
            "");
  unsigned expect = 0;
  for (int lane = 0; lane < 32; lane += 3) expect |= 1u << lane;
  for (int lane = 0; lane < 32; ++lane) {
    EXPECT_EQ(ballot[lane], expect);
    EXPECT_EQ(any_none[lane], 0);
    EXPECT_EQ(any_some[lane], 1);
    EXPECT_EQ(all_some[lane], 0);
    EXPECT_EQ(all_every[lane], 1);
  }
}

TEST(HostEmu, PartialMaskCollectivesAmongTheNamedLanes) {
  std::vector<int> out(32, -1);
  ASSERT_EQ(run({},
                [&] {
                  const int lane = threadIdx.x;
                  if (lane < 16) out[lane] = __shfl_xor_sync(0x0000ffffu, lane * 2, 1);
                }),
            "");
  for (int lane = 0; lane < 16; ++lane) EXPECT_EQ(out[lane], (lane ^ 1) * 2);
  for (int lane = 16; lane < 32; ++lane) EXPECT_EQ(out[lane], -1);
}

TEST(HostEmu, DivergentBarrierAndShuffleIsReportedAsADeadlock) {
  const std::string error = run({}, [&] {
    if (threadIdx.x < 16) {
      __syncthreads();
    } else {
      (void)__shfl_sync(0xffffffffu, 1, 0);  // waits for lanes 0-15, which wait at the barrier
    }
  });
  EXPECT_NE(error.find("deadlock"), std::string::npos) << error;
  EXPECT_NE(error.find("16 threads at __syncthreads, 16 at a warp collective"), std::string::npos) << error;
  // The emulator is usable again after abandoning a deadlocked block.
  std::vector<int> out(32);
  ASSERT_EQ(run({}, [&] { out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 3); }), "");
  for (int v : out) EXPECT_EQ(v, 3);
}

TEST(HostEmu, MisusedMasksAreErrors) {
  std::string error = run({}, [&] {
    if (threadIdx.x == 0) (void)__shfl_sync(0x2u, 1, 1);  // lane 0 is not in its own mask
  });
  EXPECT_NE(error.find("outside its mask"), std::string::npos) << error;
  error = run({}, [&] {
    if (threadIdx.x < 2) (void)__shfl_sync(threadIdx.x == 0 ? 0x3u : 0x7u, 1, 0);
  });
  EXPECT_NE(error.find("different masks"), std::string::npos) << error;
}

TEST(HostEmu, Dp4aIsFourByteProductsWrappingLikeHardware) {
  std::mt19937 rng(7);
  auto reference = [](uint32_t a, uint32_t b, int32_t c) {
    int64_t acc = c;
    for (int i = 0; i < 4; ++i) acc += static_cast<int8_t>(a >> (8 * i)) * static_cast<int8_t>(b >> (8 * i));
    return static_cast<int32_t>(static_cast<uint32_t>(acc));
  };
  for (int i = 0; i < 100000; ++i) {
    const uint32_t a = rng(), b = rng();
    const int32_t c = static_cast<int32_t>(rng());
    ASSERT_EQ(__dp4a(static_cast<int>(a), static_cast<int>(b), c), reference(a, b, c));
  }
  EXPECT_EQ(__dp4a(static_cast<int>(0x80808080u), static_cast<int>(0x80808080u), 0), 4 * 16384);
  EXPECT_EQ(__dp4a(static_cast<int>(0x80808080u), static_cast<int>(0x80808080u), INT32_MAX), INT32_MIN + 65535);
  EXPECT_EQ(__dp4a(static_cast<int>(0x0201ff7fu), static_cast<int>(0x81ff0302u), 10), 10 + 127 * 2 - 3 - 1 + 2 * -127);
  EXPECT_EQ(__dp4a(0xffffffffu, 0xffffffffu, 1u), 1u + 4u * 255u * 255u);
}

// The tensor-core product against a plain 16x32 by 32x8 product: every lane builds its fragments
// from the matrices by the PTX ISA's layout, and scatters its four results back by it. Extreme
// values (255 x -128) and a wrapping accumulator included.
TEST(HostEmu, MmaM16n8k32IsTheMatrixProductInThePtxFragmentLayout) {
  std::mt19937 rng(7);
  for (int round = 0; round < 3; ++round) {
    uint8_t a[16][32];
    int8_t b[32][8];
    int c[16][8], want[16][8], got[16][8];
    for (auto& row : a) {
      for (auto& v : row) v = round == 1 ? 255 : static_cast<uint8_t>(rng());
    }
    for (auto& row : b) {
      for (auto& v : row) v = round == 1 ? -128 : static_cast<int8_t>(rng());
    }
    for (int r = 0; r < 16; ++r) {
      for (int n = 0; n < 8; ++n) {
        c[r][n] = round == 2 ? INT32_MAX - r : static_cast<int>(rng() % 1000) - 500;
        uint32_t acc = static_cast<uint32_t>(c[r][n]);
        for (int k = 0; k < 32; ++k) acc += static_cast<uint32_t>(a[r][k] * b[k][n]);
        want[r][n] = static_cast<int>(acc);
      }
    }
    auto word_a = [&](int row, int k0) {
      unsigned w = 0;
      for (int i = 0; i < 4; ++i) w |= static_cast<unsigned>(a[row][k0 + i]) << (8 * i);
      return w;
    };
    auto word_b = [&](int k0, int col) {
      unsigned w = 0;
      for (int i = 0; i < 4; ++i) w |= static_cast<unsigned>(static_cast<uint8_t>(b[k0 + i][col])) << (8 * i);
      return w;
    };
    ASSERT_EQ(run({},
                  [&] {
                    const int gid = threadIdx.x / 4, tid = threadIdx.x % 4;
                    const unsigned frag_a[4] = {word_a(gid, 4 * tid), word_a(gid + 8, 4 * tid),
                                                word_a(gid, 16 + 4 * tid), word_a(gid + 8, 16 + 4 * tid)};
                    const unsigned frag_b[2] = {word_b(4 * tid, gid), word_b(16 + 4 * tid, gid)};
                    int d[4] = {c[gid][2 * tid], c[gid][2 * tid + 1], c[gid + 8][2 * tid], c[gid + 8][2 * tid + 1]};
                    bn_emu_mma_m16n8k32_u8s8(d, frag_a, frag_b);
                    got[gid][2 * tid] = d[0];
                    got[gid][2 * tid + 1] = d[1];
                    got[gid + 8][2 * tid] = d[2];
                    got[gid + 8][2 * tid + 1] = d[3];
                  }),
              "");
    for (int r = 0; r < 16; ++r) {
      for (int n = 0; n < 8; ++n)
        EXPECT_EQ(got[r][n], want[r][n]) << "round " << round << " D[" << r << "][" << n << "]";
    }
  }
  // A lane that does not take part leaves the others waiting: reported, not hung.
  const std::string error = run({}, [&] {
    if (threadIdx.x == 5) return;
    int d[4] = {};
    const unsigned fa[4] = {}, fb[2] = {};
    bn_emu_mma_m16n8k32_u8s8(d, fa, fb);
  });
  EXPECT_NE(error, "");
}

TEST(HostEmu, HalfConversionsMatchTheReferenceBitForBit) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
    const float expect = bitnet::ref::fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(expect)) {
      ASSERT_TRUE(std::isnan(f)) << h;
      continue;
    }
    ASSERT_EQ(__float_as_uint(f), __float_as_uint(expect)) << h;
    ASSERT_EQ(__half_as_ushort(__float2half_rn(f)), h) << h;  // every half round-trips
  }
  // Midpoints between neighbouring halves (ties to even), their neighbours, and random floats.
  std::vector<float> probes;
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float lo = bitnet::ref::fp16_to_fp32(static_cast<uint16_t>(h));
    const float hi = bitnet::ref::fp16_to_fp32(static_cast<uint16_t>(h + 1));
    const float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
    probes.insert(probes.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), -mid});
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 200000; ++i) probes.push_back(__uint_as_float(rng()));
  probes.insert(probes.end(), {65504.0f, 65519.99f, 65520.0f, 1e30f, -1e30f, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-10f,
                               5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f});
  for (float f : probes) {
    if (std::isnan(f)) continue;
    ASSERT_EQ(__half_as_ushort(__float2half_rn(f)), bitnet::ref::fp32_to_fp16(f)) << f;
  }
  EXPECT_TRUE(std::isnan(__half2float(__float2half_rn(NAN))));
}

TEST(HostEmu, RoundingIntrinsics) {
  EXPECT_EQ(__float2int_rn(2.5f), 2);
  EXPECT_EQ(__float2int_rn(3.5f), 4);
  EXPECT_EQ(__float2int_rn(-2.5f), -2);
  EXPECT_EQ(__float2int_rn(-0.5f), 0);
  EXPECT_EQ(__float2int_rn(1e10f), INT32_MAX);
  EXPECT_EQ(__float2int_rn(-1e10f), INT32_MIN);
  EXPECT_EQ(__float2int_rn(NAN), 0);
  EXPECT_EQ(__fmaf_rn(1.0f + 0x1p-23f, 1.0f - 0x1p-23f, -1.0f), -0x1p-46f);  // one rounding, not two
  EXPECT_EQ(__fadd_rn(__fmul_rn(1.0f + 0x1p-23f, 1.0f - 0x1p-23f), -1.0f), 0.0f);
}

}  // namespace
