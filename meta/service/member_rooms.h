// MemberRooms: the leader's view of its followers' data folders (their
// ReportRoom calls), and whether the group can still take Ops that grow.
//
// Why: every member stores the same log and database, so a follower's disk
// fills as fast as the leader's, or sooner if it is smaller. A follower that
// cannot commit stops (see disk_guard.h), and while a majority of the
// voting members still has room the group goes on without it. Once fewer
// than a majority have room, the next one to fill would take the quorum,
// and every call, with it: the leader then refuses what grows, as it does
// for its own disk. A report older than kFreshNs counts as having room (a
// silent follower is the Raft layer's business, not this one's).
//
// Leader memory only: a new leader starts empty and hears from every
// follower within a report interval.
//
// Thread-safety: all methods lock `mu_`; callable from any thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

namespace dfs::meta {

class MemberRooms {
 public:
  static constexpr int64_t kFreshNs = int64_t{10} * 1'000'000'000;

  struct Room {
    uint64_t free_bytes = 0;
    bool short_of_room = false;
  };

  void Report(uint64_t id, Room room, int64_t now_mono_ns);
  // The fresh report of member `id`, if any.
  std::optional<Room> Of(uint64_t id, int64_t now_mono_ns) const;
  // Those of `voters` whose fresh report says short of room.
  std::vector<uint64_t> Short(const std::vector<uint64_t>& voters, int64_t now_mono_ns) const;
  // Whether any fresh report says short of room (cheap: checked first on
  // every Op that grows).
  bool AnyShort(int64_t now_mono_ns) const;
  void Clear();

 private:
  struct Heard {
    Room room;
    int64_t at_mono_ns = 0;
  };
  mutable std::mutex mu_;  // guards heard_; leaf lock
  std::map<uint64_t, Heard> heard_;
};

// Whether a group of `voters` voting members, `short_count` of them short
// of room (the leader included when it is), still has a majority with room.
inline bool MajorityHasRoom(size_t voters, size_t short_count) {
  return voters == 0 || voters - std::min(voters, short_count) >= voters / 2 + 1;
}

}  // namespace dfs::meta
