// ClusterState: what the leader keeps in memory only, never in the log -
// chunkserver liveness from heartbeats (with the ring over the live nodes),
// client session keepalives, and the garbage-delete commands handed out in
// the last heartbeat reply of each node (confirmed by its next heartbeat).
//
// Losing it (a restart, a new leader) is safe: nodes re-register when told
// to, sessions get a fresh grace period, and unconfirmed deletes are sent
// again (a chunkserver delete is idempotent).
//
// Thread-safety: all methods lock `mu_`; callable from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/ring.h"
#include "proto/meta.pb.h"

namespace dfs::meta {

class ClusterState {
 public:
  struct Node {
    std::string address;
    int64_t last_heartbeat_mono_ns = 0;
    uint64_t capacity_bytes = 0;
    uint64_t used_bytes = 0;
    uint64_t chunk_count = 0;
    uint64_t damaged_count = 0;
    double load = 0;
    bool live = false;
    bool full = false;  // short of room, by its own measure (chunkserver/store/room.h)
  };

  explicit ClusterState(int64_t node_dead_after_ns) : node_dead_after_ns_(node_dead_after_ns) {}

  // A node registered (or re-registered): live from `now_mono_ns`. `full`:
  // whether it is short of room; unknown (a new leader's view from the
  // database) keeps what this process last heard.
  void Registered(uint64_t node_id, const std::string& address, uint64_t capacity, uint64_t used,
                  int64_t now_mono_ns, std::optional<bool> full = std::nullopt);
  // Records a heartbeat; false if the node is unknown (it must re-register).
  bool Heartbeat(const pb::HeartbeatRequest& beat, int64_t now_mono_ns);
  // Marks nodes silent for longer than node_dead_after as dead (off the ring).
  void ExpireNodes(int64_t now_mono_ns);
  // Nodes being drained (from the database): they keep serving reads and
  // act as repair sources, but leave the ring, so no new chunk or copy
  // lands on them.
  void SetDraining(std::vector<uint64_t> draining);
  std::vector<uint64_t> Draining();
  // Ring weights of nodes (from the database; 1.0 when absent): a node of
  // weight 2 is given about twice the chunks of one of weight 1.
  void SetWeights(std::map<uint64_t, double> weights);
  // Up to `count` live, not draining node ids for `key` in ring order.
  std::vector<uint64_t> Placement(uint64_t key, size_t count);
  // Where a new chunk goes: the same, but nodes short of room come after
  // every node with room (still listed: with too few nodes with room, a
  // write tries them rather than fail at once).
  std::vector<uint64_t> PlacementForNew(uint64_t key, size_t count);
  // Live nodes short of room: the planner makes no copy onto them. Copies
  // they hold stay where they are (moving them off would move them back
  // once there is room again).
  std::vector<uint64_t> FullNodes();
  std::map<uint64_t, Node> Nodes();
  // Sum over live nodes.
  void Capacity(uint64_t* capacity_bytes, uint64_t* used_bytes);

  // Deletes handed to `node_id` in its last reply; returns and forgets them.
  std::vector<pb::ChunkRef> TakeSentGarbage(uint64_t node_id);
  void SetSentGarbage(uint64_t node_id, std::vector<pb::ChunkRef> refs);

  // ---- Re-replication in flight (derived again from the database by any
  // new leader, so losing it only delays repairs).
  // Claims a copy of `chunk_id` onto node `target` until `deadline_mono_ns`;
  // false if one is already in flight. `move`: a rebalancing copy, not a
  // repair. A claim also ends when its target dies or registers again (a
  // restarted chunkserver forgot its commands).
  bool StartRepair(uint64_t chunk_id, uint64_t target, int64_t deadline_mono_ns, bool move = false);
  // A copy finished or failed (reported by its target).
  void RepairDone(uint64_t chunk_id);
  // The copy of `chunk_id` onto `target` failed (its disk is full, say).
  // For kMaxAvoidNs FailedTargets lists `target` for that chunk, so that the
  // planner tries the next node rather than that one again: first as no
  // target at all, then, from kFirstAvoidNs on (doubling with each failure
  // in a row), as a last resort - a repair's target only when no other node
  // can take it, never a move's. On a small cluster (three chunkservers,
  // three copies) that node is the only one, and a failure that passed (it
  // was restarting) must not leave a chunk short of a copy for ten minutes.
  // The count is forgotten kMaxAvoidNs after the avoidance ends.
  static constexpr int64_t kFirstAvoidNs = int64_t{10} * 1'000'000'000;
  static constexpr int64_t kMaxAvoidNs = int64_t{600} * 1'000'000'000;
  void CopyFailed(uint64_t chunk_id, uint64_t target, int64_t now_mono_ns);
  struct Avoided {
    std::vector<uint64_t> targets;      // no target
    std::vector<uint64_t> last_resort;  // a repair's only when nothing else can take it
  };
  Avoided FailedTargets(uint64_t chunk_id, int64_t now_mono_ns);
  // Copies in flight (repairs and moves), forgetting those past their
  // deadline; the moves among them in *moves.
  size_t RepairsInFlight(int64_t now_mono_ns, size_t* moves = nullptr);
  // Commands for `node_id`'s next heartbeat reply.
  void AddCommand(uint64_t node_id, pb::Command command);
  std::vector<pb::Command> TakeCommands(uint64_t node_id);

  void SessionAlive(uint64_t client_id, int64_t now_mono_ns, int64_t lease_ns);
  bool KeepAlive(uint64_t client_id, int64_t now_mono_ns);
  void SessionClosed(uint64_t client_id);
  // Sessions whose lease ran out; they stay listed until SessionClosed.
  std::vector<uint64_t> ExpiredSessions(int64_t now_mono_ns);
  // This process did not run for a while (see MetaServiceImpl::Housekeeping):
  // every session and every live node counts as heard from at `now`, so
  // silence that may have been ours ends no session and kills no node.
  // Nodes already dead stay dead.
  void Refresh(int64_t now_mono_ns);

 private:
  void RebuildRingLocked();
  // Ends the claims on copies onto `node_id` and drops its undelivered ones.
  void ForgetCopiesToLocked(uint64_t node_id);

  const int64_t node_dead_after_ns_;
  std::mutex mu_;  // guards everything below; leaf lock
  std::map<uint64_t, Node> nodes_;
  common::HashRing ring_;  // live, not draining nodes only
  std::vector<uint64_t> draining_;
  std::map<uint64_t, double> weights_;
  std::map<uint64_t, std::vector<pb::ChunkRef>> sent_garbage_;
  struct Copy {
    uint64_t target = 0;
    int64_t deadline_mono_ns = 0;
    bool move = false;
  };
  std::map<uint64_t, Copy> repairs_;  // chunk id -> copy in flight
  struct FailedTarget {
    uint64_t target = 0;
    int64_t last_resort_mono_ns = 0;  // no target until then
    int64_t until_mono_ns = 0;        // a last resort until then
    int failures = 0;                 // in a row
  };
  std::map<uint64_t, std::vector<FailedTarget>> failed_targets_;  // chunk id ->
  std::map<uint64_t, std::vector<pb::Command>> commands_;  // node id -> pending
  struct Session {
    int64_t last_seen_mono_ns = 0;
    int64_t lease_ns = 0;
  };
  std::map<uint64_t, Session> sessions_;
};

}  // namespace dfs::meta
