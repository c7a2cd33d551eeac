// WantedChunks: the leader's memory of which chunks another writer was just
// refused a lease on (LeaseChunk answered ABORTED: the chunk is leased).
//
// Why: a commit keeps its writer's lease busy (the state machine counts a
// lease not granted, renewed or committed under for a while as idle, and
// lets another client take it, meta/state_machine/ops/chunk.cc). A writer
// that flushes often would so keep a chunk forever from a writer on another
// mount. While a chunk is wanted, CommitWrite does not keep the lease busy,
// so the waiter gets it once the holder pauses that long. A hint only: a new
// leader knows nothing, and the waiter then waits for the holder to pause.
//
// Thread-safety: all methods lock `mu_`.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

namespace dfs::meta {

class WantedChunks {
 public:
  // A refusal counts for `window_ms`.
  explicit WantedChunks(int64_t window_ms) : window_ms_(window_ms) {}

  void Refused(uint64_t ino, uint64_t chunk_index, int64_t now_ms);
  // Whether a lease on the chunk was refused within the window.
  bool Wanted(uint64_t ino, uint64_t chunk_index, int64_t now_ms) const;
  size_t size() const;

 private:
  const int64_t window_ms_;
  mutable std::mutex mu_;
  std::map<std::pair<uint64_t, uint64_t>, int64_t> refused_ms_;  // (ino, chunk index) -> last refusal
};

}  // namespace dfs::meta
