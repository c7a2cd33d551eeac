// Placement upkeep on the leader: re-replication, rebalancing and surplus
// trimming, one bounded pass per housekeeping tick (placement_plan.h decides
// per chunk; this file scans, throttles and dispatches).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <vector>

#include "meta/service/meta_service.h"
#include "meta/service/placement_plan.h"
#include "meta/service/write_lease.h"

namespace dfs::meta {

namespace {
// Draining nodes that are alive: a chunk's copy there is a repair source
// and, once the counted copies suffice, a surplus.
std::vector<uint64_t> LiveDrainingOf(const std::vector<uint64_t>& draining,
                                     const std::map<uint64_t, ClusterState::Node>& nodes) {
  std::vector<uint64_t> out;
  for (uint64_t node : draining) {
    auto it = nodes.find(node);
    if (it != nodes.end() && it->second.live) out.push_back(node);
  }
  return out;
}

// Nodes a chunk's copy goes to only when no other node can take it (and a
// move never): those short of room, and those a copy of it failed on a while
// ago (ClusterState::CopyFailed). `short_of_room` itself for the chunks with
// no such failure, which are nearly all: a pass scans every chunk, and
// copying the list for each of them would allocate once per chunk.
const std::vector<uint64_t>& LastResorts(const std::vector<uint64_t>& short_of_room,
                                         const ClusterState::Avoided& failed, std::vector<uint64_t>& scratch) {
  if (failed.last_resort.empty()) return short_of_room;
  scratch = short_of_room;
  scratch.insert(scratch.end(), failed.last_resort.begin(), failed.last_resort.end());
  return scratch;
}

// The key the chunk's copies were placed by when it was made.
uint64_t PlacementKeyOf(const StateMachine::RepairCandidate& c) {
  return c.place_key != 0 ? c.place_key : ChunkPlacementKey(c.ino, c.index);
}
}  // namespace

void MetaServiceImpl::Reconcile() {
  const int64_t now = clock_.MonotonicNs();
  size_t moves = 0;
  size_t in_flight = cluster_->RepairsInFlight(now, &moves);
  std::vector<uint64_t> live = LiveNodes();
  if (live.empty()) return;
  std::map<uint64_t, ClusterState::Node> nodes = cluster_->Nodes();
  const std::vector<uint64_t> draining = LiveDrainingOf(cluster_->Draining(), nodes);
  auto chunks = state_machine_->ScanReplicas(live, repair_cursor_, options_.repair_scan, clock_.UnixNs() / 1'000'000,
                                             &repair_cursor_);
  // Most endangered first: one copy left before two; the rest after.
  std::stable_sort(chunks.begin(), chunks.end(), [](const auto& a, const auto& b) {
    const size_t ka = a.live_holders.size() < a.want ? a.live_holders.size() : SIZE_MAX;
    const size_t kb = b.live_holders.size() < b.want ? b.live_holders.size() : SIZE_MAX;
    return ka < kb;
  });
  const std::vector<uint64_t> full = cluster_->FullNodes();
  size_t trims = 0;
  std::vector<uint64_t> scratch;
  for (const StateMachine::RepairCandidate& c : chunks) {
    const ClusterState::Avoided failed = cluster_->FailedTargets(c.chunk_id, now);
    ChunkAction action = PlanChunk(c, cluster_->Placement(PlacementKeyOf(c), live.size()), draining, failed.targets,
                                   LastResorts(full, failed, scratch));
    if (action.kind == ChunkAction::kNone) continue;
    if (action.kind == ChunkAction::kTrim) {
      if (trims >= options_.max_trims) continue;
      ++trims;
      pb::Op op;
      pb::ReplicaChangeOp* change = op.mutable_replica_change();
      change->set_chunk_id(c.chunk_id);
      change->set_version(c.version);
      change->set_node_id(action.target);
      change->set_added(false);
      for (uint64_t node : action.keep) change->add_keep(node);
      common::Result<pb::OpResult> result = Submit(std::move(op));
      if (!result.ok()) return;  // lost leadership, or shutting down
      if (result->status().code() == 0) {
        spdlog::info("placement: chunk {:016x} v{} drops its surplus copy on {:016x} ({} kept)", c.chunk_id,
                     c.version, action.target, action.keep.size());
      }
      continue;
    }
    const bool move = action.kind == ChunkAction::kMove;
    if (in_flight >= options_.max_repairs || (move && moves >= options_.max_moves)) continue;
    if (!cluster_->StartRepair(c.chunk_id, action.target, now + options_.repair_timeout_ms * 1'000'000, move)) continue;
    pb::Command command;
    command.set_command_id(next_command_id_.fetch_add(1));
    pb::ReplicateChunkCommand* r = command.mutable_replicate();
    r->set_chunk_id(c.chunk_id);
    r->set_version(c.version);
    r->set_source_node_id(action.source);
    r->set_source_address(nodes[action.source].address);
    r->set_bandwidth_limit_bytes_per_s(options_.repair_bandwidth);
    cluster_->AddCommand(action.target, std::move(command));
    ++in_flight;
    moves += move;
    if (move) {
      spdlog::info("rebalance: chunk {:016x} v{} moves to its ring node {:016x} (copy from {:016x})", c.chunk_id,
                   c.version, action.target, action.source);
    } else {
      spdlog::info("repair: chunk {:016x} v{} has {} of {} copies; copying from {:016x} to {:016x}", c.chunk_id,
                   c.version, c.live_holders.size(), c.want, action.source, action.target);
    }
  }
}

MetaServiceImpl::PlacementCounts MetaServiceImpl::CountPlacement() {
  PlacementCounts counts;
  std::vector<uint64_t> live = LiveNodes();
  std::map<uint64_t, ClusterState::Node> nodes = cluster_->Nodes();
  const std::vector<uint64_t> draining = LiveDrainingOf(cluster_->Draining(), nodes);
  const int64_t now_ms = clock_.UnixNs() / 1'000'000;
  const std::vector<uint64_t> full = cluster_->FullNodes();
  uint64_t cursor = 0;
  std::vector<uint64_t> scratch;
  do {
    for (const StateMachine::RepairCandidate& c : state_machine_->ScanReplicas(live, cursor, 100'000, now_ms, &cursor)) {
      if (c.live_holders.size() < c.want) {
        ++counts.under;
        continue;
      }
      const ClusterState::Avoided failed = cluster_->FailedTargets(c.chunk_id, clock_.MonotonicNs());
      switch (PlanChunk(c, cluster_->Placement(PlacementKeyOf(c), live.size()), draining, failed.targets,
                        LastResorts(full, failed, scratch))
                  .kind) {
        case ChunkAction::kTrim: ++counts.surplus; break;
        case ChunkAction::kMove: ++counts.misplaced; break;
        default: break;
      }
    }
  } while (cursor != 0);
  return counts;
}

}  // namespace dfs::meta
