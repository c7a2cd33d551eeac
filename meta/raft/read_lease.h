// The leader's read lease: until when it may answer reads from its own
// state without asking the group (check-quorum reads).
//
// Why it is safe: a follower that heard from the leader at time t refuses to
// vote for anyone else until its own election timer runs out, which libraft
// randomises to at least election_timeout after t (0.15 rejects RequestVote
// while it knows a leader). So once a quorum - the leader counts itself -
// heard from it at or after t, no other leader can be elected before
// t + election_timeout. `margin` covers clock-rate differences.
//
// How the leader knows t without trusting arrival times (an answer may have
// waited in a socket while the leader was stopped): it remembers when it
// appended each log entry, and a successful AppendEntries result whose
// last_log_index reaches entry i proves the follower received entry i, which
// did not exist before it was appended. So a follower's contact time is the
// append time of the newest remembered entry its answer covers. When there
// is no traffic the leader appends a barrier every election_timeout / 4 to
// keep the lease fresh. Assumes every member runs with the same election
// timeout. A restarted follower forgets that it heard from the leader, so
// RaftNode ignores vote requests for one election timeout after it starts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace dfs::meta::raft {

// `contacts`: for each voter the monotonic time it was last heard from
// (the leader itself: now; never heard: 0). Returns the latest time at which
// a quorum of voters had all been heard from, or 0 if no quorum ever was.
inline int64_t QuorumContact(std::vector<int64_t> contacts) {
  if (contacts.empty()) return 0;
  std::sort(contacts.begin(), contacts.end(), std::greater<int64_t>());
  return contacts[contacts.size() / 2];  // the (n/2 + 1)-th most recent
}

// Until when reads are safe given the quorum contact time.
inline int64_t LeaseUntil(int64_t quorum_contact_ns, int64_t election_timeout_ns, int64_t margin_ns) {
  if (quorum_contact_ns <= 0) return 0;
  return quorum_contact_ns + election_timeout_ns - margin_ns;
}

}  // namespace dfs::meta::raft
