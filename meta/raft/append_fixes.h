// Corrections applied to AppendEntries traffic around libraft 0.15, which
// gets three follower-side rules wrong (all seen in the kill -9 storm test,
// traced with LIBRAFT_TRACE=1; later libraft releases fix them the same way):
//
// 1. An AppendEntries whose prev_log_index lies below the follower's own
//    snapshot is rejected ("no entry at index"). When the leader's newest
//    snapshot is older than the follower's, the leader answers by sending
//    that older snapshot, the follower calls it stale, and the two loop
//    forever: the follower never catches up. With no snapshot at all on the
//    leader, the entries would even be appended at the wrong indexes.
//    Fix: entries up to our snapshot are committed, so every legitimate
//    leader holds them unchanged; skip them and start at our snapshot.
// 2. On an AppendEntries that adds nothing new (a heartbeat), the follower
//    commits up to min(leader_commit, its last index) instead of the last
//    index the message vouches for. A follower with an uncommitted tail from
//    an old term would apply that stale tail. Fix: cap leader_commit at
//    prev_log_index + n_entries (Raft figure 2, "index of last new entry").
// 3. Its synchronous success reply reports its last stored index, which may
//    again cover such a stale tail, so the leader could count a replica that
//    it does not have. Fix: cap last_log_index the same way.
//
// Pure functions on libraft's message structs; the loop thread calls them.
#pragma once

#include "meta/raft/raft_c.h"

namespace dfs::meta::raft {

// What the receiving follower's own log starts with.
struct LocalSnapshot {
  raft_index index = 0;  // 0: no snapshot
  raft_term term = 0;
};

// Fixes 1 and 2 on an incoming AppendEntries, in place (entries no longer
// needed are freed the way libraft frees received ones). True if changed.
bool FixIncomingAppend(raft_append_entries* append, const LocalSnapshot& snapshot);

// The highest index an (already fixed) AppendEntries proves to match.
inline raft_index VouchedThrough(const raft_append_entries& append) {
  return append.prev_log_index + append.n_entries;
}

// Fix 3 on the success reply to that AppendEntries. True if changed.
bool FixAppendResult(raft_append_entries_result* result, raft_index vouched_through);

}  // namespace dfs::meta::raft
