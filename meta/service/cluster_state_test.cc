// ClusterState: liveness from heartbeats, placement over live nodes only,
// session leases.
#include "meta/service/cluster_state.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace dfs::meta {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(ClusterStateTest, Heartbeat_UnknownNodeMustReregister) {
  ClusterState cluster(10 * kSecond);
  pb::HeartbeatRequest beat;
  beat.set_node_id(5);
  EXPECT_FALSE(cluster.Heartbeat(beat, 0));
  cluster.Registered(5, "a:1", 100, 10, 0);
  EXPECT_TRUE(cluster.Heartbeat(beat, kSecond));
}

TEST(ClusterStateTest, ExpireNodes_DeadNodesLeaveThePlacement) {
  ClusterState cluster(10 * kSecond);
  for (uint64_t id : {1, 2, 3}) cluster.Registered(id, "n", 100, 0, 0);
  EXPECT_EQ(cluster.Placement(42, 3).size(), 3u);
  pb::HeartbeatRequest beat;
  beat.set_capacity_bytes(100);
  for (uint64_t id : {1, 2}) {
    beat.set_node_id(id);
    ASSERT_TRUE(cluster.Heartbeat(beat, 8 * kSecond));
  }
  cluster.ExpireNodes(11 * kSecond);
  std::vector<uint64_t> placement = cluster.Placement(42, 3);
  EXPECT_EQ(placement.size(), 2u);
  EXPECT_EQ(std::count(placement.begin(), placement.end(), 3u), 0);
  uint64_t capacity = 0, used = 0;
  cluster.Capacity(&capacity, &used);
  EXPECT_EQ(capacity, 200u);
  beat.set_node_id(3);  // back from the dead
  ASSERT_TRUE(cluster.Heartbeat(beat, 12 * kSecond));
  EXPECT_EQ(cluster.Placement(42, 3).size(), 3u);
}

pb::Command CopyCommand(uint64_t chunk_id) {
  pb::Command command;
  command.mutable_replicate()->set_chunk_id(chunk_id);
  return command;
}

using Ids = std::vector<uint64_t>;

TEST(ClusterStateTest, FailedTargets_AreNoTargetThenALastResortThenForgotten) {
  ClusterState cluster(10 * kSecond);
  constexpr int64_t kFirst = ClusterState::kFirstAvoidNs, kMax = ClusterState::kMaxAvoidNs;
  EXPECT_TRUE(cluster.FailedTargets(100, 0).targets.empty());
  cluster.CopyFailed(100, 4, 0);
  cluster.CopyFailed(100, 5, kSecond);
  cluster.CopyFailed(200, 4, 0);
  EXPECT_EQ(cluster.FailedTargets(100, kSecond).targets, (Ids{4, 5}));
  EXPECT_TRUE(cluster.FailedTargets(100, kSecond).last_resort.empty());
  ClusterState::Avoided later = cluster.FailedTargets(100, kFirst);
  EXPECT_EQ(later.targets, (Ids{5}));
  EXPECT_EQ(later.last_resort, (Ids{4}));
  later = cluster.FailedTargets(100, kMax - 1);
  EXPECT_TRUE(later.targets.empty());
  EXPECT_EQ(later.last_resort, (Ids{4, 5}));
  later = cluster.FailedTargets(100, kMax + kSecond);
  EXPECT_TRUE(later.targets.empty() && later.last_resort.empty());
  EXPECT_EQ(cluster.FailedTargets(200, kSecond).targets, (Ids{4}));
}

TEST(ClusterStateTest, FailedTargets_StayNoTargetLongerAfterEachFailureInARow) {
  ClusterState cluster(10 * kSecond);
  constexpr int64_t kFirst = ClusterState::kFirstAvoidNs, kMax = ClusterState::kMaxAvoidNs;
  int64_t now = 0;
  int64_t avoid = kFirst;
  for (int failure = 1; failure <= 6; ++failure) {  // 10, 20 ... 320 s
    cluster.CopyFailed(100, 4, now);
    EXPECT_EQ(cluster.FailedTargets(100, now + avoid - 1).targets, (Ids{4})) << failure;
    EXPECT_EQ(cluster.FailedTargets(100, now + avoid).last_resort, (Ids{4})) << failure;  // a repair may try it
    now += avoid;
    avoid *= 2;
  }
  // The seventh failure in a row: no target for the whole ten minutes.
  cluster.CopyFailed(100, 4, now);
  EXPECT_EQ(cluster.FailedTargets(100, now + kMax - 1).targets, (Ids{4}));
  ClusterState::Avoided after = cluster.FailedTargets(100, now + kMax);
  EXPECT_TRUE(after.targets.empty() && after.last_resort.empty());
  // Quiet for kMax after that: the next failure counts as the first again.
  now += 2 * kMax;
  EXPECT_TRUE(cluster.FailedTargets(100, now).targets.empty());
  cluster.CopyFailed(100, 4, now);
  EXPECT_EQ(cluster.FailedTargets(100, now + kFirst).last_resort, (Ids{4}));
}

TEST(ClusterStateTest, CopyClaims_EndWhenReportedTimedOutOrTheTargetDiesOrRestarts) {
  ClusterState cluster(10 * kSecond);
  for (uint64_t id : {1, 2, 3}) cluster.Registered(id, "n", 100, 0, 0);
  ASSERT_TRUE(cluster.StartRepair(100, 1, 60 * kSecond));
  EXPECT_FALSE(cluster.StartRepair(100, 2, 60 * kSecond));  // one copy of a chunk at a time
  ASSERT_TRUE(cluster.StartRepair(200, 2, 5 * kSecond, /*move=*/true));
  ASSERT_TRUE(cluster.StartRepair(300, 3, 60 * kSecond));
  size_t moves = 0;
  EXPECT_EQ(cluster.RepairsInFlight(kSecond, &moves), 3u);
  EXPECT_EQ(moves, 1u);
  cluster.RepairDone(100);  // reported done, or failed
  EXPECT_EQ(cluster.RepairsInFlight(kSecond), 2u);
  EXPECT_EQ(cluster.RepairsInFlight(6 * kSecond, &moves), 1u);  // 200's deadline passed
  EXPECT_EQ(moves, 0u);

  // A target that registers again was restarted: its copy will never come,
  // nor will the commands it had not yet taken.
  cluster.AddCommand(3, CopyCommand(300));
  cluster.Registered(3, "n", 100, 0, 7 * kSecond);
  EXPECT_EQ(cluster.RepairsInFlight(7 * kSecond), 0u);
  EXPECT_TRUE(cluster.TakeCommands(3).empty());

  // A target that dies takes its claims with it.
  ASSERT_TRUE(cluster.StartRepair(400, 2, 60 * kSecond));
  ASSERT_TRUE(cluster.StartRepair(500, 3, 60 * kSecond));
  cluster.AddCommand(2, CopyCommand(400));
  pb::HeartbeatRequest beat;
  for (uint64_t id : {1, 3}) {
    beat.set_node_id(id);
    ASSERT_TRUE(cluster.Heartbeat(beat, 8 * kSecond));
  }
  cluster.ExpireNodes(11 * kSecond);  // 2 silent since 0
  EXPECT_EQ(cluster.RepairsInFlight(11 * kSecond), 1u);
  EXPECT_TRUE(cluster.TakeCommands(2).empty());
  EXPECT_FALSE(cluster.StartRepair(500, 1, 60 * kSecond));  // 3's claim stands
  EXPECT_TRUE(cluster.StartRepair(400, 1, 60 * kSecond));
}

TEST(ClusterStateTest, SetWeights_AHeavierNodeLeadsMorePlacements) {
  ClusterState cluster(10 * kSecond);
  for (uint64_t id : {1, 2, 3, 4}) cluster.Registered(id, "n", 100, 0, 0);
  auto firsts = [&](uint64_t node) {
    int n = 0;
    for (uint64_t key = 0; key < 4000; ++key) n += cluster.Placement(key * 7919, 1)[0] == node;
    return n;
  };
  const int before = firsts(4);
  EXPECT_NEAR(before, 1000, 200);
  cluster.SetWeights({{4, 3.0}});  // others default to 1
  const int after = firsts(4);
  EXPECT_NEAR(after, 2000, 250);  // 3 / (1 + 1 + 1 + 3) of the keys
  cluster.SetWeights({{4, 1.0}});
  EXPECT_EQ(firsts(4), before);  // the same ring again
}

// A node short of room comes last for new chunks, as its heartbeats say,
// and is listed for the planner; the ring itself (Placement) is unchanged,
// so its copies are not "misplaced".
TEST(ClusterStateTest, ANodeShortOfRoomComesLastForNewChunks) {
  ClusterState cluster(10 * kSecond);
  for (uint64_t id : {1, 2, 3, 4}) cluster.Registered(id, "n", 100, 0, 0);
  cluster.Registered(4, "n", 100, 99, 0, /*full=*/true);
  EXPECT_EQ(cluster.FullNodes(), (std::vector<uint64_t>{4}));
  int led_by_4 = 0;
  for (uint64_t key = 0; key < 400; ++key) {
    std::vector<uint64_t> ring = cluster.Placement(key * 7919, 4);
    std::vector<uint64_t> fresh = cluster.PlacementForNew(key * 7919, 3);
    ASSERT_EQ(fresh.size(), 3u);
    EXPECT_EQ(std::count(fresh.begin(), fresh.end(), 4u), 0) << "key " << key;
    ring.erase(std::remove(ring.begin(), ring.end(), 4u), ring.end());
    EXPECT_EQ(fresh, ring) << "the others keep their ring order";
    led_by_4 += cluster.Placement(key * 7919, 1)[0] == 4;
    // Asked for every node, the short one is still there, last.
    std::vector<uint64_t> all = cluster.PlacementForNew(key * 7919, 4);
    ASSERT_EQ(all.size(), 4u);
    EXPECT_EQ(all.back(), 4u);
  }
  EXPECT_GT(led_by_4, 50) << "the ring still counts node 4";
  // Room again (a heartbeat says so): back in place.
  pb::HeartbeatRequest beat;
  beat.set_node_id(4);
  ASSERT_TRUE(cluster.Heartbeat(beat, kSecond));
  EXPECT_TRUE(cluster.FullNodes().empty());
  for (uint64_t key = 0; key < 400; ++key) {
    EXPECT_EQ(cluster.PlacementForNew(key * 7919, 3), cluster.Placement(key * 7919, 3));
  }
  beat.set_full(true);
  ASSERT_TRUE(cluster.Heartbeat(beat, 2 * kSecond));
  EXPECT_EQ(cluster.FullNodes(), (std::vector<uint64_t>{4}));
  cluster.Registered(4, "n", 100, 99, 2 * kSecond);  // a new leader's view from the database: unknown
  EXPECT_EQ(cluster.FullNodes(), (std::vector<uint64_t>{4}));
  cluster.ExpireNodes(20 * kSecond);  // a dead node is not listed
  EXPECT_TRUE(cluster.FullNodes().empty());
}

TEST(ClusterStateTest, ExpiredSessions_AfterLeaseWithoutKeepAlive) {
  ClusterState cluster(10 * kSecond);
  cluster.SessionAlive(7, 0, 5 * kSecond);
  cluster.SessionAlive(8, 0, 5 * kSecond);
  EXPECT_TRUE(cluster.KeepAlive(8, 4 * kSecond));
  std::vector<uint64_t> expired = cluster.ExpiredSessions(6 * kSecond);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0], 7u);
  cluster.SessionClosed(7);
  EXPECT_FALSE(cluster.KeepAlive(7, 6 * kSecond));
}

// After a pause of the leader itself, nobody is held to the silence.
TEST(ClusterStateTest, Refresh_EndsNoSessionAndKillsNoNodeForOurOwnSilence) {
  ClusterState cluster(10 * kSecond);
  cluster.SessionAlive(7, 0, 5 * kSecond);
  for (uint64_t id : {1, 2}) cluster.Registered(id, "n", 100, 0, 0);
  pb::HeartbeatRequest beat;
  beat.set_node_id(1);
  beat.set_capacity_bytes(100);
  ASSERT_TRUE(cluster.Heartbeat(beat, 9 * kSecond));
  cluster.ExpireNodes(11 * kSecond);  // node 2 was dead before the pause
  cluster.Refresh(40 * kSecond);
  EXPECT_TRUE(cluster.ExpiredSessions(44 * kSecond).empty());
  cluster.ExpireNodes(44 * kSecond);
  EXPECT_EQ(cluster.Placement(42, 3), std::vector<uint64_t>{1}) << "node 1 died of our silence, or 2 came back";
  EXPECT_EQ(cluster.ExpiredSessions(46 * kSecond), std::vector<uint64_t>{7}) << "a lease, then it ends as before";
}

TEST(ClusterStateTest, SentGarbage_TakenOnce) {
  ClusterState cluster(10 * kSecond);
  pb::ChunkRef ref;
  ref.set_chunk_id(9);
  cluster.SetSentGarbage(1, {ref});
  EXPECT_EQ(cluster.TakeSentGarbage(1).size(), 1u);
  EXPECT_TRUE(cluster.TakeSentGarbage(1).empty());
}

}  // namespace
}  // namespace dfs::meta
