#include "meta/service/placement_plan.h"

#include <algorithm>

namespace dfs::meta {

namespace {
bool Has(const std::vector<uint64_t>& v, uint64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }
}  // namespace

ChunkAction PlanChunk(const StateMachine::RepairCandidate& chunk, const std::vector<uint64_t>& ring,
                      const std::vector<uint64_t>& draining, const std::vector<uint64_t>& avoid,
                      const std::vector<uint64_t>& short_of_room) {
  ChunkAction action;
  const std::vector<uint64_t>& holders = chunk.live_holders;
  auto free_target = [&](uint64_t node) {
    return !Has(holders, node) && !Has(chunk.other_holders, node) && !Has(chunk.deleting, node) &&
           !Has(avoid, node);
  };
  std::vector<uint64_t> draining_copies;
  for (uint64_t node : chunk.other_holders) {
    if (Has(draining, node)) draining_copies.push_back(node);
  }

  if (holders.size() < chunk.want) {
    std::vector<uint64_t> sources = holders;
    sources.insert(sources.end(), draining_copies.begin(), draining_copies.end());
    if (sources.empty()) return action;  // nothing to copy from: lost until a holder returns
    // A node with room first; a node short of room only if no other can
    // take it (a missing copy matters more than the node's reserve).
    for (bool roomy : {true, false}) {
      for (uint64_t node : ring) {
        if (free_target(node) && Has(short_of_room, node) != roomy) {
          action.kind = ChunkAction::kRepair;
          action.target = node;
          action.source = sources[(chunk.chunk_id + node) % sources.size()];
          return action;
        }
      }
    }
    return action;  // every live node already holds it
  }

  const size_t n_wanted = std::min<size_t>(chunk.want, ring.size());
  const std::vector<uint64_t> wanted(ring.begin(), ring.begin() + static_cast<std::ptrdiff_t>(n_wanted));
  if (!draining_copies.empty()) {
    action.kind = ChunkAction::kTrim;
    action.target = draining_copies.front();
    action.keep = holders;
    return action;
  }
  if (holders.size() > chunk.want) {
    // A copy outside the ring's choice goes.
    uint64_t victim = 0;
    for (uint64_t node : holders) {
      if (!Has(wanted, node)) victim = node;
    }
    if (victim == 0) return action;  // cannot happen: |wanted| <= want < |holders|
    action.kind = ChunkAction::kTrim;
    action.target = victim;
    for (uint64_t node : holders) {
      if (node != victim) action.keep.push_back(node);
    }
    return action;
  }
  for (uint64_t node : wanted) {
    if (Has(holders, node) || !free_target(node) || Has(short_of_room, node)) continue;
    action.kind = ChunkAction::kMove;
    action.target = node;
    // From the copy that will be trimmed once this one exists.
    action.source = holders.front();
    for (uint64_t holder : holders) {
      if (!Has(wanted, holder)) action.source = holder;
    }
    return action;
  }
  return action;
}

}  // namespace dfs::meta
