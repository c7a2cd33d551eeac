// CarryQueue: what this client did that meta has not heard of yet, because
// the application needed no answer from meta for it: handles it closed
// (releases: close(2) does not wait for a release) and root's chmod/chown of
// files it holds open (set_attrs: FileSystem::SetAttr answered them itself).
//
// Why: each was a Raft entry of its own on meta. Queued here, they ride in
// the next mutation this client sends (RequestContext.releases/.set_attrs;
// meta applies them before that mutation's own op, set_attrs first). One
// that waited `delay_ms` with no mutation to carry it is handed to
// MetaClient's carry thread (WaitOverdue), which sends it alone, carrying the
// others.
//
// Order: a mutation takes every queued set_attr (at most kMaxQueuedSetAttrs
// are queued; callers check set_attr_count()), so nothing this client sends
// later reaches meta before them.
//
// What the delay costs: other clients see a closed handle up to that long
// after the close (a write lease it held: FileSystem waits that out; the
// space of an unlinked file comes back that much later), and a chmod/chown
// that much later (on top of their own attr_timeout).
//
// Waits use std::chrono::steady_clock: the thread parks on a condition
// variable, which a test clock could not wake.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <variant>

#include "common/thread_annotations.h"
#include "proto/meta.pb.h"

namespace dfs::fuse {

class CarryQueue {
 public:
  using Item = std::variant<pb::ReleaseRequest, pb::SetAttrRequest>;
  static constexpr size_t kMaxQueuedSetAttrs = 128;  // meta takes up to 1024 in one request

  explicit CarryQueue(int64_t delay_ms) : delay_(std::chrono::milliseconds(delay_ms)) {}

  void Add(Item item);
  // Moves every queued set_attr and up to `max_releases` releases, oldest
  // first, into `ctx`.
  void TakeInto(pb::RequestContext* ctx, int max_releases);
  // Queues again, in front (they are the oldest), what a carrier that never
  // reached meta held.
  void PutBack(const pb::RequestContext& ctx);
  // Blocks until the oldest item has waited `delay_ms`, and takes it; after
  // Stop, returns what is left at once, then nullopt.
  std::optional<Item> WaitOverdue();
  void Stop();
  bool stopping() const;
  // Forgets what is queued; returns how many.
  size_t Clear();
  size_t size() const;
  size_t set_attr_count() const;
  bool HoldsSetAttrFor(uint64_t ino) const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Queued {
    Item item;
    Clock::time_point since;
  };

  const Clock::duration delay_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_ GUARDED_BY(mu_);
  size_t set_attrs_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace dfs::fuse
