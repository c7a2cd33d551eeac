// RaftNode with real libraft I/O: TCP on 127.0.0.1, logs on disk, one loop
// thread per node, three nodes in this process.
#include "meta/raft/node.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "meta/state_machine/test_util.h"

namespace dfs::meta::raft {
namespace {

using meta::testing::MakeTempDir;

pb::Op MkdirOp(const std::string& name, uint64_t client, uint64_t request) {
  pb::Op op;
  op.set_now_ns(1'700'000'000'000'000'000);
  op.set_client_id(client);
  op.set_request_id(request);
  op.mutable_mkdir()->set_parent(1);
  op.mutable_mkdir()->set_name(name);
  op.mutable_mkdir()->set_mode(0755);
  return op;
}

struct TestNode {
  std::string dir;
  std::unique_ptr<StateMachine> sm;
  std::unique_ptr<RaftNode> node;
  int leaderships = 0;
};

class RaftNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (uint64_t id = 1; id <= 3; ++id) {
      members_.push_back(Member{id, "127.0.0.1:" + std::to_string(meta::testing::FreeLoopbackPort())});
      nodes_.push_back(std::make_unique<TestNode>());
      nodes_.back()->dir = MakeTempDir();
    }
  }
  void TearDown() override {
    ReleaseCopies();
    for (auto& n : nodes_) {
      n->node.reset();
      n->sm.reset();
      std::error_code ec;
      std::filesystem::remove_all(n->dir, ec);
    }
  }

  void StartNode(size_t i) {
    TestNode& n = *nodes_[i];
    StateMachine::Options sm_options;
    sm_options.synchronous = "NORMAL";
    auto sm = StateMachine::Open(n.dir + "/meta.db", sm_options);
    ASSERT_TRUE(sm.ok()) << sm.status().ToString();
    n.sm = std::move(sm).value();
    std::filesystem::create_directories(n.dir + "/raft");
    RaftOptions options;
    options.id = members_[i].id;
    options.raft_address = members_[i].raft_address;
    options.initial_members = members_;
    options.dir = n.dir + "/raft";
    options.election_timeout_ms = 300;
    options.heartbeat_timeout_ms = 50;
    options.snapshot_threshold = 64;
    options.snapshot_trailing = 16;
    TestNode* np = &n;
    options.on_leader = [np] { ++np->leaderships; };
    options.before_snapshot_copy = before_snapshot_copy_;
    auto node = RaftNode::Start(n.sm.get(), options);
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    n.node = std::move(node).value();
  }
  void StopNode(size_t i) {
    nodes_[i]->node.reset();
    nodes_[i]->sm.reset();
  }

  // The index of the serving leader, waiting up to 10 s.
  int WaitForLeader(int not_this = -1) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (static_cast<int>(i) != not_this && nodes_[i]->node && nodes_[i]->node->Serving()) return static_cast<int>(i);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }

  // True once pred() holds, polling for up to 10 s.
  template <typename Pred>
  static bool WaitUntil(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

  // Applied index equal on all running nodes (waiting up to 10 s).
  bool WaitConverged() {
    return WaitUntil([&] {
      uint64_t want = 0;
      bool same = true;
      for (auto& n : nodes_) {
        if (!n->node) continue;
        uint64_t applied = n->node->view().applied_index;
        if (want == 0) want = applied;
        same = same && applied == want && n->node->view().commit_index == applied;
      }
      return same && want != 0;
    });
  }

  // Makes every snapshot copy wait (up to 30 s) until ReleaseCopies.
  void HoldCopies() {
    before_snapshot_copy_ = [this] {
      std::unique_lock<std::mutex> lock(copy_mu_);
      ++copies_held_;
      copy_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return copies_released_; });
    };
  }
  int CopiesHeld() {
    std::lock_guard<std::mutex> lock(copy_mu_);
    return copies_held_;
  }
  void ReleaseCopies() {
    std::lock_guard<std::mutex> lock(copy_mu_);
    copies_released_ = true;
    copy_cv_.notify_all();
  }

  std::vector<Member> members_;
  std::vector<std::unique_ptr<TestNode>> nodes_;
  std::function<void()> before_snapshot_copy_;
  std::mutex copy_mu_;
  std::condition_variable copy_cv_;
  int copies_held_ = 0;
  bool copies_released_ = false;
};

TEST_F(RaftNodeTest, ElectsServesOnlyOnTheLeaderAndFailsOver) {
  for (size_t i = 0; i < 3; ++i) StartNode(i);
  int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  EXPECT_EQ(nodes_[leader]->leaderships, 1);
  for (size_t i = 0; i < 3; ++i) {
    if (static_cast<int>(i) != leader) {
      EXPECT_FALSE(nodes_[i]->node->Serving()) << i;
    }
  }
  // Many concurrent proposals share entries (group commit).
  std::vector<std::future<common::Result<pb::OpResult>>> futures;
  for (int i = 0; i < 300; ++i) futures.push_back(nodes_[leader]->node->Propose(MkdirOp("x" + std::to_string(i), 9, i + 1)));
  for (auto& f : futures) {
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status().code(), 0);
  }
  EXPECT_LT(nodes_[leader]->node->view().last_index, 300u);
  // A follower refuses: the client must go to the leader. The entries above
  // commit on a majority, so this follower may not have heard from the leader
  // yet on a loaded machine; it learns who leads from the next heartbeat.
  int follower = (leader + 1) % 3;
  auto refused = nodes_[follower]->node->Propose(MkdirOp("nope", 9, 1000)).get();
  EXPECT_FALSE(refused.ok());
  EXPECT_TRUE(WaitUntil([&] { return nodes_[follower]->node->view().leader_id == members_[leader].id; }))
      << "follower " << follower << " sees leader " << nodes_[follower]->node->view().leader_id;

  // The leader goes away; another serves within a few election timeouts.
  auto stopped = std::chrono::steady_clock::now();
  StopNode(leader);
  int next = WaitForLeader(leader);
  ASSERT_GE(next, 0);
  auto failover = std::chrono::steady_clock::now() - stopped;
  EXPECT_LT(failover, std::chrono::seconds(5));
  // A retry of an acknowledged request answers from the exactly-once table.
  auto retry = nodes_[next]->node->Propose(MkdirOp("x5", 9, 6)).get();
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->status().code(), 0);
  auto fresh = nodes_[next]->node->Propose(MkdirOp("x5", 9, 2000)).get();
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(fresh->status().code(), 0);  // EEXIST: it did survive the failover

  // The old leader restarts from its folder and catches up.
  futures.clear();
  for (int i = 0; i < 200; ++i) futures.push_back(nodes_[next]->node->Propose(MkdirOp("y" + std::to_string(i), 9, 3000 + i)));
  for (auto& f : futures) f.wait();
  StartNode(leader);
  ASSERT_TRUE(WaitConverged());
  const std::string dump = nodes_[next]->sm->CanonicalDump();
  for (auto& n : nodes_) EXPECT_EQ(n->sm->CanonicalDump(), dump);
}

TEST_F(RaftNodeTest, EntriesCommitWhileASnapshotIsBeingCopied) {
  HoldCopies();
  for (size_t i = 0; i < 3; ++i) StartNode(i);
  int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  uint64_t request = 1;
  auto mkdir = [&](const std::string& name) {
    auto r = nodes_[leader]->node->Propose(MkdirOp(name, 9, request++)).get();
    return r.ok() && r->status().code() == 0;
  };
  // One entry per proposal, past the snapshot threshold (64): every member
  // starts a snapshot, and its copy is held.
  for (int i = 0; i < 200 && CopiesHeld() == 0; ++i) ASSERT_TRUE(mkdir("a" + std::to_string(i)));
  ASSERT_TRUE(WaitUntil([&] { return CopiesHeld() == 3; })) << CopiesHeld() << " copies started";
  // A copy in progress stops neither commits nor applies, on any member.
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(mkdir("b" + std::to_string(i))) << i;
  ASSERT_TRUE(WaitConverged());
  const std::string dump = nodes_[leader]->sm->CanonicalDump();
  for (auto& n : nodes_) EXPECT_EQ(n->sm->CanonicalDump(), dump);

  // Released, every member writes its snapshot; a member restarted from it
  // (and the log after it) holds everything.
  ReleaseCopies();
  auto has_snapshot = [](const std::string& dir) {
    std::error_code ec;
    for (const auto& file : std::filesystem::directory_iterator(dir, ec)) {
      if (file.path().filename().string().rfind("snapshot-", 0) == 0) return true;
    }
    return false;
  };
  for (auto& n : nodes_) EXPECT_TRUE(WaitUntil([&] { return has_snapshot(n->dir + "/raft"); })) << n->dir;
  int follower = (leader + 1) % 3;
  StopNode(follower);
  StartNode(follower);
  ASSERT_TRUE(mkdir("after-restart"));
  ASSERT_TRUE(WaitConverged());
  EXPECT_EQ(nodes_[follower]->sm->CanonicalDump(), nodes_[leader]->sm->CanonicalDump());
}

TEST_F(RaftNodeTest, AMemberJustStartedVotesForNobodyWithinAnElectionTimeout) {
  for (size_t i = 0; i < 3; ++i) StartNode(i);
  const int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  const int a = (leader + 1) % 3, b = (leader + 2) % 3;
  StopNode(leader);
  // `a` alone campaigns and nobody answers; then `b` starts. A vote request
  // of `a` reaching `b` in its first election timeout (300 ms) is ignored,
  // so no leader exists before then. Tried until one did reach it early.
  uint64_t refused = 0;
  for (int attempt = 0; attempt < 10 && refused == 0; ++attempt) {
    StopNode(a);
    StopNode(b);
    StartNode(a);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));  // a's own first timeout passes: it campaigns
    const auto started = std::chrono::steady_clock::now();
    StartNode(b);
    const bool elected = WaitUntil([&] { return nodes_[a]->node->view().leader_id != 0 || nodes_[b]->node->view().leader_id != 0; });
    const auto elapsed = std::chrono::steady_clock::now() - started;
    ASSERT_TRUE(elected);
    EXPECT_GE(elapsed, std::chrono::milliseconds(300)) << "attempt " << attempt;
    refused = nodes_[b]->node->votes_refused_after_start();
  }
  EXPECT_GT(refused, 0u) << "no vote request reached the new member in its first election timeout, in 10 tries";
  EXPECT_GE(WaitForLeader(), 0);
}

TEST_F(RaftNodeTest, RefusesADatabaseAheadOfAMissingRaftLog) {
  // A meta.db that applied entries, next to an empty raft folder.
  TestNode& n = *nodes_[0];
  auto sm = StateMachine::Open(n.dir + "/meta.db");
  ASSERT_TRUE(sm.ok());
  pb::Entry entry;
  entry.set_format(1);
  *entry.add_ops() = MkdirOp("old", 9, 1);
  ASSERT_TRUE((*sm)->ApplyAt(entry.SerializeAsString(), 5).ok());
  std::filesystem::create_directories(n.dir + "/raft");
  RaftOptions options;
  options.id = 1;
  options.raft_address = members_[0].raft_address;
  options.initial_members = {members_[0]};
  options.dir = n.dir + "/raft";
  auto node = RaftNode::Start(sm->get(), options);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), common::StatusCode::kFailedPrecondition);
  EXPECT_NE(node.status().message().find("applied Raft index 5"), std::string::npos) << node.status().ToString();
}

TEST_F(RaftNodeTest, MembersCanBeAddedAndRemoved) {
  // Start a one-member group, then grow it to three and shrink it to two.
  std::vector<Member> all = members_;
  members_ = {all[0]};
  StartNode(0);
  ASSERT_EQ(WaitForLeader(), 0);
  ASSERT_TRUE(nodes_[0]->node->Propose(MkdirOp("before", 9, 1)).get().ok());
  members_ = all;
  for (size_t i = 1; i < 3; ++i) {
    // A joining node has no initial members: it waits to be added.
    TestNode& n = *nodes_[i];
    auto sm = StateMachine::Open(n.dir + "/meta.db");
    ASSERT_TRUE(sm.ok());
    n.sm = std::move(sm).value();
    std::filesystem::create_directories(n.dir + "/raft");
    RaftOptions options;
    options.id = all[i].id;
    options.raft_address = all[i].raft_address;
    options.dir = n.dir + "/raft";
    options.election_timeout_ms = 300;
    options.heartbeat_timeout_ms = 50;
    auto node = RaftNode::Start(n.sm.get(), options);
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    n.node = std::move(node).value();
    std::promise<common::Status> added;
    nodes_[0]->node->AddMember(all[i].id, all[i].raft_address, [&](common::Status s) { added.set_value(s); });
    auto status = added.get_future().get();
    ASSERT_TRUE(status.ok()) << status.ToString();
  }
  std::promise<common::Status> again;
  nodes_[0]->node->AddMember(all[1].id, all[1].raft_address, [&](common::Status s) { again.set_value(s); });
  EXPECT_EQ(again.get_future().get().code(), common::StatusCode::kAlreadyExists);
  ASSERT_TRUE(WaitConverged());
  EXPECT_EQ(nodes_[2]->sm->CanonicalDump(), nodes_[0]->sm->CanonicalDump());
  EXPECT_EQ(nodes_[0]->node->view().members.size(), 3u);

  std::promise<common::Status> removed;
  nodes_[0]->node->RemoveMember(all[2].id, [&](common::Status s) { removed.set_value(s); });
  ASSERT_TRUE(removed.get_future().get().ok());
  StopNode(2);
  ASSERT_TRUE(nodes_[0]->node->Propose(MkdirOp("after", 9, 2)).get().ok());
  EXPECT_EQ(nodes_[0]->node->view().members.size(), 2u);
}

}  // namespace
}  // namespace dfs::meta::raft
