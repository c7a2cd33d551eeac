// ReleaseQueue: handles the application closed that meta has not released yet.
//
// Why: close(2) does not wait for FUSE's RELEASE, yet each Release RPC was a
// Raft entry of its own on meta: in a create, cp or tar loop as many entries
// as the creates themselves. Queued here, a release rides in the next
// mutation this client sends (RequestContext.releases; meta applies it
// before that mutation's own op). One that waited `delay_ms` with no
// mutation to carry it is handed to MetaClient's release thread
// (WaitOverdue), which sends it as a Release carrying the others.
//
// What the delay costs: other clients see the handle up to that long after
// the close (a write lease it held: FileSystem waits that out; the space of
// an unlinked file comes back that much later).
//
// Waits use std::chrono::steady_clock: the thread parks on a condition
// variable, which a test clock could not wake.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include "common/thread_annotations.h"
#include "proto/meta.pb.h"

namespace dfs::fuse {

class ReleaseQueue {
 public:
  explicit ReleaseQueue(int64_t delay_ms) : delay_(std::chrono::milliseconds(delay_ms)) {}

  void Add(pb::ReleaseRequest release);
  // Moves up to `max` queued releases, oldest first, into `out`.
  void TakeInto(google::protobuf::RepeatedPtrField<pb::ReleaseRequest>* out, int max);
  // Queues again, in front (they are the oldest), releases whose carrier
  // never reached meta.
  void PutBack(const google::protobuf::RepeatedPtrField<pb::ReleaseRequest>& releases);
  // Blocks until the oldest release has waited `delay_ms`, and takes it;
  // after Stop, returns what is left at once, then nullopt.
  std::optional<pb::ReleaseRequest> WaitOverdue();
  void Stop();
  bool stopping() const;
  // Forgets what is queued; returns how many.
  size_t Clear();
  size_t size() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Queued {
    pb::ReleaseRequest release;
    Clock::time_point since;
  };

  const Clock::duration delay_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace dfs::fuse
