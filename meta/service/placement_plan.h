// PlanChunk: the leader's next step for one chunk, from its replicas (as the
// database records them) and where the hash ring wants them.
//
// - Repair: fewer counted copies than the file wants: copy one onto the
//   first node in ring order that lacks it (from a counted copy, else from a
//   live draining node).
// - Trim: a surplus copy: a draining node's copy once the counted ones
//   suffice (that is how a drain empties a node), else a counted copy outside
//   the ring's first `want` nodes (a node came back, a move finished, or the
//   replication factor went down).
// - Move: exactly `want` copies, but not where the ring puts them (a node
//   joined or changed weight): copy onto the missing ring node; the surplus
//   trim then removes the misplaced copy. Only chunks whose placement
//   changed move.
//
// Dead nodes' copies are left alone: the node may come back. Nodes in
// `avoid` (a copy onto them failed lately, e.g. a full disk) are no target:
// the next node in ring order is. Nodes `short_of_room` are no target of a
// move, and of a repair only when no other node can take it; copies they
// hold stay (moving them off would bring them back once there is room). The
// leader passes there too the nodes a copy failed on a while ago
// (ClusterState::CopyFailed's last resorts).
//
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <vector>

#include "meta/state_machine/state_machine.h"

namespace dfs::meta {

struct ChunkAction {
  enum Kind { kNone, kRepair, kMove, kTrim };
  Kind kind = kNone;
  uint64_t source = 0;         // kRepair, kMove: copy from
  uint64_t target = 0;         // kRepair, kMove: copy to; kTrim: the copy to delete
  std::vector<uint64_t> keep;  // kTrim: copies that must still exist when it applies
};

// `ring` lists the live, not draining nodes in the chunk's ring order (all of
// them); `draining` the live nodes being drained.
ChunkAction PlanChunk(const StateMachine::RepairCandidate& chunk, const std::vector<uint64_t>& ring,
                      const std::vector<uint64_t>& draining, const std::vector<uint64_t>& avoid = {},
                      const std::vector<uint64_t>& short_of_room = {});

}  // namespace dfs::meta
