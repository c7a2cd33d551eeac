// RemoteChanges: which directories and inodes other clients changed, as
// meta's notices told this mount (ChangeWatcher), so that a listing or a
// held listing page fetched before such a change is not used, while those
// of directories nobody touched stay in use.
//
// Why: one counter for every notice made any change anywhere end every
// listing and held page of the mount: `ls -lR` of a 7,000-file tree took
// 1.8x as long while another mount created files in a directory the walk
// never visited (3 metas here).
//
// A fetch takes Now() before its call. What it fetched may answer for
// directory `dir` and its entry `ino` while Current(dir, since) and
// Current(ino, since). Memory: at most max_ids marks; beyond that, or once
// notices were missed, everything fetched before counts as changed.
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common/thread_annotations.h"

namespace dfs::fuse {

class RemoteChanges {
 public:
  explicit RemoteChanges(size_t max_ids = 16384) : max_ids_(max_ids) {}
  RemoteChanges(const RemoteChanges&) = delete;
  RemoteChanges& operator=(const RemoteChanges&) = delete;

  // The stamp a fetch takes before its call.
  uint64_t Now() const;
  // A notice: `ids` are directories whose entries changed and inodes whose
  // attributes did; `all` (notices were missed) marks everything.
  void Note(const std::vector<uint64_t>& ids, bool all);
  // Nothing of `id` changed since a fetch that took `since`.
  bool Current(uint64_t id, uint64_t since) const;
  // Current for each of `ids`, under one lock.
  bool Current(const std::vector<uint64_t>& ids, uint64_t since) const;

  size_t TEST_Marks() const;

 private:
  bool CurrentLocked(uint64_t id, uint64_t since) const REQUIRES(mu_);

  const size_t max_ids_;
  mutable std::mutex mu_;
  uint64_t seq_ GUARDED_BY(mu_) = 0;    // notices noted
  uint64_t floor_ GUARDED_BY(mu_) = 0;  // fetches before it count as changed
  std::unordered_map<uint64_t, uint64_t> changed_at_ GUARDED_BY(mu_);  // id -> seq_ of its last notice
};

}  // namespace dfs::fuse
