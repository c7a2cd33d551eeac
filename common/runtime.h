// Process-wide settings of the libraries under gRPC, made once at the top of
// main() of every binary (daemons, client, dfsctl, benchmarks).
//
// Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock
// detection on: every lock gRPC takes walks a global lock-order graph
// (GraphCycles::GetId and friends showed 1-5% of the CPU of dfs-meta and dfs
// in perf). It finds bugs in gRPC's own locking, not ours, so we turn it off.
//
// Thread-safety: call before starting threads.
#pragma once

namespace dfs::common {

void ConfigureRuntime();

}  // namespace dfs::common
