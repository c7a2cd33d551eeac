// ChangeFeed: what the leader applied lately, as notices for mounts that
// watch (MetaService.Watch): the names and inodes each client's mutations
// changed, so other mounts can drop their cached copies at once instead of
// when their timeouts end. A hint, never a guarantee: the feed keeps the
// newest `capacity` changes, and a watcher that falls further behind is
// told it missed some.
//
// Thread-safety: every method may be called concurrently. Publish never
// blocks on a watcher (it runs on the proposer's thread).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "common/thread_annotations.h"
#include "proto/meta.pb.h"
#include "proto/meta_entry.pb.h"

namespace dfs::meta {

// What one applied Op changed, as other mounts see it.
struct Change {
  uint64_t client_id = 0;  // whose Op it was (0: meta's own)
  std::vector<pb::ChangedName> names;
  std::vector<uint64_t> inodes;
  bool empty() const { return names.empty() && inodes.empty(); }
};

// What `op` changes when it applies (its body and the attribute changes it
// carries); empty for Ops no cached answer depends on (leases, locks,
// releases). Judged from the request alone: a refused Op is noticed too,
// which costs a watcher a needless lookup and nothing else.
Change ChangeOf(const pb::Op& op);

class ChangeFeed {
 public:
  explicit ChangeFeed(size_t capacity = 4096) : capacity_(capacity) {}

  void Publish(Change change);
  // The position after the newest change: where a new watcher starts.
  uint64_t End() const;
  // Waits until a change after *cursor exists or `deadline` passes, then
  // moves every change from *cursor on into *out (except those of
  // `client_id`) and advances *cursor past them. Sets out->missed when
  // changes after *cursor were already dropped. False: nothing yet.
  bool Next(uint64_t* cursor, uint64_t client_id, std::chrono::steady_clock::time_point deadline,
            pb::ChangeNotices* out);

 private:
  // A watcher waiting in Next. Publish wakes only those a change is for: a
  // mount's own creates must not wake its watcher on the leader (a context
  // switch per mutation is a measurable share of one here).
  struct Waiter {
    uint64_t client_id;
    std::condition_variable cv;
    bool woken = false;
  };
  const size_t capacity_;
  // Copies into *out what client_id has not heard from *cursor on and moves
  // *cursor to the end; false when there was nothing for it (its own only).
  bool CollectLocked(uint64_t* cursor, uint64_t client_id, pb::ChangeNotices* out) REQUIRES(mu_);

  mutable std::mutex mu_;
  std::deque<Change> changes_ GUARDED_BY(mu_);  // positions first_ .. first_ + size - 1
  uint64_t first_ GUARDED_BY(mu_) = 0;
  std::vector<Waiter*> waiters_ GUARDED_BY(mu_);
};

}  // namespace dfs::meta
