// Lookup cost of HashRing::Successors, the call meta makes for every chunk it
// places. Items are lookups.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "common/ring.h"

namespace dfs::common {
namespace {

// Args: node count. R is 3, the default replication factor.
void BM_RingSuccessors(benchmark::State& state) {
  const auto node_count = static_cast<uint64_t>(state.range(0));
  HashRing ring;
  for (uint64_t id = 1; id <= node_count; ++id) {
    if (!ring.AddNode(id, 1.0).ok()) {
      state.SkipWithError("AddNode failed");
      return;
    }
  }
  // Sequential chunk ids, as meta allocates them; the key hash scatters them,
  // so consecutive lookups do not share cache lines.
  uint64_t key = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring.Successors(key++, 3));
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["points"] = static_cast<double>(ring.point_count());
}
BENCHMARK(BM_RingSuccessors)->Arg(10)->Arg(100)->Arg(1000);

}  // namespace
}  // namespace dfs::common
