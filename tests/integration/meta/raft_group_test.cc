// dfs-meta as a Raft group of real processes on 127.0.0.1: a create storm
// while the leader is killed with kill -9 again and again (every
// acknowledged create exists afterwards, none twice, the databases agree), a
// partitioned (SIGSTOPped) old leader that must not serve stale reads when it
// wakes, a restarted old leader whose uncommitted tail conflicts with the
// new leader's log, a follower whose snapshot is newer than the leader's
// (libraft 0.15 left it behind for good), and a 5-member group that survives
// two members down and blocks, then resumes, with three down.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sys/wait.h>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/leader_channel.h"
#include "common/status.h"
#include "meta/state_machine/state_machine.h"
#include "proto/meta.grpc.pb.h"
#include "tests/harness/process.h"

namespace dfs {
namespace {

using Clock = std::chrono::steady_clock;
using common::StatusCode;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

class MetaGroup {
 public:
  MetaGroup(const std::string& dir, int n) : dir_(dir) {
    for (int i = 1; i <= n; ++i) {
      Member m;
      m.id = i;
      m.rpc = "127.0.0.1:" + std::to_string(testing::PickFreePort());
      m.raft = "127.0.0.1:" + std::to_string(testing::PickFreePort());
      m.dir = dir + "/meta-" + std::to_string(i);
      members_.push_back(std::move(m));
    }
    for (const Member& m : members_) members_flag_ += (members_flag_.empty() ? "" : ",") + std::to_string(m.id) + "=" + m.raft;
  }
  ~MetaGroup() {
    for (Member& m : members_) {
      if (m.process) {
        m.process->Signal(SIGCONT);
        m.process->Kill();
      }
    }
  }

  // Starts member i: bootstrapping with every member (`join` false), or with
  // only --raft-listen, to wait until it is added (`join` true).
  void Start(int i, bool join = false, const std::vector<std::string>& extra = {}) {
    Member& m = members_[i];
    std::filesystem::create_directories(m.dir);
    std::string ready = m.dir + ".ready";
    std::filesystem::remove(ready);
    std::vector<std::string> argv = {testing::BinaryPath("DFS_META_BIN"), "--listen", m.rpc, "--data", m.dir,
                                     "--ready-file", ready, "--insecure-dev-key", "--replicas", "1", "--node-id",
                                     std::to_string(m.id), "--raft-listen", m.raft, "--election-timeout", "300ms",
                                     "--heartbeat-timeout", "50ms"};
    if (!join) {
      argv.push_back("--members");
      argv.push_back(bootstrap_members_.empty() ? members_flag_ : bootstrap_members_);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto process = testing::Process::Start(argv, m.dir + ".log");
    ASSERT_TRUE(process.ok()) << process.status().ToString();
    m.process = std::move(process).value();
    auto address = testing::WaitForReadyFile(ready, *m.process, 20000);
    ASSERT_TRUE(address.ok()) << address.status().ToString();
  }
  void Kill(int i) { members_[i].process->Kill(); members_[i].process.reset(); }
  void Signal(int i, int signal) { members_[i].process->Signal(signal); }
  // SIGSTOP, returning once every thread has stopped (kill() returns before
  // the target has processed the signal).
  bool Stop(int i) {
    Signal(i, SIGSTOP);
    const std::string stat = "/proc/" + std::to_string(members_[i].process->pid()) + "/stat";
    for (int tries = 0; tries < 1000; ++tries) {
      std::ifstream in(stat);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      size_t paren = text.rfind(')');
      if (paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'T') return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  bool Running(int i) const { return members_[i].process != nullptr; }

  std::string Source() const {
    std::string s;
    for (const Member& m : members_) s += (s.empty() ? "" : ",") + m.rpc;
    return s;
  }
  const std::string& Rpc(int i) const { return members_[i].rpc; }
  const std::string& Raft(int i) const { return members_[i].raft; }
  // Bootstrap with only the first `n` members (the rest join later).
  void BootstrapWith(int n) {
    bootstrap_members_.clear();
    for (int i = 0; i < n; ++i) {
      bootstrap_members_ += (i ? "," : "") + std::to_string(members_[i].id) + "=" + members_[i].raft;
    }
  }
  int Size() const { return static_cast<int>(members_.size()); }
  // Index of the member with Raft id `id`.
  int IndexOf(uint64_t id) const { return static_cast<int>(id) - 1; }
  std::string DbPath(int i) const { return members_[i].dir + "/meta.db"; }
  std::string Log(int i) const { return members_[i].dir + ".log"; }

 private:
  struct Member {
    int id = 0;
    std::string rpc, raft, dir;
    std::unique_ptr<testing::Process> process;
  };
  std::string dir_;
  std::vector<Member> members_;
  std::string members_flag_;
  std::string bootstrap_members_;
};

class RaftGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dfs-raft-group-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    group_.reset();
    std::error_code ec;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ec);
    else std::fprintf(stderr, "logs kept in %s\n", dir_.c_str());
  }

  void StartGroup(int n, int start = -1) {
    group_ = std::make_unique<MetaGroup>(dir_, n);
    if (start < 0) start = n;
    if (start < n) group_->BootstrapWith(start);
    for (int i = 0; i < start; ++i) ASSERT_NO_FATAL_FAILURE(group_->Start(i, false, {"--snapshot-threshold", "16", "--snapshot-trailing", "4"}));
    Connect();
  }
  void Connect() {
    common::LeaderChannel::Options options;
    options.attempt_timeout_ms = 500;
    options.total_timeout_ms = 20'000;
    auto channel = common::LeaderChannel::Create(group_->Source(), options);
    ASSERT_TRUE(channel.ok());
    meta_ = std::move(channel).value();
  }

  uint64_t OpenSession() {
    pb::OpenSessionReply reply;
    grpc::Status s = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      pb::OpenSessionRequest req;
      req.set_hostname("raft-test");
      return pb::MetaService::Stub(ch).OpenSession(&c, req, &reply);
    });
    EXPECT_TRUE(s.ok()) << s.error_message();
    return reply.client_id();
  }

  // Mkdir in the root through the leader, retried (same ids) across leaders.
  grpc::Status Mkdir(common::LeaderChannel& channel, uint64_t client, uint64_t request, const std::string& name,
                     pb::EntryReply* reply) {
    pb::MkdirRequest req;
    req.mutable_ctx()->set_client_id(client);
    req.mutable_ctx()->set_request_id(request);
    req.set_parent(1);
    req.set_name(name);
    req.set_mode(0755);
    return channel.Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      return pb::MetaService::Stub(ch).Mkdir(&c, req, reply);
    });
  }

  uint64_t LeaderId() {
    pb::ClusterStatusReply reply;
    grpc::Status s = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      return pb::MetaService::Stub(ch).ClusterStatus(&c, pb::ClusterStatusRequest(), &reply);
    });
    return s.ok() ? reply.leader_id() : 0;
  }

  // Waits until every running member's database is at the same applied
  // index with the same content; false after 20 s.
  bool DatabasesAgree(std::string* why) {
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      std::string first;
      uint64_t first_index = 0;
      bool same = true;
      for (int i = 0; i < group_->Size() && same; ++i) {
        uint64_t index = 0;
        auto dump = meta::StateMachine::DumpFile(group_->DbPath(i), &index);
        if (!dump.ok()) {
          *why = dump.status().ToString();
          same = false;
        } else if (i == 0) {
          first = *dump;
          first_index = index;
        } else if (index != first_index) {
          *why = "applied index " + std::to_string(index) + " vs " + std::to_string(first_index);
          same = false;
        } else if (*dump != first) {
          *why = "member " + std::to_string(i + 1) + " differs at the same applied index " + std::to_string(index);
          return false;
        }
      }
      if (same) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  std::string dir_;
  std::unique_ptr<MetaGroup> group_;
  std::unique_ptr<common::LeaderChannel> meta_;
};

TEST_F(RaftGroupTest, CreateStormSurvivesRepeatedLeaderKills) {
  ASSERT_NO_FATAL_FAILURE(StartGroup(3));
  constexpr int kWorkers = 4;
  constexpr int kKills = 5;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> acked;  // guarded by mu
  std::vector<std::string> twice;  // EEXIST for a name only this request created: applied twice
  std::atomic<int> failed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    uint64_t client = OpenSession();
    ASSERT_NE(client, 0u);
    workers.emplace_back([&, w, client] {
      common::LeaderChannel::Options options;
      options.attempt_timeout_ms = 500;
      options.total_timeout_ms = 20'000;
      auto channel = common::LeaderChannel::Create(group_->Source(), options);
      for (uint64_t i = 1; !stop.load() && i < 100'000; ++i) {
        std::string name = "w" + std::to_string(w) + "-" + std::to_string(i);
        pb::EntryReply reply;
        grpc::Status s = Mkdir(**channel, client, i, name, &reply);
        std::lock_guard<std::mutex> lock(mu);
        if (!s.ok()) {
          ++failed;
        } else if (reply.status().code() == 0) {
          acked.push_back(name);
        } else if (reply.status().code() == static_cast<int>(StatusCode::kAlreadyExists)) {
          twice.push_back(name);
        } else {
          ++failed;
        }
      }
    });
  }

  std::vector<double> failovers;
  for (int k = 0; k < kKills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    uint64_t leader = LeaderId();
    ASSERT_NE(leader, 0u);
    const int victim = group_->IndexOf(leader);
    auto killed = Clock::now();
    group_->Kill(victim);
    // Failover: until the group answers a mutation again.
    uint64_t probe = OpenSession();
    failovers.push_back(Ms(Clock::now() - killed));
    ASSERT_NE(probe, 0u);
    // Restarted with the default snapshot threshold, on purpose: members
    // whose snapshots lie far apart are what libraft 0.15 mishandled.
    ASSERT_NO_FATAL_FAILURE(group_->Start(victim));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& t : workers) t.join();

  std::sort(failovers.begin(), failovers.end());
  std::printf("failover after kill -9 of the leader (%d kills): min %.0f ms, median %.0f ms, max %.0f ms\n", kKills,
              failovers.front(), failovers[failovers.size() / 2], failovers.back());
  std::printf("acknowledged creates %zu, failed calls %d\n", acked.size(), failed.load());
  EXPECT_TRUE(twice.empty()) << twice.size() << " creates answered EEXIST: applied twice, e.g. " << twice[0];
  EXPECT_GT(acked.size(), 100u);
  EXPECT_EQ(failed.load(), 0);

  // Every acknowledged create exists, once.
  std::set<std::string> unique(acked.begin(), acked.end());
  EXPECT_EQ(unique.size(), acked.size());
  for (const std::string& name : acked) {
    pb::EntryReply reply;
    grpc::Status s = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      pb::LookupRequest req;
      req.set_parent(1);
      req.set_name(name);
      return pb::MetaService::Stub(ch).Lookup(&c, req, &reply);
    });
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(reply.status().code(), 0) << name << " was acknowledged but is gone";
  }
  std::string why;
  EXPECT_TRUE(DatabasesAgree(&why)) << why;
}

// A leader that appended entries no follower has (its followers stopped), then
// died, comes back with a tail that conflicts with the new leader's log at the
// same indexes: it must drop that tail and catch up.
TEST_F(RaftGroupTest, ARestartedLeaderDropsItsUncommittedTailAndCatchesUp) {
  ASSERT_NO_FATAL_FAILURE(StartGroup(3));
  uint64_t client = OpenSession();
  pb::EntryReply reply;
  ASSERT_TRUE(Mkdir(*meta_, client, 1, "before", &reply).ok());
  const int old = group_->IndexOf(LeaderId());
  const int a = (old + 1) % 3, b = (old + 2) % 3;
  ASSERT_TRUE(group_->Stop(a));
  ASSERT_TRUE(group_->Stop(b));
  // The lone leader appends idle barriers (every election timeout / 4) and
  // this mkdir, none of which can commit.
  std::thread doomed([&] {
    auto channel = common::MakeChannel(group_->Rpc(old));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(400));
    pb::MkdirRequest req;
    req.mutable_ctx()->set_client_id(client);
    req.mutable_ctx()->set_request_id(2);
    req.set_parent(1);
    req.set_name("never-acknowledged");
    req.set_mode(0755);
    pb::EntryReply ignored;
    pb::MetaService::Stub(channel).Mkdir(&ctx, req, &ignored);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  group_->Kill(old);
  doomed.join();
  group_->Signal(a, SIGCONT);
  group_->Signal(b, SIGCONT);
  for (uint64_t i = 3; i < 40; ++i) {
    ASSERT_TRUE(Mkdir(*meta_, client, i, "after-" + std::to_string(i), &reply).ok());
    ASSERT_EQ(reply.status().code(), 0);
  }
  ASSERT_NO_FATAL_FAILURE(group_->Start(old, false, {"--snapshot-threshold", "16", "--snapshot-trailing", "4"}));
  for (uint64_t i = 40; i < 60; ++i) {
    ASSERT_TRUE(Mkdir(*meta_, client, i, "after-" + std::to_string(i), &reply).ok());
  }
  std::string why;
  EXPECT_TRUE(DatabasesAgree(&why)) << why;
}

// A file held only by a lazy read open (no handle in the log) and then
// unlinked survives the leader's kill -9: the new leader knows nothing of the
// reader's pins, so it frees no orphan until every session it took over has
// reported to it; it frees the file once the reader stops listing it.
TEST_F(RaftGroupTest, AnUnlinkedFileReadThroughALazyOpenSurvivesALeaderKill) {
  ASSERT_NO_FATAL_FAILURE(StartGroup(3));
  const uint64_t writer = OpenSession();
  uint64_t reader = 0;
  {
    pb::OpenSessionReply reply;
    grpc::Status s = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      pb::OpenSessionRequest req;
      req.set_hostname("reader");
      req.set_reports_read_pins(true);
      return pb::MetaService::Stub(ch).OpenSession(&c, req, &reply);
    });
    ASSERT_TRUE(s.ok()) << s.error_message();
    reader = reply.client_id();
  }
  pb::CreateReply created;
  ASSERT_TRUE(meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
                     pb::CreateRequest req;
                     req.mutable_ctx()->set_client_id(writer);
                     req.mutable_ctx()->set_request_id(1);
                     req.set_parent(1);
                     req.set_name("held");
                     req.set_mode(0644);
                     req.set_flags(01);
                     return pb::MetaService::Stub(ch).Create(&c, req, &created);
                   }).ok());
  ASSERT_EQ(created.status().code(), 0);
  const uint64_t ino = created.attr().ino();

  // The reader's KeepAlive loop, as a mount runs it (every 200 ms here).
  std::atomic<bool> pinned{true}, paused{false}, stop{false};
  std::thread keepalive([&] {
    uint64_t epoch = 0;
    while (!stop.load()) {
      if (paused.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      pb::KeepAliveRequest req;
      req.set_client_id(reader);
      req.set_reports_read_pins(true);
      req.set_pin_epoch(epoch);
      if (pinned.load()) req.add_read_pins(ino);
      pb::KeepAliveReply reply;
      grpc::Status s = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
        return pb::MetaService::Stub(ch).KeepAlive(&c, req, &reply);
      });
      if (s.ok() && reply.status().code() == 0) epoch = reply.pin_epoch();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop = true;
      t.join();
    }
  } joiner{stop, keepalive};

  pb::OpenReply opened;
  ASSERT_TRUE(meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
                     pb::OpenRequest req;
                     req.mutable_ctx()->set_client_id(reader);
                     req.mutable_ctx()->set_request_id(1);
                     req.set_ino(ino);
                     req.set_flags(0);
                     req.set_lazy_read(true);
                     return pb::MetaService::Stub(ch).Open(&c, req, &opened);
                   }).ok());
  ASSERT_EQ(opened.status().code(), 0);
  EXPECT_EQ(opened.handle_id(), 0u) << "the read open took a handle";
  auto exists = [&] {
    pb::AttrReply reply;
    grpc::Status s = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      pb::GetAttrRequest req;
      req.set_ino(ino);
      return pb::MetaService::Stub(ch).GetAttr(&c, req, &reply);
    });
    EXPECT_TRUE(s.ok()) << s.error_message();
    return reply.status().code() == 0;
  };
  // Releases the writer's handle and unlinks: only the reader holds it now.
  pb::StatusReply unlinked;
  ASSERT_TRUE(meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
                     pb::UnlinkRequest req;
                     req.mutable_ctx()->set_client_id(writer);
                     req.mutable_ctx()->set_request_id(2);
                     pb::ReleaseRequest* release = req.mutable_ctx()->add_releases();
                     release->set_ino(ino);
                     release->set_handle_id(created.handle_id());
                     req.set_parent(1);
                     req.set_name("held");
                     return pb::MetaService::Stub(ch).Unlink(&c, req, &unlinked);
                   }).ok());
  ASSERT_EQ(unlinked.status().code(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(exists()) << "freed while the reader reported it";

  const uint64_t old = LeaderId();
  ASSERT_NE(old, 0u);
  // The reader is slow to report to the new leader (a mount reports once a
  // second): meanwhile that leader must assume it holds everything.
  paused = true;
  group_->Kill(group_->IndexOf(old));
  for (int i = 0; i < 50; ++i) {  // 5 s of the new leader's passes
    if (i == 25) paused = false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(exists()) << "the new leader freed a file the reader still reads";
  }
  EXPECT_NE(LeaderId(), old);
  pinned = false;
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    gone = !exists();
  }
  EXPECT_TRUE(gone) << "not freed after the reader let go";
}

// libraft 0.15 rejects AppendEntries that start below the follower's own
// snapshot; a leader whose snapshot is older than a follower's (here: it
// never took one) then loops resending it, and the follower never catches
// up (append_fixes.h). The leader must also have forgotten what the
// follower holds: it was elected while that follower was down.
TEST_F(RaftGroupTest, AFollowerWithANewerSnapshotThanTheLeaderCatchesUp) {
  // Members 1 and 2 never take a snapshot; 3 takes one every 16 entries.
  group_ = std::make_unique<MetaGroup>(dir_, 3);
  const std::vector<std::string> never = {"--snapshot-threshold", "1000000"};
  const std::vector<std::string> often = {"--snapshot-threshold", "16", "--snapshot-trailing", "4"};
  ASSERT_NO_FATAL_FAILURE(group_->Start(0, false, never));
  ASSERT_NO_FATAL_FAILURE(group_->Start(1, false, never));
  ASSERT_NO_FATAL_FAILURE(group_->Start(2, false, often));
  Connect();
  uint64_t client = OpenSession();
  uint64_t request = 0;
  auto mkdirs = [&](int n) {
    for (int i = 0; i < n; ++i) {
      pb::EntryReply reply;
      ++request;
      ASSERT_TRUE(Mkdir(*meta_, client, request, "d" + std::to_string(request), &reply).ok());
      ASSERT_EQ(reply.status().code(), 0);
    }
  };
  ASSERT_NO_FATAL_FAILURE(mkdirs(60));
  group_->Kill(2);
  ASSERT_NO_FATAL_FAILURE(mkdirs(1));
  // A new term among 1 and 2 while 3 is down.
  const int leader = group_->IndexOf(LeaderId());
  ASSERT_NE(leader, 2);
  group_->Kill(leader);
  ASSERT_NO_FATAL_FAILURE(group_->Start(leader, false, never));
  ASSERT_NO_FATAL_FAILURE(mkdirs(60));
  ASSERT_NO_FATAL_FAILURE(group_->Start(2, false, often));
  ASSERT_NO_FATAL_FAILURE(mkdirs(20));
  std::string why;
  EXPECT_TRUE(DatabasesAgree(&why)) << why;
}

TEST_F(RaftGroupTest, APartitionedOldLeaderServesNoStaleReads) {
  ASSERT_NO_FATAL_FAILURE(StartGroup(3));
  uint64_t client = OpenSession();
  pb::EntryReply reply;
  ASSERT_TRUE(Mkdir(*meta_, client, 1, "before", &reply).ok());
  const int old = group_->IndexOf(LeaderId());
  ASSERT_TRUE(group_->Stop(old));
  // The others elect a leader and take a change the old one never sees.
  ASSERT_TRUE(Mkdir(*meta_, client, 2, "after", &reply).ok());
  ASSERT_EQ(reply.status().code(), 0);
  ASSERT_NE(group_->IndexOf(LeaderId()), old);

  // Woken up, the old leader still believes in its term for a moment; it
  // must refuse (UNAVAILABLE) rather than answer "after does not exist".
  group_->Signal(old, SIGCONT);
  auto channel = common::MakeChannel(group_->Rpc(old));
  auto stub = pb::MetaService::NewStub(channel);
  // The same lookup as a message of a call stream (what mounts send) must
  // obey the same rule.
  grpc::ClientContext stream_ctx;
  stream_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->Calls(&stream_ctx);
  pb::MetaCall call;
  call.mutable_lookup()->set_parent(1);
  call.mutable_lookup()->set_name("after");
  int refused = 0, answered = 0, stream_refused = 0, stream_answered = 0;
  auto until = Clock::now() + std::chrono::milliseconds(1500);
  while (Clock::now() < until) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    pb::LookupRequest req;
    req.set_parent(1);
    req.set_name("after");
    pb::EntryReply lookup;
    grpc::Status s = stub->Lookup(&ctx, req, &lookup);
    if (!s.ok()) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
      ++refused;
    } else {
      EXPECT_EQ(lookup.status().code(), 0) << "stale read: the old leader answered that 'after' does not exist";
      ++answered;
    }
    pb::MetaReturn ret;
    ASSERT_TRUE(stream->Write(call) && stream->Read(&ret));
    if (ret.code() != 0) {
      EXPECT_EQ(ret.code(), grpc::StatusCode::UNAVAILABLE) << ret.message();
      ++stream_refused;
    } else {
      EXPECT_EQ(ret.entry().status().code(), 0) << "stale read on a call stream of the old leader";
      ++stream_answered;
    }
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  std::printf("old leader after SIGCONT: %d reads refused, %d answered; on a call stream %d refused, %d answered\n",
              refused, answered, stream_refused, stream_answered);
  EXPECT_GT(refused, 0);
  EXPECT_GT(stream_refused, 0);
  std::string why;
  EXPECT_TRUE(DatabasesAgree(&why)) << why;
}

// A follower answers each call of a call stream as it answers a unary
// call: UNAVAILABLE, naming the leader, so a mount moves on to it.
TEST_F(RaftGroupTest, AFollowersCallStreamNamesTheLeader) {
  ASSERT_NO_FATAL_FAILURE(StartGroup(3));
  uint64_t leader_id = 0;
  for (int i = 0; i < 200 && leader_id == 0; ++i) {
    leader_id = LeaderId();
    if (leader_id == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_NE(leader_id, 0u);
  const int leader = group_->IndexOf(leader_id);
  const int follower = (leader + 1) % 3;
  auto stub = pb::MetaService::NewStub(common::MakeChannel(group_->Rpc(follower)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->Calls(&ctx);
  pb::MetaCall call;
  call.mutable_get_attr()->set_ino(1);
  std::string hint;
  // The follower learns the leader's address from the members table, which
  // the new leader publishes through the log: a moment after the election.
  for (int i = 0; i < 100 && hint.empty(); ++i) {
    pb::MetaReturn ret;
    ASSERT_TRUE(stream->Write(call) && stream->Read(&ret));
    ASSERT_EQ(ret.code(), grpc::StatusCode::UNAVAILABLE) << ret.message();
    EXPECT_FALSE(ret.has_attr());
    hint = ret.leader_hint();
    if (hint.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(hint, group_->Rpc(leader));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(RaftGroupTest, FiveMembersSurviveTwoDownAndBlockWithThree) {
  ASSERT_NO_FATAL_FAILURE(StartGroup(5));
  uint64_t client = OpenSession();
  pb::EntryReply reply;
  ASSERT_TRUE(Mkdir(*meta_, client, 1, "five", &reply).ok());
  // Two down, the leader among them: service continues.
  const int leader = group_->IndexOf(LeaderId());
  const int other = (leader + 1) % 5;
  const int third = (leader + 2) % 5;
  group_->Kill(leader);
  group_->Kill(other);
  ASSERT_TRUE(Mkdir(*meta_, client, 2, "three-left", &reply).ok());
  ASSERT_EQ(reply.status().code(), 0);

  // Three down: a mutation cannot commit; it waits, and completes once a
  // member returns.
  group_->Kill(third);
  std::atomic<bool> done{false};
  grpc::Status late_status;
  std::thread late([&] {
    common::LeaderChannel::Options options;
    options.attempt_timeout_ms = 500;
    options.total_timeout_ms = 30'000;
    auto channel = common::LeaderChannel::Create(group_->Source(), options);
    pb::EntryReply r;
    late_status = Mkdir(**channel, client, 3, "two-left", &r);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_FALSE(done.load()) << "a mutation committed with only two of five members up";
  ASSERT_NO_FATAL_FAILURE(group_->Start(other));
  late.join();
  EXPECT_TRUE(late_status.ok()) << late_status.error_message();
  ASSERT_NO_FATAL_FAILURE(group_->Start(leader));
  ASSERT_NO_FATAL_FAILURE(group_->Start(third));
  std::string why;
  EXPECT_TRUE(DatabasesAgree(&why)) << why;
}

// dfsctl add-member / remove-member against real processes: a one-member
// group grows to three (the newcomers catch up by snapshot install, the log
// having been compacted long before they arrive) and shrinks to two.
// Status names every member's client address, not only the leader's:
// followers that never led tell the leader (PublishMember). Before, a
// follower showed an empty address until it had led once.
TEST_F(RaftGroupTest, StatusNamesEveryMembersAddress) {
  ASSERT_NO_FATAL_FAILURE(StartGroup(3));
  std::map<uint64_t, std::string> seen;
  auto deadline = Clock::now() + std::chrono::seconds(20);
  do {
    pb::ClusterStatusReply reply;
    grpc::Status s = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      return pb::MetaService::Stub(ch).ClusterStatus(&c, pb::ClusterStatusRequest(), &reply);
    });
    ASSERT_TRUE(s.ok()) << s.error_message();
    seen.clear();
    for (const pb::MetaMember& m : reply.members()) {
      if (!m.address().empty()) seen[m.id()] = m.address();
    }
    if (reply.leader_id() != 0 && seen.size() == 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (Clock::now() < deadline);
  ASSERT_EQ(seen.size(), 3u) << "members listed with an address: " << seen.size();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(seen[i + 1], group_->Rpc(i)) << "member " << i + 1;
  // A made-up member is refused, and nothing is recorded for it.
  pb::PublishMemberRequest bogus;
  bogus.set_id(9);
  bogus.set_raft_address("127.0.0.1:1");
  bogus.set_address("127.0.0.1:2");
  pb::StatusReply reply;
  grpc::Status s = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    return pb::MetaService::Stub(ch).PublishMember(&c, bogus, &reply);
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  pb::PublishMemberRequest garbled;
  garbled.set_id(1);
  garbled.set_raft_address(group_->Raft(0));
  garbled.set_address("no port here");
  s = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    return pb::MetaService::Stub(ch).PublishMember(&c, garbled, &reply);
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
}

// Followers' disks count: with two of three members short of room, a
// leader with room refuses what grows (RESOURCE_EXHAUSTED, the mount's
// ENOSPC), since the next member to fill would take the quorum with it;
// deletes go on; with one short member of three it accepts again. Before,
// only the leader's own disk counted.
TEST_F(RaftGroupTest, ALeaderRefusesGrowthWhileAMajorityOfMembersIsShortOfRoom) {
  const std::vector<std::string> roomy = {};
  const std::vector<std::string> short_of_room = {"--min-free-space", "1000000T"};
  group_ = std::make_unique<MetaGroup>(dir_, 3);
  ASSERT_NO_FATAL_FAILURE(group_->Start(0, false, roomy));
  ASSERT_NO_FATAL_FAILURE(group_->Start(1, false, short_of_room));
  ASSERT_NO_FATAL_FAILURE(group_->Start(2, false, short_of_room));
  Connect();
  // Member 1 (the one with room) must lead: restart whichever else does.
  for (int tries = 0; tries < 20; ++tries) {
    const uint64_t leader = LeaderId();
    if (leader == 1) break;
    if (leader != 0) {
      group_->Kill(group_->IndexOf(leader));
      ASSERT_NO_FATAL_FAILURE(group_->Start(group_->IndexOf(leader), false, short_of_room));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ASSERT_EQ(LeaderId(), 1u) << "member 1 never led";
  const uint64_t client = OpenSession();
  pb::EntryReply entry;
  uint64_t request = 1;
  grpc::Status refused;
  auto deadline = Clock::now() + std::chrono::seconds(15);  // followers report every 2 s
  do {
    const std::string name = "grow-" + std::to_string(request);
    refused = Mkdir(*meta_, client, request++, name, &entry);
  } while (refused.ok() && Clock::now() < deadline && (std::this_thread::sleep_for(std::chrono::milliseconds(200)), true));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("members 2, 3 of 3"), std::string::npos) << refused.error_message();
  // A delete is not refused (nothing to delete: NotFound from the state machine).
  pb::StatusReply removed;
  grpc::Status rm = meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    pb::RmdirRequest req;
    req.mutable_ctx()->set_client_id(client);
    req.mutable_ctx()->set_request_id(request++);
    req.set_parent(1);
    req.set_name("absent");
    return pb::MetaService::Stub(ch).Rmdir(&c, req, &removed);
  });
  EXPECT_TRUE(rm.ok()) << rm.error_message();
  EXPECT_EQ(removed.status().code(), static_cast<int>(common::StatusCode::kNotFound));
  // Status says which members are short.
  pb::ClusterStatusReply status;
  ASSERT_TRUE(meta_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
                       return pb::MetaService::Stub(ch).ClusterStatus(&c, pb::ClusterStatusRequest(), &status);
                     }).ok());
  for (const pb::MetaMember& m : status.members()) {
    EXPECT_TRUE(m.data_known()) << "member " << m.id();
    EXPECT_EQ(m.data_short_of_room(), m.id() != 1) << "member " << m.id();
  }
  // Member 3 gets room: two of three have it, and creates go on.
  group_->Kill(2);
  ASSERT_NO_FATAL_FAILURE(group_->Start(2, false, roomy));
  grpc::Status accepted;
  deadline = Clock::now() + std::chrono::seconds(15);
  do {
    const std::string name = "grow-" + std::to_string(request);
    accepted = Mkdir(*meta_, client, request++, name, &entry);
  } while (!accepted.ok() && Clock::now() < deadline && (std::this_thread::sleep_for(std::chrono::milliseconds(200)), true));
  EXPECT_TRUE(accepted.ok()) << accepted.error_message();
  EXPECT_EQ(entry.status().code(), 0);
}

TEST_F(RaftGroupTest, DfsctlAddsAndRemovesMembers) {
  ASSERT_NO_FATAL_FAILURE(StartGroup(3, /*start=*/1));
  uint64_t client = OpenSession();
  pb::EntryReply reply;
  for (uint64_t i = 1; i <= 200; ++i) ASSERT_TRUE(Mkdir(*meta_, client, i, "early-" + std::to_string(i), &reply).ok());
  const std::string ctl = testing::BinaryPath("DFS_CTL_BIN");
  auto run = [&](const std::string& args) {
    std::string cmd = "timeout 60 " + ctl + " --meta " + group_->Rpc(0) + " " + args + " 2>&1";
    std::string out;
    FILE* pipe = ::popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
    int status = ::pclose(pipe);
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
  };
  for (int i = 1; i < 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(group_->Start(i, /*join=*/true, {"--snapshot-threshold", "16", "--snapshot-trailing", "4"}));
    auto [code, out] = run("add-member " + std::to_string(i + 1) + " " + group_->Raft(i) + " " + group_->Rpc(i));
    ASSERT_EQ(code, 0) << out;
  }
  auto [dup_code, dup_out] = run("add-member 2 " + group_->Raft(1) + " " + group_->Rpc(1));
  EXPECT_NE(dup_code, 0) << "adding a member twice must fail: " << dup_out;
  auto [bad_code, bad_out] = run("add-member 0 x y");
  EXPECT_NE(bad_code, 0) << bad_out;
  auto [st_code, st_out] = run("status --json");
  ASSERT_EQ(st_code, 0) << st_out;
  EXPECT_NE(st_out.find("\"id\": 3"), std::string::npos) << st_out;
  std::string why;
  ASSERT_TRUE(DatabasesAgree(&why)) << why;
  // The newcomers were far behind a compacted log: they got a snapshot.
  for (int i = 1; i < 3; ++i) {
    std::ifstream log(group_->Log(i));
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("restored a snapshot"), std::string::npos) << "member " << i + 1 << " log:\n" << text;
  }
  // Now a three-member group: it survives losing the original member.
  group_->Kill(0);
  Connect();
  ASSERT_TRUE(Mkdir(*meta_, client, 1000, "after-first-died", &reply).ok());
  EXPECT_EQ(reply.status().code(), 0);
  ASSERT_NO_FATAL_FAILURE(group_->Start(0, false, {"--snapshot-threshold", "16", "--snapshot-trailing", "4"}));
  auto [rm_code, rm_out] = run("remove-member 3");
  EXPECT_EQ(rm_code, 0) << rm_out;
  // Status shows the group as last polled (every 10 ms), and a leader that
  // removed itself hands over: wait, bounded, for the new configuration.
  std::string st2_out;
  for (int tries = 0; tries < 50; ++tries) {
    st2_out = run("status --json").second;
    if (st2_out.find("\"leader_id\"") != std::string::npos && st2_out.find("\"id\": 3") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(st2_out.find("\"id\": 3"), std::string::npos) << st2_out;
}

}  // namespace
}  // namespace dfs
