// Turns Nagle's algorithm off on every connection of a raft_uv_tcp
// transport. libraft 0.15 never sets TCP_NODELAY, so a message sent while the
// previous one is unacknowledged (pipelined AppendEntries, or a follower's
// results) waits for that ACK, which the peer may delay by up to 40 ms:
// meta_raft_bench's p99 commit latency at 16 clients was ~45 ms.
//
// How: the transport's `listen` and `connect` are wrapped, so each stream it
// hands libraft (accepted or connected) gets uv_tcp_nodelay first.
//
// Thread-safety: call on the loop thread, before raft_uv_init.
#pragma once

#include "meta/raft/raft_c.h"

namespace dfs::meta::raft {

// `transport` is initialised by raft_uv_tcp_init.
void DisableNagle(raft_uv_transport* transport);

}  // namespace dfs::meta::raft
