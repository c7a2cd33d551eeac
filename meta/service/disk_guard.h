// DiskGuard: keeps a metadata member from filling its data folder.
//
// Why: every mutation appends to the Raft log and commits a SQLite
// transaction in the data folder, and a member that cannot commit one stops
// (db.cc fails it rather than let its copy differ from the group's). Once
// the folder holds less than `min_free_bytes` plus the size of meta.db (room
// for the next Raft snapshot, a copy of it) the leader refuses the Ops that
// make the namespace or the chunk map grow (creates, links, xattrs, chunk
// leases and commits) with RESOURCE_EXHAUSTED, which clients answer as
// ENOSPC, as a full local disk does. The whole call fails, not only its Op:
// the releases and attribute changes it carried go with the next one. Deletes, truncates, renames, releases,
// locks, sessions and the cluster's own upkeep go on, so room can be made
// and nothing already written is lost. Only the leader refuses: for its own
// folder, and, from its followers' reports, once fewer than a majority of
// the members have room (member_rooms.h). A single follower whose folder
// fills stops, and the group goes on without it.
//
// Thread-safety: Refresh on one thread (housekeeping), Check from any.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "common/status.h"
#include "proto/meta_entry.pb.h"

namespace dfs::meta {

class DiskGuard {
 public:
  // Room left in `folder` (statvfs f_bavail) and the bytes of its meta.db.
  struct Room {
    uint64_t free_bytes = 0;
    uint64_t db_bytes = 0;
  };
  using Measure = std::function<common::Result<Room>(const std::string& folder)>;

  // `min_free_bytes` 0 turns the refusals off (the folder is still
  // measured, for metrics). `measure` (tests) replaces statvfs and stat.
  DiskGuard(std::string folder, uint64_t min_free_bytes, Measure measure = nullptr);

  // Measures the folder again; logs when the guard starts or stops refusing.
  void Refresh();
  // OK, or RESOURCE_EXHAUSTED with the folder's room when `op` grows the
  // state and the folder is short of room.
  common::Status Check(const pb::Op& op) const;
  // Whether `op` adds to the namespace or the chunk map.
  static bool Grows(const pb::Op& op);
  // As last measured (UINT64_MAX before the first measure).
  uint64_t free_bytes() const { return free_bytes_.load(std::memory_order_relaxed); }
  bool short_of_room() const { return short_.load(std::memory_order_relaxed); }

 private:
  const std::string folder_;
  const uint64_t min_free_bytes_;
  const Measure measure_;
  std::atomic<uint64_t> free_bytes_{UINT64_MAX};
  std::atomic<uint64_t> needed_bytes_{0};
  std::atomic<bool> short_{false};
};

}  // namespace dfs::meta
