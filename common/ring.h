// HashRing: the consistent-hash ring that suggests which R distinct
// chunkservers should hold a chunk.
//
// The ring is placement policy, not truth: meta records where each chunk's
// replicas actually are and consults the ring when it must choose (a new
// chunk, a re-replication target, a rebalance). Because it is consistent
// hashing, adding or removing a node only moves the keys that land on that
// node's arcs, about its weight share of them.
//
// Placement format (stable: meta compares old and new placements, and every
// replica of meta must compute the same answer, so changing any of this is a
// data migration, not a refactor):
//   - A node of weight w owns max(1, llround(vnodes_per_unit_weight * w))
//     virtual nodes ("vnodes"), indexed 0, 1, ...; raising a weight only adds
//     vnodes and lowering it only drops the highest-indexed ones, so a weight
//     change moves as little as adding or removing that much capacity.
//   - Vnode i of node n sits at XXH64(le64(n) ++ le64(i), seed 0)
//     (RingVnodePosition), a 16-byte input.
//   - Key k (a chunk id) sits at XXH64(le64(k), seed kRingKeySeed)
//     (RingKeyPosition). The key seed differs from the vnode seed so that key
//     and vnode positions are unrelated even where their inputs share bytes.
//   - A key's successors are the distinct node ids met walking clockwise
//     (increasing position, wrapping past 2^64 - 1 to 0) from the first vnode
//     whose position is >= the key's position. Vnodes at equal positions are
//     ordered by node id, so the result never depends on insertion order.
// XXH64 is the one in Debian's libxxhash 0.8.1; its output is specified and
// identical on every platform and version.
//
// Thread-safety: none. A HashRing is a plain value (copyable, movable); meta
// guards its ring with its own lock or hands out copies. Const methods may run
// concurrently with each other, never with a mutation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace dfs::common {

// Vnodes per unit of weight, chosen by measurement (primary shares of
// 10 equal nodes, worst node's deviation from the fair 1/10):
//   vnodes   ids 1..10, chunk ids 0..999999   50 random id sets, 200k ids (median / max)
//   256      9.3%                             11.0% / 19.4%
//   512      10.5%                            7.9% / 14.4%
//   1024     4.6%                             5.6% / 11.6%
// The spread falls as 1/sqrt(vnodes). 512 already misses +-10% for ids
// 1..10 and for 1 in 10 random sets; 1024 halves the typical worst deviation
// to ~5%. Cost: 16 KiB of points per standard node, and a lookup is a
// ~20-step binary search at 1000 nodes (see ring_bench). Changing it moves
// data (see the format above).
inline constexpr uint32_t kDefaultVnodesPerUnitWeight = 1024;

// Seed for hashing keys; any constant other than the vnode seed (0) would do,
// this one is 2^64 / golden ratio. Part of the placement format.
inline constexpr uint64_t kRingKeySeed = 0x9E3779B97F4A7C15;

// Most vnodes one node may own (16 MiB of points), which bounds the weight a
// caller may set: with the default, weights up to 1024.
inline constexpr uint64_t kMaxVnodesPerNode = uint64_t{1} << 20;

// Ring position of key `key` and of vnode `vnode_index` of node `node_id`, as
// specified above. Pure; exposed so that tests can pin the format.
uint64_t RingKeyPosition(uint64_t key);
uint64_t RingVnodePosition(uint64_t node_id, uint64_t vnode_index);

class HashRing {
 public:
  // An empty ring. `vnodes_per_unit_weight` scales every node's vnode count;
  // 0 is allowed and gives every node exactly one vnode.
  explicit HashRing(uint32_t vnodes_per_unit_weight = kDefaultVnodesPerUnitWeight);

  // Adds `node_id` with `weight` (1.0 = a standard node; callers scale by
  // capacity). InvalidArgument if weight is not finite, not > 0, or would
  // need more than kMaxVnodesPerNode vnodes; AlreadyExists if the node is in
  // the ring. On error the ring is unchanged. O(points) time.
  Status AddNode(uint64_t node_id, double weight);

  // Removes `node_id` and all its vnodes. NotFound if absent. O(points).
  Status RemoveNode(uint64_t node_id);

  // Changes the weight of `node_id`, adding or dropping its highest vnodes.
  // NotFound if absent; InvalidArgument as for AddNode. On error the ring is
  // unchanged. O(points).
  Status SetWeight(uint64_t node_id, double weight);

  // Up to `r` distinct node ids for `key`, in ring order: the first is the
  // primary. Returns min(r, node_count()) ids; empty for an empty ring or
  // r == 0. O(log points + walk), where the walk is short unless r is close to
  // node_count() on a ring with few vnodes per node.
  std::vector<uint64_t> Successors(uint64_t key, size_t r) const;

  // The first of Successors(key, 1), without allocating. FailedPrecondition if
  // the ring is empty.
  Result<uint64_t> Primary(uint64_t key) const;

  size_t node_count() const { return nodes_.size(); }
  // Number of vnodes over all nodes.
  size_t point_count() const { return points_.size(); }
  bool Contains(uint64_t node_id) const { return nodes_.contains(node_id); }
  // The weight last set for `node_id`; NotFound if absent.
  Result<double> Weight(uint64_t node_id) const;

 private:
  struct Point {
    uint64_t position;
    uint64_t node_id;
  };
  struct Node {
    double weight;
    uint64_t vnode_count;
  };

  // Vnode count for `weight`, or InvalidArgument.
  Result<uint64_t> VnodeCount(double weight) const;
  // Inserts vnodes [first, last) of `node_id`, keeping points_ sorted.
  void InsertVnodes(uint64_t node_id, uint64_t first, uint64_t last);
  // Erases vnodes [first, last) of `node_id`, which owns exactly `last`.
  void EraseVnodes(uint64_t node_id, uint64_t first, uint64_t last);
  // Index of the first point whose position is >= `position`; points_.size()
  // if none (the caller wraps to 0).
  size_t FirstPointAtOrAfter(uint64_t position) const;

  uint32_t vnodes_per_unit_weight_;
  // Every vnode of every node, sorted by (position, node_id).
  std::vector<Point> points_;
  // One entry per node; its vnode_count points are in points_.
  std::map<uint64_t, Node> nodes_;
};

}  // namespace dfs::common
