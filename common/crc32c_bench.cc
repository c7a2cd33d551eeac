// CRC32C throughput next to memcpy throughput on the same 1 MiB buffers, in
// the same run, so the ratio means something on a shared, noisy machine.
// Target (issue 2): CRC32C >= 5 GB/s on one core.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "common/chunk_geometry.h"
#include "common/crc32c.h"

namespace {

std::vector<std::byte> RandomBuffer(size_t size) {
  std::vector<std::byte> buf(size);
  std::mt19937_64 rng(42);
  for (auto& b : buf) b = static_cast<std::byte>(rng());
  return buf;
}

void BM_Crc32c_1MiB(benchmark::State& state) {
  auto buf = RandomBuffer(1 << 20);
  for (auto _ : state) {
    benchmark::DoNotOptimize(dfs::common::Crc32c(buf));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(buf.size()));
}
BENCHMARK(BM_Crc32c_1MiB);

void BM_Memcpy_1MiB(benchmark::State& state) {
  auto src = RandomBuffer(1 << 20);
  std::vector<std::byte> dst(src.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(src.size()));
}
BENCHMARK(BM_Memcpy_1MiB);

// Per-piece CRCs of a 1 MiB write message (16 blocks), as a chunkserver verifies them.
void BM_PieceCrcs_1MiB(benchmark::State& state) {
  auto buf = RandomBuffer(1 << 20);
  std::vector<uint32_t> crcs(dfs::common::PieceCount(0, buf.size(), dfs::common::kBlockSizeBytes));
  for (auto _ : state) {
    dfs::common::PieceCrcs(0, buf, dfs::common::kBlockSizeBytes, crcs);
    benchmark::DoNotOptimize(crcs.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(buf.size()));
}
BENCHMARK(BM_PieceCrcs_1MiB);

}  // namespace
