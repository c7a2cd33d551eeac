// Three copies of the real metadata state machine driven through libraft's
// deterministic fixture (simulated time, network and disk): elections,
// a partitioned leader whose uncommitted entry is truncated away, crashes,
// and a follower that catches up by snapshot install (which also sends
// batches of entries: the case where unaligned entries would shift). All
// copies must end with identical databases.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

extern "C" {
#include <raft/fixture.h>
}

#include "meta/raft/framing.h"
#include "meta/raft/fsm.h"
#include "meta/raft/test_ops.h"
#include "meta/state_machine/test_util.h"

namespace dfs::meta::raft {
namespace {

using meta::testing::MakeTempDir;

constexpr unsigned kServers = 3;

struct Replica {
  std::string dir;
  std::unique_ptr<StateMachine> sm;
  std::unique_ptr<Fsm> fsm;
};

class RaftFixtureTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    f_ = std::make_unique<raft_fixture>();
    ASSERT_EQ(raft_fixture_initialize(f_.get()), 0);
    for (unsigned i = 0; i < kServers; ++i) {
      Replica& r = replicas_[i];
      r.dir = MakeTempDir();
      StateMachine::Options options;
      options.synchronous = "OFF";
      auto sm = StateMachine::Open(r.dir + "/meta.db", options);
      ASSERT_TRUE(sm.ok()) << sm.status().ToString();
      r.sm = std::move(sm).value();
      FsmOptions fsm_options;
      fsm_options.async_snapshots = false;
      // Without a loop to drain on, a deferring follower applies only when
      // it must (as leader, for a snapshot or a restore) or when the test
      // drains it: a harder order to keep than RaftNode's.
      fsm_options.defer_follower_applies = GetParam();
      r.fsm = std::make_unique<Fsm>(r.sm.get(), fsm_options);
      ASSERT_EQ(raft_fixture_grow(f_.get(), r.fsm->get()), 0);
    }
    for (unsigned i = 0; i < kServers; ++i) {
      struct raft* r = raft_fixture_get(f_.get(), i);
      replicas_[i].fsm->set_raft(r);
      raft_set_snapshot_threshold(r, 32);
      raft_set_snapshot_trailing(r, 8);
    }
    raft_configuration conf;
    ASSERT_EQ(raft_fixture_configuration(f_.get(), kServers, &conf), 0);
    ASSERT_EQ(raft_fixture_bootstrap(f_.get(), &conf), 0);
    raft_configuration_close(&conf);
    ASSERT_EQ(raft_fixture_start(f_.get()), 0);
  }

  void TearDown() override {
    raft_fixture_close(f_.get());
    for (Replica& r : replicas_) {
      r.sm.reset();
      std::error_code ec;
      std::filesystem::remove_all(r.dir, ec);
    }
  }

  unsigned Leader() {
    EXPECT_TRUE(raft_fixture_step_until_has_leader(f_.get(), 10'000));
    return raft_fixture_leader_index(f_.get());
  }

  // Proposes `entry` on server i; counts what its callback reports.
  void Propose(unsigned i, const pb::Entry& entry) {
    struct Req {
      struct raft_apply req {};
      RaftFixtureTest* test;
    };
    auto* req = new Req;
    req->test = this;
    req->req.data = req;
    raft_buffer buf = EncodeEntry(entry.SerializeAsString());
    int rv = raft_apply(raft_fixture_get(f_.get(), i), &req->req, &buf, 1, [](struct raft_apply* r, int status, void*) {
      auto* self = static_cast<Req*>(r->data);
      ++(status == 0 ? self->test->committed_ : self->test->failed_);
      delete self;
    });
    if (rv != 0) {
      raft_free(buf.base);
      delete req;
      ++failed_;
    }
  }

  // Steps until server i has applied everything leader `l` has in its log.
  void CatchUp(unsigned l, std::vector<unsigned> servers) {
    raft_index last = raft_last_index(raft_fixture_get(f_.get(), l));
    for (unsigned i : servers) {
      EXPECT_TRUE(raft_fixture_step_until_applied(f_.get(), i, last, 20'000)) << "server " << i << " index " << last;
    }
  }

  void Partition(unsigned i) {
    for (unsigned j = 0; j < kServers; ++j) {
      if (j == i) continue;
      raft_fixture_saturate(f_.get(), i, j);
      raft_fixture_saturate(f_.get(), j, i);
    }
  }
  void Heal(unsigned i) {
    for (unsigned j = 0; j < kServers; ++j) {
      if (j == i) continue;
      raft_fixture_desaturate(f_.get(), i, j);
      raft_fixture_desaturate(f_.get(), j, i);
    }
  }

  std::unique_ptr<raft_fixture> f_;
  Replica replicas_[kServers];
  int committed_ = 0;
  int failed_ = 0;
  uint64_t next_request_ = 1;
};

TEST_P(RaftFixtureTest, ReplicasConvergeThroughPartitionsCrashesAndSnapshots) {
  unsigned leader = Leader();
  for (int i = 0; i < 40; ++i) Propose(leader, testing::MkdirEntry("a" + std::to_string(i), 3, 7, &next_request_));
  CatchUp(leader, {0, 1, 2});
  EXPECT_EQ(committed_, 40);

  // A partitioned leader: its entry never commits and is truncated away
  // once it rejoins under the new leader.
  const unsigned old_leader = leader;
  Partition(old_leader);
  Propose(old_leader, testing::MkdirEntry("orphan", 1));
  struct Arg {
    unsigned old_leader;
  } arg{old_leader};
  ASSERT_TRUE(raft_fixture_step_until(
      f_.get(),
      [](raft_fixture* f, void* a) {
        unsigned old = static_cast<Arg*>(a)->old_leader;
        for (unsigned i = 0; i < kServers; ++i) {
          if (i != old && raft_state(raft_fixture_get(f, i)) == RAFT_LEADER) return true;
        }
        return false;
      },
      &arg, 20'000));
  for (unsigned i = 0; i < kServers; ++i) {
    if (i != old_leader && raft_state(raft_fixture_get(f_.get(), i)) == RAFT_LEADER) leader = i;
  }
  ASSERT_NE(leader, old_leader);
  for (int i = 0; i < 20; ++i) Propose(leader, testing::MkdirEntry("b" + std::to_string(i), 2, 7, &next_request_));
  std::vector<unsigned> majority;
  for (unsigned i = 0; i < kServers; ++i) if (i != old_leader) majority.push_back(i);
  CatchUp(leader, majority);
  Heal(old_leader);
  CatchUp(leader, {0, 1, 2});

  // A follower crashes, misses enough for the log to be compacted past it,
  // and comes back through InstallSnapshot.
  const unsigned victim = (leader + 1) % kServers;
  raft_fixture_kill(f_.get(), victim);
  for (int i = 0; i < 120; ++i) Propose(leader, testing::MkdirEntry("c" + std::to_string(i), 4, 7, &next_request_));
  std::vector<unsigned> alive;
  for (unsigned i = 0; i < kServers; ++i) if (i != victim) alive.push_back(i);
  CatchUp(leader, alive);
  raft_fixture_revive(f_.get(), victim);
  CatchUp(leader, {0, 1, 2});
  EXPECT_GT(raft_fixture_n_recv(f_.get(), victim, RAFT_IO_INSTALL_SNAPSHOT), 0u);

  // The leader crashes; the survivors elect another and go on.
  raft_fixture_kill(f_.get(), leader);
  ASSERT_TRUE(raft_fixture_step_until_has_no_leader(f_.get(), 10'000));
  const unsigned dead = leader;
  leader = Leader();
  ASSERT_NE(leader, dead);
  for (int i = 0; i < 10; ++i) Propose(leader, testing::MkdirEntry("d" + std::to_string(i), 2, 7, &next_request_));
  std::vector<unsigned> survivors;
  for (unsigned i = 0; i < kServers; ++i) if (i != dead) survivors.push_back(i);
  CatchUp(leader, survivors);
  raft_fixture_revive(f_.get(), dead);
  CatchUp(leader, {0, 1, 2});

  EXPECT_EQ(committed_, 40 + 20 + 120 + 10);
  for (Replica& r : replicas_) r.fsm->Drain();
  const std::string dump = replicas_[0].sm->CanonicalDump();
  for (unsigned i = 1; i < kServers; ++i) EXPECT_EQ(replicas_[i].sm->CanonicalDump(), dump) << "replica " << i;
  // Every acknowledged mkdir is there, on every replica.
  pb::LookupRequest lookup;
  lookup.set_parent(1);
  for (const char* name : {"a0-0", "a39-2", "b19-1", "c119-3", "d9-1"}) {
    lookup.set_name(name);
    for (unsigned i = 0; i < kServers; ++i) {
      pb::EntryReply reply;
      replicas_[i].sm->Lookup(lookup, &reply);
      EXPECT_EQ(reply.status().code(), 0) << lookup.name() << " on replica " << i;
    }
  }
  lookup.set_name("orphan-0");
  for (unsigned i = 0; i < kServers; ++i) {
    pb::EntryReply reply;
    replicas_[i].sm->Lookup(lookup, &reply);
    EXPECT_NE(reply.status().code(), 0) << "the uncommitted entry survived on replica " << i;
  }
}

TEST_P(RaftFixtureTest, AFreshReplicaRestoredFromASnapshotEqualsTheOthers) {
  unsigned leader = Leader();
  for (int i = 0; i < 100; ++i) Propose(leader, testing::MkdirEntry("s" + std::to_string(i), 2));
  CatchUp(leader, {0, 1, 2});
  // An image taken on one replica restores onto a fresh database, and a
  // database that is already newer is not rolled back by an older image.
  auto image = replicas_[leader].sm->Serialize();
  ASSERT_TRUE(image.ok());
  std::string dir = MakeTempDir();
  {
    auto fresh = StateMachine::Open(dir + "/meta.db");
    ASSERT_TRUE(fresh.ok());
    std::string_view bytes(reinterpret_cast<const char*>(image->bytes.get()), image->size);
    ASSERT_TRUE((*fresh)->Restore(bytes).ok());
    EXPECT_EQ((*fresh)->AppliedIndex(), replicas_[leader].sm->AppliedIndex());
    EXPECT_EQ((*fresh)->CanonicalDump(), replicas_[leader].sm->CanonicalDump());
    // Newer than the image: kept.
    ASSERT_TRUE((*fresh)->ApplyAt(testing::MkdirEntry("late", 1).SerializeAsString(), (*fresh)->AppliedIndex() + 1).ok());
    std::string newer = (*fresh)->CanonicalDump();
    ASSERT_TRUE((*fresh)->Restore(bytes).ok());
    EXPECT_EQ((*fresh)->CanonicalDump(), newer);
    // Replayed entries at or below the applied index change nothing.
    auto replay = (*fresh)->ApplyAt(testing::MkdirEntry("late", 1).SerializeAsString(), (*fresh)->AppliedIndex());
    ASSERT_TRUE(replay.ok());
    EXPECT_TRUE(replay->empty());
    EXPECT_EQ((*fresh)->CanonicalDump(), newer);
    EXPECT_FALSE((*fresh)->Restore("not a database").ok());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_P(RaftFixtureTest, ANewLeaderHoldsEverythingItAppliedAsAFollower) {
  unsigned leader = Leader();
  for (int i = 0; i < 5; ++i) Propose(leader, testing::MkdirEntry("e" + std::to_string(i), 2, 7, &next_request_));
  CatchUp(leader, {0, 1, 2});
  pb::LookupRequest lookup;
  lookup.set_parent(1);
  lookup.set_name("e4-1");
  auto found = [&](unsigned i) {
    pb::EntryReply reply;
    replicas_[i].sm->Lookup(lookup, &reply);
    return reply.status().code() == 0;
  };
  const unsigned follower = (leader + 1) % kServers;
  // A deferring follower has not written what libraft counts as applied.
  EXPECT_EQ(found(follower), !GetParam());

  raft_fixture_kill(f_.get(), leader);
  ASSERT_TRUE(raft_fixture_step_until_has_no_leader(f_.get(), 10'000));
  const unsigned dead = leader;
  leader = Leader();
  ASSERT_NE(leader, dead);
  Propose(leader, testing::MkdirEntry("f", 1, 7, &next_request_));
  CatchUp(leader, {leader});
  // The leader's first apply applied the deferred entries first, in order.
  for (const char* name : {"e0-0", "e4-1", "f-0"}) {
    lookup.set_name(name);
    EXPECT_TRUE(found(leader)) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(FollowerApplies, RaftFixtureTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Deferred" : "AtOnce"; });

TEST(ImagePinTest, AnImageHoldsWhatWasAppliedWhenPinnedNotWhatCameAfter) {
  std::string dir = MakeTempDir();
  {
    auto sm = StateMachine::Open(dir + "/meta.db");
    ASSERT_TRUE(sm.ok());
    uint64_t index = 0;
    for (; index < 5; ++index) {
      ASSERT_TRUE((*sm)->ApplyAt(testing::MkdirEntry("a" + std::to_string(index), 3).SerializeAsString(), index + 1).ok());
    }
    const std::string pinned = (*sm)->CanonicalDump();
    auto pin = (*sm)->PinImage();
    ASSERT_TRUE(pin.ok()) << pin.status().ToString();
    EXPECT_EQ(pin->applied_index(), 5u);
    // Enough after the pin for the WAL to pass a checkpoint (1,000 pages).
    for (; index < 300; ++index) {
      ASSERT_TRUE((*sm)->ApplyAt(testing::MkdirEntry("b" + std::to_string(index), 3).SerializeAsString(), index + 1).ok());
    }
    auto image = pin->Take();
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_FALSE(pin->Take().ok());

    auto fresh = StateMachine::Open(dir + "/fresh.db");
    ASSERT_TRUE(fresh.ok());
    ASSERT_TRUE((*fresh)->Restore(std::string_view(reinterpret_cast<const char*>(image->bytes.get()), image->size)).ok());
    EXPECT_EQ((*fresh)->AppliedIndex(), 5u);
    EXPECT_EQ((*fresh)->CanonicalDump(), pinned);
    // The live database kept everything.
    EXPECT_EQ((*sm)->AppliedIndex(), 300u);
    EXPECT_NE((*sm)->CanonicalDump(), pinned);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace dfs::meta::raft
