// LockWaiters: blocked lock calls (fcntl F_SETLKW, flock without LOCK_NB)
// waiting for another owner's lock to go. One thread retries each in turn,
// backing off from kFirstPauseMs to kMaxPauseMs between its tries, and
// answers it once its lock is granted, its call was interrupted (a signal),
// or a try fails otherwise. A waiting call thus holds no FUSE worker thread
// (libfuse has few, and the lock may wait on another call of this mount).
//
// No order among waiters: after an unlock, whichever tries first wins (a
// local filesystem promises no fairness between processes either). A lock
// given up by a mount that died is taken once meta ends its session.
//
// Thread-safety: Add and size from any thread; the callbacks of one waiter
// run on the waiter thread, never two at once.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"

namespace dfs::fuse {

class LockWaiters {
 public:
  static constexpr int64_t kFirstPauseMs = 5;
  static constexpr int64_t kMaxPauseMs = 200;

  struct Waiter {
    std::function<common::Status()> attempt;  // Aborted: still in the way
    std::function<bool()> interrupted;        // the call was interrupted
    // Called once with the outcome: OK, the failed try's status, or
    // Cancelled (EINTR) when interrupted or when the waiters stop.
    std::function<void(const common::Status&)> answer;
  };

  LockWaiters();
  ~LockWaiters();  // answers every waiter still waiting with Cancelled
  LockWaiters(const LockWaiters&) = delete;
  LockWaiters& operator=(const LockWaiters&) = delete;

  void Add(Waiter waiter);
  size_t size();

 private:
  struct Entry {
    Waiter waiter;
    int64_t due_mono_ms = 0;
    int64_t pause_ms = kFirstPauseMs;
  };
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> waiting_ GUARDED_BY(mu_);
  size_t trying_ GUARDED_BY(mu_) = 0;  // taken out of waiting_ for a try
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dfs::fuse
