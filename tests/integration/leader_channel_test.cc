// LeaderChannel against real gRPC servers on loopback: followers that answer
// "not leader" with a hint, a member that is down, a leader that fails calls
// for real, and a group with no leader at all.
#include "common/leader_channel.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "common/grpc_status.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::common {
namespace {

// A MetaService member that is either the leader (answers ClusterStatus with
// its own id) or a follower (fails with UNAVAILABLE + the leader hint).
class FakeMember final : public pb::MetaService::Service {
 public:
  explicit FakeMember(uint64_t id) : id_(id) {}

  void MakeLeader() {
    std::lock_guard<std::mutex> lock(mu_);
    leader_ = true;
  }
  void Follow(std::string leader_address) {
    std::lock_guard<std::mutex> lock(mu_);
    leader_ = false;
    hint_ = std::move(leader_address);
  }
  void FailWith(grpc::StatusCode code) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_code_ = code;
  }
  int calls() const { return calls_.load(); }

  grpc::Status ClusterStatus(grpc::ServerContext* context, const pb::ClusterStatusRequest*,
                             pb::ClusterStatusReply* reply) override {
    ++calls_;
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_code_ != grpc::StatusCode::OK) return grpc::Status(fail_code_, "injected");
    if (!leader_) return NotLeaderStatus(context, hint_);
    reply->set_leader_id(id_);
    return grpc::Status::OK;
  }

 private:
  const uint64_t id_;
  std::mutex mu_;  // guards the three fields below (set by the test thread, read by handlers)
  bool leader_ = false;
  std::string hint_;
  grpc::StatusCode fail_code_ = grpc::StatusCode::OK;
  std::atomic<int> calls_{0};
};

struct Server {
  std::unique_ptr<FakeMember> member;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

Server StartMember(uint64_t id) {
  Server s;
  s.member = std::make_unique<FakeMember>(id);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(s.member.get());
  s.server = builder.BuildAndStart();
  EXPECT_NE(port, 0);
  s.address = "127.0.0.1:" + std::to_string(port);
  return s;
}

// A port nothing listens on: bind a server, note its port, shut it down.
std::string DeadAddress() {
  Server s = StartMember(99);
  std::string address = s.address;
  s.server->Shutdown();
  return address;
}

LeaderChannel::Options FastOptions() {
  LeaderChannel::Options options;
  options.attempt_timeout_ms = 1'000;
  options.total_timeout_ms = 5'000;
  return options;
}

grpc::Status AskStatus(LeaderChannel& channel, uint64_t* leader_id) {
  return channel.Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& ctx) {
    auto stub = pb::MetaService::NewStub(ch);
    pb::ClusterStatusReply reply;
    grpc::Status s = stub->ClusterStatus(&ctx, pb::ClusterStatusRequest(), &reply);
    if (s.ok()) *leader_id = reply.leader_id();
    return s;
  });
}

TEST(LeaderChannelTest, Call_FollowsHintToLeader) {
  Server a = StartMember(1), b = StartMember(2), c = StartMember(3);
  c.member->MakeLeader();
  a.member->Follow(c.address);
  b.member->Follow(c.address);

  auto channel = LeaderChannel::Create(a.address + "," + b.address + "," + c.address, FastOptions());
  ASSERT_TRUE(channel.ok());
  uint64_t leader = 0;
  ASSERT_TRUE(AskStatus(**channel, &leader).ok());
  EXPECT_EQ(leader, 3u);
  EXPECT_EQ((*channel)->current_leader(), c.address);
  EXPECT_EQ(b.member->calls(), 0);  // went straight from a to the hinted c

  // The guess sticks: the next call goes to c directly.
  int a_calls = a.member->calls();
  ASSERT_TRUE(AskStatus(**channel, &leader).ok());
  EXPECT_EQ(a.member->calls(), a_calls);
}

// A call with no trailing metadata of its own (a message of a call stream)
// names the leader in its status details (WithHint); Call follows it too.
TEST(LeaderChannelTest, Call_FollowsHintInStatusDetails) {
  Server a = StartMember(1), b = StartMember(2), c = StartMember(3);
  c.member->MakeLeader();
  auto channel = LeaderChannel::Create(a.address + "," + b.address + "," + c.address, FastOptions());
  ASSERT_TRUE(channel.ok());
  std::vector<std::string> tried;
  grpc::Status s = (*channel)->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext&) {
    tried.push_back(ch == nullptr ? "" : (*channel)->current_leader());
    if (tried.back() != c.address) {
      return common::WithHint(grpc::Status(grpc::StatusCode::UNAVAILABLE, "not the leader"), common::kLeaderHintKey,
                              c.address);
    }
    return grpc::Status::OK;
  });
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(tried.size(), 2u);  // a, then straight to the hinted c
  EXPECT_EQ(tried[0], a.address);
  EXPECT_EQ(tried[1], c.address);
  EXPECT_EQ((*channel)->current_leader(), c.address);
}

TEST(LeaderChannelTest, Call_FollowsHintToMemberNotInList) {
  Server a = StartMember(1), hidden = StartMember(7);
  hidden.member->MakeLeader();
  a.member->Follow(hidden.address);
  auto channel = LeaderChannel::Create(a.address, FastOptions());
  ASSERT_TRUE(channel.ok());
  uint64_t leader = 0;
  ASSERT_TRUE(AskStatus(**channel, &leader).ok());
  EXPECT_EQ(leader, 7u);
}

TEST(LeaderChannelTest, Call_SkipsDeadMember) {
  std::string dead = DeadAddress();
  Server b = StartMember(2);
  b.member->MakeLeader();
  auto channel = LeaderChannel::Create(dead + "," + b.address, FastOptions());
  ASSERT_TRUE(channel.ok());
  uint64_t leader = 0;
  ASSERT_TRUE(AskStatus(**channel, &leader).ok());
  EXPECT_EQ(leader, 2u);
}

TEST(LeaderChannelTest, Call_LeaderChangesBetweenCalls) {
  Server a = StartMember(1), b = StartMember(2);
  a.member->MakeLeader();
  b.member->Follow(a.address);
  auto channel = LeaderChannel::Create(a.address + "," + b.address, FastOptions());
  ASSERT_TRUE(channel.ok());
  uint64_t leader = 0;
  ASSERT_TRUE(AskStatus(**channel, &leader).ok());
  EXPECT_EQ(leader, 1u);

  // Failover: b is leader now, a knows it.
  b.member->MakeLeader();
  a.member->Follow(b.address);
  ASSERT_TRUE(AskStatus(**channel, &leader).ok());
  EXPECT_EQ(leader, 2u);
}

TEST(LeaderChannelTest, Call_NonRetryableErrorReturnsAtOnce) {
  Server a = StartMember(1), b = StartMember(2);
  a.member->FailWith(grpc::StatusCode::INVALID_ARGUMENT);
  b.member->MakeLeader();
  auto channel = LeaderChannel::Create(a.address + "," + b.address, FastOptions());
  ASSERT_TRUE(channel.ok());
  uint64_t leader = 0;
  grpc::Status s = AskStatus(**channel, &leader);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(b.member->calls(), 0);
}

TEST(LeaderChannelTest, Call_NoLeaderGivesUpAtDeadline) {
  Server a = StartMember(1), b = StartMember(2);
  a.member->Follow("");  // election in progress: nobody knows
  b.member->Follow("");
  LeaderChannel::Options options = FastOptions();
  options.total_timeout_ms = 1'000;
  auto channel = LeaderChannel::Create(a.address + "," + b.address, options);
  ASSERT_TRUE(channel.ok());
  auto start = std::chrono::steady_clock::now();
  uint64_t leader = 0;
  grpc::Status s = AskStatus(**channel, &leader);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("no leader reachable"), std::string::npos);
  EXPECT_LT(elapsed, std::chrono::seconds(3));
  EXPECT_GT(a.member->calls() + b.member->calls(), 2);  // it did retry, with backoff
}

TEST(LeaderChannelTest, Create_RejectsBadSource) {
  EXPECT_EQ(LeaderChannel::Create("meta1", FastOptions()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(LeaderChannel::Create("", FastOptions()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dfs::common
