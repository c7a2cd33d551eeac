// AttrOverlay: attribute changes this mount answered itself (root's
// chmod/chown of a file it holds open, carried to meta later: CarryQueue),
// laid over what meta answers so that this mount never sees them undone.
//
// A change is laid over an answer unless meta applied it before the read
// that got the answer started: a read notes Epoch() before it sends, and
// each acknowledgement of a carried change starts a new epoch. So a read
// that raced the acknowledgement still shows the change, and one sent after
// it shows meta's state as it is (later changes by others included).
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "common/thread_annotations.h"
#include "proto/meta.pb.h"

namespace dfs::fuse {

class AttrOverlay {
 public:
  uint64_t Epoch() const;
  // Records that `attr` (its mode, uid, gid and ctime) is what this mount
  // answered for attr.ino(); returns the change's number for Acked.
  uint64_t Add(const pb::Attr& attr);
  // Meta applied the changes of `ino` up to number `seq`.
  void Acked(uint64_t ino, uint64_t seq);
  // Lays the changes of attr->ino() over it, as above.
  void Apply(pb::Attr* attr, uint64_t read_epoch) const;
  // Whether meta has yet to apply a change of `ino`.
  bool Pending(uint64_t ino) const;
  // Waits until it has not, or `timeout` passed; returns !Pending(ino).
  bool WaitApplied(uint64_t ino, std::chrono::milliseconds timeout) const;
  size_t size() const;

 private:
  struct Change {
    uint32_t mode = 0, uid = 0, gid = 0;
    int64_t ctime_ns = 0;
    uint64_t seq = 0;
    uint64_t acked_epoch = 0;  // 0: not yet applied by meta
    std::chrono::steady_clock::time_point acked_at;
  };
  // Applied changes are kept this long for reads that started before.
  static constexpr std::chrono::seconds kKeepApplied{120};

  mutable std::mutex mu_;
  mutable std::condition_variable applied_cv_;
  std::unordered_map<uint64_t, Change> changes_ GUARDED_BY(mu_);
  uint64_t epoch_ GUARDED_BY(mu_) = 1;
  uint64_t next_seq_ GUARDED_BY(mu_) = 1;
  std::chrono::steady_clock::time_point last_sweep_ GUARDED_BY(mu_);
};

}  // namespace dfs::fuse
