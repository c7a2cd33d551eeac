#include "meta/service/cluster_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <utility>

namespace dfs::meta {

namespace {
void NoteRoom(uint64_t node_id, ClusterState::Node& node, bool full) {
  if (full == node.full) return;
  node.full = full;
  if (full) {
    spdlog::warn("node {:016x} at {} is short of room ({} MiB of {} MiB used): new chunks and copies go elsewhere",
                 node_id, node.address, node.used_bytes >> 20, node.capacity_bytes >> 20);
  } else {
    spdlog::info("node {:016x} at {} has room again: it takes new chunks", node_id, node.address);
  }
}
}  // namespace

void ClusterState::Registered(uint64_t node_id, const std::string& address, uint64_t capacity, uint64_t used,
                              int64_t now_mono_ns, std::optional<bool> full) {
  std::lock_guard<std::mutex> lock(mu_);
  Node& node = nodes_[node_id];
  node.address = address;
  node.capacity_bytes = capacity;
  node.used_bytes = used;
  if (full.has_value()) NoteRoom(node_id, node, *full);
  node.last_heartbeat_mono_ns = now_mono_ns;
  ForgetCopiesToLocked(node_id);
  if (!node.live) {
    node.live = true;
    RebuildRingLocked();
    spdlog::info("node {:016x} at {} registered: up", node_id, address);
  }
}

bool ClusterState::Heartbeat(const pb::HeartbeatRequest& beat, int64_t now_mono_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(beat.node_id());
  if (it == nodes_.end()) return false;
  Node& node = it->second;
  node.last_heartbeat_mono_ns = now_mono_ns;
  node.capacity_bytes = beat.capacity_bytes();
  node.used_bytes = beat.used_bytes();
  node.chunk_count = beat.chunk_count();
  node.damaged_count = beat.damaged_count();
  node.load = beat.load();
  NoteRoom(beat.node_id(), node, beat.full());
  if (!node.live) {
    node.live = true;
    RebuildRingLocked();
    spdlog::info("node {:016x} at {} is back: up", beat.node_id(), node.address);
  }
  return true;
}

void ClusterState::ExpireNodes(int64_t now_mono_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  bool changed = false;
  for (auto& [id, node] : nodes_) {
    if (node.live && now_mono_ns - node.last_heartbeat_mono_ns > node_dead_after_ns_) {
      node.live = false;
      changed = true;
      ForgetCopiesToLocked(id);
      spdlog::warn("node {:016x} at {} is dead: no heartbeat for {} ms; its chunks are copied again", id,
                   node.address, (now_mono_ns - node.last_heartbeat_mono_ns) / 1'000'000);
    }
  }
  if (changed) RebuildRingLocked();
}

void ClusterState::RebuildRingLocked() {
  ring_ = common::HashRing();
  for (auto& [id, node] : nodes_) {
    if (node.live && std::find(draining_.begin(), draining_.end(), id) == draining_.end()) {
      auto w = weights_.find(id);
      (void)ring_.AddNode(id, w == weights_.end() ? 1.0 : w->second);
    }
  }
}

void ClusterState::SetDraining(std::vector<uint64_t> draining) {
  std::sort(draining.begin(), draining.end());
  std::lock_guard<std::mutex> lock(mu_);
  if (draining == draining_) return;
  draining_ = std::move(draining);
  RebuildRingLocked();
}

void ClusterState::SetWeights(std::map<uint64_t, double> weights) {
  std::lock_guard<std::mutex> lock(mu_);
  if (weights == weights_) return;
  weights_ = std::move(weights);
  RebuildRingLocked();
}

std::vector<uint64_t> ClusterState::Draining() {
  std::lock_guard<std::mutex> lock(mu_);
  return draining_;
}

bool ClusterState::StartRepair(uint64_t chunk_id, uint64_t target, int64_t deadline_mono_ns, bool move) {
  std::lock_guard<std::mutex> lock(mu_);
  return repairs_.emplace(chunk_id, Copy{target, deadline_mono_ns, move}).second;
}

void ClusterState::ForgetCopiesToLocked(uint64_t node_id) {
  std::erase_if(repairs_, [&](const auto& entry) { return entry.second.target == node_id; });
  commands_.erase(node_id);  // copy commands only: deletes go by sent_garbage_
}

void ClusterState::RepairDone(uint64_t chunk_id) {
  std::lock_guard<std::mutex> lock(mu_);
  repairs_.erase(chunk_id);
}

void ClusterState::CopyFailed(uint64_t chunk_id, uint64_t target, int64_t now_mono_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  // Bounded: forgetting the lot costs one more failed try per chunk.
  if (failed_targets_.size() >= 65'536) failed_targets_.clear();
  std::vector<FailedTarget>& targets = failed_targets_[chunk_id];
  auto it = std::find_if(targets.begin(), targets.end(), [&](const FailedTarget& t) { return t.target == target; });
  if (it == targets.end()) it = targets.insert(targets.end(), FailedTarget{.target = target});
  it->failures = std::min(it->failures + 1, 32);
  int64_t avoid_ns = kFirstAvoidNs;
  for (int i = 1; i < it->failures && avoid_ns < kMaxAvoidNs; ++i) avoid_ns *= 2;
  it->last_resort_mono_ns = now_mono_ns + std::min(avoid_ns, kMaxAvoidNs);
  it->until_mono_ns = now_mono_ns + kMaxAvoidNs;
}

ClusterState::Avoided ClusterState::FailedTargets(uint64_t chunk_id, int64_t now_mono_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failed_targets_.find(chunk_id);
  if (it == failed_targets_.end()) return {};
  std::erase_if(it->second, [&](const FailedTarget& t) { return now_mono_ns - t.until_mono_ns >= kMaxAvoidNs; });
  Avoided out;
  for (const FailedTarget& t : it->second) {
    if (now_mono_ns < t.last_resort_mono_ns) {
      out.targets.push_back(t.target);
    } else if (now_mono_ns < t.until_mono_ns) {
      out.last_resort.push_back(t.target);
    }
  }
  if (it->second.empty()) failed_targets_.erase(it);
  return out;
}

size_t ClusterState::RepairsInFlight(int64_t now_mono_ns, size_t* moves) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n_moves = 0;
  for (auto it = repairs_.begin(); it != repairs_.end();) {
    if (it->second.deadline_mono_ns < now_mono_ns) {
      it = repairs_.erase(it);
    } else {
      n_moves += it->second.move;
      ++it;
    }
  }
  if (moves != nullptr) *moves = n_moves;
  return repairs_.size();
}

void ClusterState::AddCommand(uint64_t node_id, pb::Command command) {
  std::lock_guard<std::mutex> lock(mu_);
  commands_[node_id].push_back(std::move(command));
}

std::vector<pb::Command> ClusterState::TakeCommands(uint64_t node_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = commands_.find(node_id);
  if (it == commands_.end()) return {};
  std::vector<pb::Command> out = std::move(it->second);
  commands_.erase(it);
  return out;
}

std::vector<uint64_t> ClusterState::Placement(uint64_t key, size_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  return ring_.Successors(key, count);
}

std::vector<uint64_t> ClusterState::PlacementForNew(uint64_t key, size_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t full = 0;
  for (const auto& [id, node] : nodes_) full += node.live && node.full;
  // Enough of the ring that `count` nodes with room are in it, if there are.
  std::vector<uint64_t> order = ring_.Successors(key, count + full);
  if (full == 0) return order;
  std::stable_partition(order.begin(), order.end(), [&](uint64_t id) {
    auto it = nodes_.find(id);
    return it == nodes_.end() || !it->second.full;
  });
  if (order.size() > count) order.resize(count);
  return order;
}

std::vector<uint64_t> ClusterState::FullNodes() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> out;
  for (const auto& [id, node] : nodes_) {
    if (node.live && node.full) out.push_back(id);
  }
  return out;
}

std::map<uint64_t, ClusterState::Node> ClusterState::Nodes() {
  std::lock_guard<std::mutex> lock(mu_);
  return nodes_;
}

void ClusterState::Capacity(uint64_t* capacity_bytes, uint64_t* used_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  *capacity_bytes = *used_bytes = 0;
  for (auto& [id, node] : nodes_) {
    if (!node.live) continue;
    *capacity_bytes += node.capacity_bytes;
    *used_bytes += node.used_bytes;
  }
}

std::vector<pb::ChunkRef> ClusterState::TakeSentGarbage(uint64_t node_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sent_garbage_.find(node_id);
  if (it == sent_garbage_.end()) return {};
  std::vector<pb::ChunkRef> refs = std::move(it->second);
  sent_garbage_.erase(it);
  return refs;
}

void ClusterState::SetSentGarbage(uint64_t node_id, std::vector<pb::ChunkRef> refs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (refs.empty()) {
    sent_garbage_.erase(node_id);
  } else {
    sent_garbage_[node_id] = std::move(refs);
  }
}

void ClusterState::SessionAlive(uint64_t client_id, int64_t now_mono_ns, int64_t lease_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_[client_id] = Session{now_mono_ns, lease_ns};
}

bool ClusterState::KeepAlive(uint64_t client_id, int64_t now_mono_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) return false;
  it->second.last_seen_mono_ns = now_mono_ns;
  return true;
}

void ClusterState::SessionClosed(uint64_t client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(client_id);
}

void ClusterState::Refresh(int64_t now_mono_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, session] : sessions_) session.last_seen_mono_ns = std::max(session.last_seen_mono_ns, now_mono_ns);
  for (auto& [id, node] : nodes_) {
    if (node.live) node.last_heartbeat_mono_ns = std::max(node.last_heartbeat_mono_ns, now_mono_ns);
  }
}

std::vector<uint64_t> ClusterState::ExpiredSessions(int64_t now_mono_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> expired;
  for (auto& [id, session] : sessions_) {
    if (now_mono_ns - session.last_seen_mono_ns > session.lease_ns) expired.push_back(id);
  }
  return expired;
}

}  // namespace dfs::meta
