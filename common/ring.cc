#include "common/ring.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace dfs::common {
namespace {

// Writes `value` little-endian whatever the host order, so positions are the
// same on every machine.
void PutLe64(uint64_t value, unsigned char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}

}  // namespace

uint64_t RingKeyPosition(uint64_t key) {
  unsigned char bytes[8];
  PutLe64(key, bytes);
  return XXH64(bytes, sizeof(bytes), kRingKeySeed);
}

uint64_t RingVnodePosition(uint64_t node_id, uint64_t vnode_index) {
  unsigned char bytes[16];
  PutLe64(node_id, bytes);
  PutLe64(vnode_index, bytes + 8);
  return XXH64(bytes, sizeof(bytes), 0);
}

HashRing::HashRing(uint32_t vnodes_per_unit_weight)
    : vnodes_per_unit_weight_(vnodes_per_unit_weight) {}

Result<uint64_t> HashRing::VnodeCount(double weight) const {
  // `!(weight > 0)` also rejects NaN.
  if (!(weight > 0) || !std::isfinite(weight)) {
    return InvalidArgumentError("ring weight must be finite and > 0, got " +
                                std::to_string(weight));
  }
  double scaled = static_cast<double>(vnodes_per_unit_weight_) * weight;
  // Checked before llround, whose result is unspecified past long long.
  if (scaled > static_cast<double>(kMaxVnodesPerNode)) {
    return InvalidArgumentError("ring weight " + std::to_string(weight) + " needs more than " +
                                std::to_string(kMaxVnodesPerNode) + " vnodes");
  }
  return std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(scaled)));
}

void HashRing::InsertVnodes(uint64_t node_id, uint64_t first, uint64_t last) {
  auto less = [](const Point& a, const Point& b) {
    return a.position != b.position ? a.position < b.position : a.node_id < b.node_id;
  };
  size_t old_size = points_.size();
  points_.reserve(old_size + (last - first));
  for (uint64_t i = first; i < last; ++i) {
    points_.push_back({RingVnodePosition(node_id, i), node_id});
  }
  auto middle = points_.begin() + static_cast<ptrdiff_t>(old_size);
  std::sort(middle, points_.end(), less);
  std::inplace_merge(points_.begin(), middle, points_.end(), less);
}

void HashRing::EraseVnodes(uint64_t node_id, uint64_t first, uint64_t last) {
  if (first == 0) {
    std::erase_if(points_, [node_id](const Point& p) { return p.node_id == node_id; });
    return;
  }
  std::vector<uint64_t> drop;
  drop.reserve(last - first);
  for (uint64_t i = first; i < last; ++i) drop.push_back(RingVnodePosition(node_id, i));
  std::sort(drop.begin(), drop.end());
  // Both sequences ascend by position, so one merge-like pass finds each
  // dropped vnode; matching one point per entry keeps this exact even if two
  // vnodes of the node ever share a position.
  size_t next_drop = 0;
  size_t kept = 0;
  for (const Point& p : points_) {
    if (p.node_id == node_id && next_drop < drop.size() && p.position == drop[next_drop]) {
      ++next_drop;
      continue;
    }
    points_[kept++] = p;
  }
  points_.resize(kept);
}

Status HashRing::AddNode(uint64_t node_id, double weight) {
  Result<uint64_t> count = VnodeCount(weight);
  if (!count.ok()) return count.status();
  if (Contains(node_id)) {
    return AlreadyExistsError("ring node " + std::to_string(node_id) + " already present");
  }
  InsertVnodes(node_id, 0, *count);
  nodes_.emplace(node_id, Node{weight, *count});
  return Status::Ok();
}

Status HashRing::RemoveNode(uint64_t node_id) {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return NotFoundError("ring node " + std::to_string(node_id) + " not present");
  }
  EraseVnodes(node_id, 0, it->second.vnode_count);
  nodes_.erase(it);
  return Status::Ok();
}

Status HashRing::SetWeight(uint64_t node_id, double weight) {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return NotFoundError("ring node " + std::to_string(node_id) + " not present");
  }
  Result<uint64_t> count = VnodeCount(weight);
  if (!count.ok()) return count.status();
  uint64_t old_count = it->second.vnode_count;
  if (*count > old_count) {
    InsertVnodes(node_id, old_count, *count);
  } else if (*count < old_count) {
    EraseVnodes(node_id, *count, old_count);
  }
  it->second = Node{weight, *count};
  return Status::Ok();
}

size_t HashRing::FirstPointAtOrAfter(uint64_t position) const {
  auto it = std::lower_bound(points_.begin(), points_.end(), position,
                             [](const Point& p, uint64_t pos) { return p.position < pos; });
  return static_cast<size_t>(it - points_.begin());
}

std::vector<uint64_t> HashRing::Successors(uint64_t key, size_t r) const {
  std::vector<uint64_t> out;
  size_t want = std::min(r, nodes_.size());
  if (want == 0) return out;
  out.reserve(want);
  size_t index = FirstPointAtOrAfter(RingKeyPosition(key));
  // Every node owns at least one vnode, so one full turn finds `want` nodes;
  // the bound only guards the invariant. `out` holds at most r ids (r is a
  // replication factor, small), so a linear membership test is cheapest.
  for (size_t step = 0; step < points_.size() && out.size() < want; ++step) {
    if (index == points_.size()) index = 0;
    uint64_t node_id = points_[index++].node_id;
    if (std::find(out.begin(), out.end(), node_id) == out.end()) out.push_back(node_id);
  }
  return out;
}

Result<uint64_t> HashRing::Primary(uint64_t key) const {
  if (points_.empty()) return FailedPreconditionError("ring is empty");
  size_t index = FirstPointAtOrAfter(RingKeyPosition(key));
  return points_[index == points_.size() ? 0 : index].node_id;
}

Result<double> HashRing::Weight(uint64_t node_id) const {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return NotFoundError("ring node " + std::to_string(node_id) + " not present");
  }
  return it->second.weight;
}

}  // namespace dfs::common
