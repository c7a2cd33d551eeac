#include "common/ring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <vector>

namespace dfs::common {
namespace {

// Keys are the sequential chunk ids 0, 1, ..., which is what meta hands out;
// the key hash has to spread them, so no pseudo-random input is used.
constexpr uint64_t kManyKeys = 1'000'000;
// For R=3 sets and weight checks, where a smaller sample is precise enough.
constexpr uint64_t kSomeKeys = 200'000;

HashRing RingOf(const std::vector<uint64_t>& node_ids) {
  HashRing ring;
  for (uint64_t id : node_ids) EXPECT_TRUE(ring.AddNode(id, 1.0).ok());
  return ring;
}

std::vector<uint64_t> Primaries(const HashRing& ring, uint64_t key_count) {
  std::vector<uint64_t> out;
  out.reserve(key_count);
  for (uint64_t key = 0; key < key_count; ++key) out.push_back(ring.Primary(key).value());
  return out;
}

std::map<uint64_t, uint64_t> PrimaryCounts(const HashRing& ring, uint64_t key_count) {
  std::map<uint64_t, uint64_t> counts;
  for (uint64_t key = 0; key < key_count; ++key) ++counts[ring.Primary(key).value()];
  return counts;
}

bool Has(const std::vector<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// Expects each node's primary share to be within +-10% (relative) of
// weight / total weight.
void ExpectSharesFollowWeights(const HashRing& ring, const std::map<uint64_t, double>& weights) {
  double total_weight = 0;
  for (const auto& [id, weight] : weights) total_weight += weight;
  std::map<uint64_t, uint64_t> counts = PrimaryCounts(ring, kSomeKeys);
  ASSERT_EQ(counts.size(), weights.size());
  for (const auto& [id, weight] : weights) {
    double fair = kSomeKeys * weight / total_weight;
    EXPECT_NEAR(static_cast<double>(counts[id]), fair, 0.10 * fair) << "node " << id;
  }
}

TEST(HashRingTest, Primary_EqualWeightsShareKeysEvenly) {
  HashRing ring = RingOf({1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  std::map<uint64_t, uint64_t> counts = PrimaryCounts(ring, kManyKeys);
  ASSERT_EQ(counts.size(), 10u);
  for (const auto& [id, count] : counts) {
    EXPECT_GE(count, 90'000u) << "node " << id;
    EXPECT_LE(count, 110'000u) << "node " << id;
  }
}

TEST(HashRingTest, AddNode_MovesOnlyKeysOntoNewNode) {
  HashRing ring = RingOf({1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  std::vector<uint64_t> before = Primaries(ring, kManyKeys);
  std::vector<std::vector<uint64_t>> sets_before;
  for (uint64_t key = 0; key < kSomeKeys; ++key) sets_before.push_back(ring.Successors(key, 3));

  ASSERT_TRUE(ring.AddNode(11, 1.0).ok());

  std::vector<uint64_t> after = Primaries(ring, kManyKeys);
  uint64_t moved = 0;
  for (uint64_t key = 0; key < kManyKeys; ++key) {
    if (before[key] == after[key]) continue;
    ++moved;
    ASSERT_EQ(after[key], 11u) << "key " << key << " moved between old nodes";
  }
  double moved_fraction = static_cast<double>(moved) / kManyKeys;
  EXPECT_LE(moved_fraction, 1.0 / 11 + 0.02);
  // The new node does take its share; a ring that moved nothing would pass
  // the bound above.
  EXPECT_GE(moved_fraction, 1.0 / 11 - 0.02);

  for (uint64_t key = 0; key < kSomeKeys; ++key) {
    std::vector<uint64_t> set = ring.Successors(key, 3);
    if (set != sets_before[key]) {
      ASSERT_TRUE(Has(set, 11)) << "key " << key << " changed set without the new node";
    }
  }
}

TEST(HashRingTest, RemoveNode_MovesOnlyKeysOfRemovedNode) {
  HashRing ring = RingOf({1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  std::vector<uint64_t> before = Primaries(ring, kManyKeys);
  std::vector<std::vector<uint64_t>> sets_before;
  for (uint64_t key = 0; key < kSomeKeys; ++key) sets_before.push_back(ring.Successors(key, 3));

  ASSERT_TRUE(ring.RemoveNode(4).ok());
  EXPECT_FALSE(ring.Contains(4));
  EXPECT_EQ(ring.node_count(), 9u);

  std::vector<uint64_t> after = Primaries(ring, kManyKeys);
  for (uint64_t key = 0; key < kManyKeys; ++key) {
    if (before[key] != 4) {
      ASSERT_EQ(after[key], before[key]) << "key " << key;
    }
    ASSERT_NE(after[key], 4u);
  }

  for (uint64_t key = 0; key < kSomeKeys; ++key) {
    std::vector<uint64_t> set = ring.Successors(key, 3);
    const std::vector<uint64_t>& old_set = sets_before[key];
    if (!Has(old_set, 4)) {
      ASSERT_EQ(set, old_set) << "key " << key;
      continue;
    }
    // The survivors keep their order; one more node is appended.
    std::vector<uint64_t> survivors = old_set;
    std::erase(survivors, 4);
    ASSERT_EQ(set.size(), 3u);
    ASSERT_EQ(std::vector<uint64_t>(set.begin(), set.begin() + 2), survivors) << "key " << key;
  }
}

TEST(HashRingTest, AddNode_WeightsSetShares) {
  HashRing ring;
  ASSERT_TRUE(ring.AddNode(1, 1.0).ok());
  ASSERT_TRUE(ring.AddNode(2, 2.0).ok());
  ASSERT_TRUE(ring.AddNode(3, 3.0).ok());
  EXPECT_EQ(ring.point_count(), 6u * kDefaultVnodesPerUnitWeight);
  EXPECT_EQ(ring.Weight(2).value(), 2.0);
  ExpectSharesFollowWeights(ring, {{1, 1.0}, {2, 2.0}, {3, 3.0}});
}

TEST(HashRingTest, SetWeight_ChangesShares) {
  HashRing ring;
  ASSERT_TRUE(ring.AddNode(1, 1.0).ok());
  ASSERT_TRUE(ring.AddNode(2, 2.0).ok());
  ASSERT_TRUE(ring.AddNode(3, 3.0).ok());

  ASSERT_TRUE(ring.SetWeight(1, 3.0).ok());
  EXPECT_EQ(ring.Weight(1).value(), 3.0);
  ExpectSharesFollowWeights(ring, {{1, 3.0}, {2, 2.0}, {3, 3.0}});

  ASSERT_TRUE(ring.SetWeight(3, 0.5).ok());
  ExpectSharesFollowWeights(ring, {{1, 3.0}, {2, 2.0}, {3, 0.5}});
}

TEST(HashRingTest, SetWeight_RoundTripRestoresPlacement) {
  // Vnodes are indexed, so raising and then restoring a weight must give back
  // exactly the original ring; and raising one node's weight only moves keys
  // onto that node.
  HashRing ring = RingOf({1, 2, 3, 4, 5});
  std::vector<uint64_t> before = Primaries(ring, kSomeKeys);

  ASSERT_TRUE(ring.SetWeight(3, 2.0).ok());
  std::vector<uint64_t> raised = Primaries(ring, kSomeKeys);
  for (uint64_t key = 0; key < kSomeKeys; ++key) {
    if (raised[key] != before[key]) {
      ASSERT_EQ(raised[key], 3u) << "key " << key;
    }
  }

  ASSERT_TRUE(ring.SetWeight(3, 1.0).ok());
  EXPECT_EQ(ring.point_count(), 5u * kDefaultVnodesPerUnitWeight);
  EXPECT_EQ(Primaries(ring, kSomeKeys), before);
}

TEST(HashRingTest, Successors_AreDistinctAndStartWithPrimary) {
  HashRing ring = RingOf({1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  for (uint64_t key = 0; key < 10'000; ++key) {
    std::vector<uint64_t> set = ring.Successors(key, 3);
    ASSERT_EQ(set.size(), 3u);
    EXPECT_NE(set[0], set[1]);
    EXPECT_NE(set[0], set[2]);
    EXPECT_NE(set[1], set[2]);
    EXPECT_EQ(set[0], ring.Primary(key).value());
  }
  std::vector<uint64_t> all = ring.Successors(7, 10);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}

TEST(HashRingTest, Successors_FewerNodesThanRequested) {
  HashRing ring = RingOf({10, 20, 30});
  for (uint64_t key = 0; key < 1000; ++key) {
    std::vector<uint64_t> set = ring.Successors(key, 5);
    ASSERT_EQ(set.size(), 3u);
    std::sort(set.begin(), set.end());
    EXPECT_EQ(set, (std::vector<uint64_t>{10, 20, 30}));
  }
  EXPECT_TRUE(ring.Successors(1, 0).empty());
}

TEST(HashRingTest, Successors_EmptyRing) {
  HashRing ring;
  EXPECT_TRUE(ring.Successors(1, 3).empty());
  EXPECT_EQ(ring.Primary(1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ring.node_count(), 0u);

  // Emptied by removal, too.
  ASSERT_TRUE(ring.AddNode(1, 1.0).ok());
  ASSERT_TRUE(ring.RemoveNode(1).ok());
  EXPECT_TRUE(ring.Successors(1, 3).empty());
  EXPECT_EQ(ring.point_count(), 0u);
}

TEST(HashRingTest, AddNode_DuplicateIsAlreadyExists) {
  HashRing ring;
  ASSERT_TRUE(ring.AddNode(1, 1.0).ok());
  EXPECT_EQ(ring.AddNode(1, 2.0).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(ring.Weight(1).value(), 1.0);
  EXPECT_EQ(ring.point_count(), size_t{kDefaultVnodesPerUnitWeight});
}

TEST(HashRingTest, AddNode_BadWeightIsInvalidArgument) {
  HashRing ring;
  for (double weight : {0.0, -0.0, -1.0, std::numeric_limits<double>::quiet_NaN(),
                        std::numeric_limits<double>::infinity(),
                        -std::numeric_limits<double>::infinity(),
                        // Needs more than kMaxVnodesPerNode vnodes.
                        2.0 * kMaxVnodesPerNode / kDefaultVnodesPerUnitWeight}) {
    EXPECT_EQ(ring.AddNode(1, weight).code(), StatusCode::kInvalidArgument) << weight;
  }
  EXPECT_EQ(ring.node_count(), 0u);
  EXPECT_EQ(ring.point_count(), 0u);
}

TEST(HashRingTest, AddNode_TinyWeightGetsOneVnode) {
  HashRing ring;
  ASSERT_TRUE(ring.AddNode(1, 1e-9).ok());
  EXPECT_EQ(ring.point_count(), 1u);

  HashRing one_each(/*vnodes_per_unit_weight=*/0);
  ASSERT_TRUE(one_each.AddNode(1, 1.0).ok());
  ASSERT_TRUE(one_each.AddNode(2, 5.0).ok());
  EXPECT_EQ(one_each.point_count(), 2u);
}

TEST(HashRingTest, RemoveNode_UnknownIsNotFound) {
  HashRing ring = RingOf({1, 2});
  EXPECT_EQ(ring.RemoveNode(3).code(), StatusCode::kNotFound);
  EXPECT_EQ(ring.node_count(), 2u);
}

TEST(HashRingTest, SetWeight_ErrorsLeaveRingUnchanged) {
  HashRing ring = RingOf({1, 2});
  EXPECT_EQ(ring.SetWeight(3, 1.0).code(), StatusCode::kNotFound);
  EXPECT_EQ(ring.SetWeight(1, 0.0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ring.SetWeight(1, std::nan("")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ring.Weight(1).value(), 1.0);
  EXPECT_EQ(ring.Weight(3).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ring.point_count(), 2u * kDefaultVnodesPerUnitWeight);
}

TEST(HashRingTest, Successors_IndependentOfInsertionOrder) {
  auto weight_of = [](uint64_t id) { return 0.5 * static_cast<double>(id % 4 + 1); };
  HashRing ascending;
  for (uint64_t id = 1; id <= 20; ++id) ASSERT_TRUE(ascending.AddNode(id, weight_of(id)).ok());
  HashRing descending;
  for (uint64_t id = 20; id >= 1; --id) ASSERT_TRUE(descending.AddNode(id, weight_of(id)).ok());
  // Same membership reached through churn: an extra node comes and goes and
  // a weight is raised and restored.
  HashRing churned;
  ASSERT_TRUE(churned.AddNode(99, 1.0).ok());
  for (uint64_t id : {7, 3, 18, 1, 12, 20, 5, 9, 14, 2, 16, 11, 4, 19, 8, 15, 6, 13, 10, 17}) {
    ASSERT_TRUE(churned.AddNode(id, weight_of(id)).ok());
  }
  ASSERT_TRUE(churned.SetWeight(5, 7.0).ok());
  ASSERT_TRUE(churned.RemoveNode(99).ok());
  ASSERT_TRUE(churned.SetWeight(5, weight_of(5)).ok());
  HashRing copy = churned;

  for (uint64_t key = 0; key < kSomeKeys; ++key) {
    std::vector<uint64_t> expected = ascending.Successors(key, 3);
    ASSERT_EQ(descending.Successors(key, 3), expected) << "key " << key;
    ASSERT_EQ(churned.Successors(key, 3), expected) << "key " << key;
    ASSERT_EQ(copy.Successors(key, 3), expected) << "key " << key;
  }
}

TEST(HashRingTest, RingPosition_FormatIsStable) {
  // Golden values: a failure here means placement changed for every chunk.
  EXPECT_EQ(RingKeyPosition(0), 0x1722e35ebbc1e9a0u);
  EXPECT_EQ(RingKeyPosition(1), 0x163ea2ab8fe9fc28u);
  EXPECT_EQ(RingKeyPosition(12345), 0xec3a36cb6f4295c3u);
  EXPECT_EQ(RingVnodePosition(1, 0), 0x6c1cff0459c8bb10u);
  EXPECT_EQ(RingVnodePosition(1, 1), 0xed7aead4b89ab6fcu);
  // Distinct byte values catch a byte-order or field-order change.
  EXPECT_EQ(RingVnodePosition(0x0102030405060708, 0x1112131415161718), 0x9adedfee3b7b7892u);
}

}  // namespace
}  // namespace dfs::common
