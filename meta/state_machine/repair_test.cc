// StateMachine::UnderReplicated / ScanReplicas: what re-replication and
// rebalancing work from; trimming a surplus copy; replication factors.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

class RepairScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (uint64_t node : {11, 12, 13, 14}) {
      pb::Op op;
      auto* r = op.mutable_register_node()->mutable_request();
      r->set_node_id(node);
      r->set_address("127.0.0.1:" + std::to_string(9000 + node));
      ASSERT_EQ(h.Apply(op).status().code(), 0);
    }
    pb::Op op;
    op.mutable_open_session()->set_lease_ms(1000);
    client_ = h.Apply(op).client_id();
    h.client_id = client_;
    ASSERT_EQ(h.Create(1, "f", 0644, &file_, &handle_), 0);
  }
  // Leases chunk `index` and commits it on `nodes`; returns the chunk id.
  uint64_t Write(uint64_t index, std::vector<uint64_t> nodes, uint64_t placement_key = 0) {
    pb::Op lease_op;
    lease_op.set_client_id(client_);
    lease_op.set_placement_key(placement_key);
    for (uint64_t n : {11, 12, 13}) lease_op.add_placement(n);
    auto* r = lease_op.mutable_lease_chunk()->mutable_request();
    r->set_ino(file_.ino());
    r->set_handle_id(handle_);
    r->set_chunk_index(index);
    lease_op.mutable_lease_chunk()->set_lease_expires_unix_ms(NowMs() + 1000);
    pb::ChunkLease lease = h.Apply(lease_op).lease();
    pb::Op op;
    op.set_client_id(client_);
    auto* c = op.mutable_commit_write();
    c->set_ino(file_.ino());
    c->set_handle_id(handle_);
    c->set_new_size((index + 1) * (64 << 20));
    auto* chunk = c->add_chunks();
    chunk->set_chunk_index(index);
    chunk->set_chunk_id(lease.chunk_id());
    chunk->set_version(lease.version());
    chunk->set_length(64 << 20);
    for (uint64_t n : nodes) chunk->add_replica_node_ids(n);
    EXPECT_EQ(h.Apply(op).status().code(), 0);
    return lease.chunk_id();
  }
  void ExpireLeases() {
    pb::Op op;
    op.set_client_id(client_);
    op.mutable_release()->set_ino(file_.ino());
    op.mutable_release()->set_handle_id(handle_);
    ASSERT_EQ(h.Apply(op).status().code(), 0);
  }
  std::vector<uint64_t> Ids(const std::vector<StateMachine::RepairCandidate>& cs) {
    std::vector<uint64_t> ids;
    for (const auto& c : cs) ids.push_back(c.chunk_id);
    return ids;
  }
  int64_t NowMs() const { return h.now_ns / 1'000'000; }

  testing::SmHarness h;
  uint64_t client_ = 0;
  uint64_t handle_ = 0;
  pb::Attr file_;
};

TEST_F(RepairScanTest, FindsChunksWithTooFewLiveCopiesAndSkipsLeasedOnes) {
  const uint64_t full = Write(0, {11, 12, 13});
  const uint64_t two = Write(1, {11, 12});
  const std::vector<uint64_t> all = {11, 12, 13, 14};
  uint64_t next = 1;
  // Both chunks are still under the handle's write lease: left alone.
  EXPECT_TRUE(h.sm().UnderReplicated(all, 0, 100, NowMs(), &next).empty());
  EXPECT_EQ(next, 0u);
  ExpireLeases();
  auto found = h.sm().UnderReplicated(all, 0, 100, NowMs(), &next);
  EXPECT_EQ(Ids(found), std::vector<uint64_t>{two});
  EXPECT_EQ(found[0].want, 3u);
  EXPECT_EQ(found[0].live_holders.size(), 2u);
  // Node 11 is dead: both are short, the second by two copies.
  found = h.sm().UnderReplicated({12, 13, 14}, 0, 100, NowMs(), &next);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].chunk_id, full);
  EXPECT_EQ(found[1].live_holders, std::vector<uint64_t>{12});
  EXPECT_EQ(h.sm().CountUnderReplicated({12, 13, 14}, NowMs()), 2u);
  // A bounded scan walks with its cursor and wraps to 0.
  found = h.sm().UnderReplicated({12, 13, 14}, 0, 1, NowMs(), &next);
  EXPECT_EQ(Ids(found), std::vector<uint64_t>{full});
  EXPECT_EQ(next, full);
  found = h.sm().UnderReplicated({12, 13, 14}, next, 1, NowMs(), &next);
  EXPECT_EQ(Ids(found), std::vector<uint64_t>{two});
  found = h.sm().UnderReplicated({12, 13, 14}, next, 1, NowMs(), &next);
  EXPECT_TRUE(found.empty());
  EXPECT_EQ(next, 0u);
  // A node still deleting an old copy of the chunk is named, so it is not
  // picked as the target of a new one.
  pb::Op bad;
  bad.mutable_bad_replica()->set_chunk_id(two);
  bad.mutable_bad_replica()->set_node_id(12);
  bad.mutable_bad_replica()->set_version(1);
  ASSERT_EQ(h.Apply(bad).status().code(), 0);
  found = h.sm().UnderReplicated(all, 0, 100, NowMs(), &next);
  ASSERT_EQ(Ids(found), std::vector<uint64_t>{two});
  EXPECT_EQ(found[0].live_holders, std::vector<uint64_t>{11});
  // 13 was placed but missed the write (its copy is condemned); 12's is bad.
  std::sort(found[0].deleting.begin(), found[0].deleting.end());
  EXPECT_EQ(found[0].deleting, (std::vector<uint64_t>{12, 13}));
  // A reported copy counts.
  pb::Op op;
  op.mutable_replica_change()->set_chunk_id(two);
  op.mutable_replica_change()->set_version(1);
  op.mutable_replica_change()->set_node_id(14);
  op.mutable_replica_change()->set_added(true);
  ASSERT_EQ(h.Apply(op).status().code(), 0);
  EXPECT_EQ(h.sm().CountUnderReplicated(all, NowMs()), 1u);  // 11 and 14; 12's copy was bad
  // 13's report is refused until its condemned copy is confirmed deleted.
  op.mutable_replica_change()->set_node_id(13);
  EXPECT_EQ(h.Apply(op).status().code(), static_cast<int>(common::StatusCode::kFailedPrecondition));
  pb::Op done;
  done.mutable_gc_done()->set_node_id(13);
  done.mutable_gc_done()->add_chunks()->set_chunk_id(two);
  done.mutable_gc_done()->mutable_chunks(0)->set_version(1);
  ASSERT_EQ(h.Apply(done).status().code(), 0);
  ASSERT_EQ(h.Apply(op).status().code(), 0);
  EXPECT_EQ(h.sm().CountUnderReplicated(all, NowMs()), 0u);
}

TEST_F(RepairScanTest, ASurplusCopyIsTrimmedOnlyWhileTheKeptCopiesHoldTheVersion) {
  const uint64_t chunk = Write(0, {11, 12, 13});
  const uint64_t keyed = Write(1, {11, 12, 13}, /*placement_key=*/0xfeed);
  auto trim = [&](uint64_t node, std::vector<uint64_t> keep, uint64_t version = 1) {
    pb::Op op;
    op.mutable_replica_change()->set_chunk_id(chunk);
    op.mutable_replica_change()->set_version(version);
    op.mutable_replica_change()->set_node_id(node);
    for (uint64_t k : keep) op.mutable_replica_change()->add_keep(k);
    return h.Apply(op).status().code();
  };
  // Under the write lease: refused.
  EXPECT_EQ(trim(13, {11, 12}), static_cast<int>(common::StatusCode::kFailedPrecondition));
  ExpireLeases();
  EXPECT_EQ(trim(13, {11, 12}, /*version=*/7), static_cast<int>(common::StatusCode::kFailedPrecondition));
  EXPECT_EQ(trim(13, {11, 14}), static_cast<int>(common::StatusCode::kFailedPrecondition));  // 14 has none
  EXPECT_EQ(trim(13, {13, 11}), static_cast<int>(common::StatusCode::kInvalidArgument));
  EXPECT_EQ(trim(13, {11, 12}), 0);
  uint64_t next = 0;
  auto scan = h.sm().ScanReplicas({11, 12, 13, 14}, 0, 100, NowMs(), &next);
  ASSERT_EQ(scan.size(), 2u);
  if (scan[0].chunk_id != chunk) std::swap(scan[0], scan[1]);
  ASSERT_EQ(scan[0].chunk_id, chunk);
  std::sort(scan[0].live_holders.begin(), scan[0].live_holders.end());
  EXPECT_EQ(scan[0].live_holders, (std::vector<uint64_t>{11, 12}));
  EXPECT_EQ(scan[0].deleting, std::vector<uint64_t>{13});  // queued for the chunkserver
  EXPECT_EQ(scan[0].ino, file_.ino());
  EXPECT_EQ(scan[0].index, 0u);
  EXPECT_EQ(scan[0].place_key, 0u);  // placed before keys were kept: (ino, idx) then
  // A chunk keeps the ring key it was placed by.
  ASSERT_EQ(scan[1].chunk_id, keyed);
  EXPECT_EQ(scan[1].index, 1u);
  EXPECT_EQ(scan[1].place_key, 0xfeedu);
  // A second trim decided on the same old view would leave one copy: refused.
  EXPECT_EQ(trim(12, {11, 13}), static_cast<int>(common::StatusCode::kFailedPrecondition));
}

TEST_F(RepairScanTest, ARecursiveReplicationChangeReachesEveryFileAndDirectoryBelow) {
  pb::Attr dir, sub, a, b;
  ASSERT_EQ(h.Mkdir(1, "d", 0755, &dir), 0);
  ASSERT_EQ(h.Mkdir(dir.ino(), "s", 0755, &sub), 0);
  ASSERT_EQ(h.Create(dir.ino(), "a", 0644, &a), 0);
  ASSERT_EQ(h.Create(sub.ino(), "b", 0644, &b), 0);
  auto set = [&](uint64_t ino, uint32_t replicas, bool recursive) {
    pb::Op op;
    auto* r = op.mutable_set_replication();
    *r->mutable_ctx() = h.Ctx();
    r->set_ino(ino);
    r->set_replicas(replicas);
    r->set_recursive(recursive);
    return h.Apply(op).status().code();
  };
  auto replicas = [&](uint64_t ino) {
    pb::Attr attr;
    EXPECT_EQ(h.GetAttr(ino, &attr), 0);
    return attr.replicas();
  };
  EXPECT_EQ(set(dir.ino(), 2, false), 0);
  EXPECT_EQ(replicas(dir.ino()), 2u);
  EXPECT_EQ(replicas(b.ino()), 3u);
  EXPECT_EQ(set(dir.ino(), 5, true), 0);
  for (uint64_t ino : {dir.ino(), sub.ino(), a.ino(), b.ino()}) EXPECT_EQ(replicas(ino), 5u) << ino;
  EXPECT_EQ(replicas(file_.ino()), 3u);  // outside the tree
  // New files inherit it.
  pb::Attr c;
  ASSERT_EQ(h.Create(sub.ino(), "c", 0644, &c), 0);
  EXPECT_EQ(c.replicas(), 5u);
  EXPECT_EQ(set(dir.ino(), 0, true), static_cast<int>(common::StatusCode::kInvalidArgument));
  // Another user may not change a tree holding root's files.
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(set(dir.ino(), 1, true), static_cast<int>(common::StatusCode::kNotPermitted));
  h.creds = testing::Creds(0, 0);
  EXPECT_EQ(replicas(b.ino()), 5u);
}

TEST_F(RepairScanTest, AWeightChangeKeepsTheNodesState) {
  pb::Op drain;
  drain.mutable_drain_node()->set_node_id(12);
  ASSERT_EQ(h.Apply(drain).status().code(), 0);
  auto weigh = [&](uint64_t node, double weight) {
    pb::Op op;
    op.mutable_node_state()->set_node_id(node);
    op.mutable_node_state()->set_weight(weight);
    return h.Apply(op).status().code();
  };
  EXPECT_EQ(weigh(12, 2.5), 0);
  EXPECT_EQ(weigh(12, 0), static_cast<int>(common::StatusCode::kInvalidArgument));
  EXPECT_EQ(weigh(99, 2), static_cast<int>(common::StatusCode::kNotFound));
  for (const StateMachine::NodeRow& row : h.sm().Nodes()) {
    if (row.node_id != 12) continue;
    EXPECT_DOUBLE_EQ(row.weight, 2.5);
    EXPECT_EQ(row.state, "draining");
  }
}

}  // namespace
}  // namespace dfs::meta
