// dfs-meta as a real process on 127.0.0.1, driven through gRPC: namespace
// calls, restart with the same data folder (graceful and kill -9), bad
// requests, exactly-once retries, and the chunkserver/chunk-map flow.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <memory>
#include <string>

#include "common/leader_channel.h"
#include "common/status.h"
#include "common/write_token.h"
#include "proto/chunk.pb.h"
#include "proto/meta.grpc.pb.h"
#include "tests/harness/process.h"

namespace dfs {
namespace {

using common::StatusCode;
constexpr int C(StatusCode code) { return static_cast<int>(code); }
constexpr const char* kDevKey = common::kInsecureDevClusterKey;

class MetaProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    std::string ready = dir_ / "ready";
    ::unlink(ready.c_str());
    auto process = testing::Process::Start({testing::BinaryPath("DFS_META_BIN"), "--listen", "127.0.0.1:0", "--data",
                                            dir_ / "data", "--ready-file", ready, "--insecure-dev-key",
                                            "--replicas", "2"},
                                           dir_ / "meta.log");
    ASSERT_TRUE(process.ok()) << process.status().ToString();
    process_ = std::move(process).value();
    auto address = testing::WaitForReadyFile(ready, *process_, 20000);
    ASSERT_TRUE(address.ok()) << address.status().ToString();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(common::kMaxGrpcMessageBytes);
    channel_ = grpc::CreateCustomChannel(*address, grpc::InsecureChannelCredentials(), args);
    stub_ = pb::MetaService::NewStub(channel_);
  }
  void Stop(int signal) {
    process_->Signal(signal);
    auto status = process_->Wait(20000);
    ASSERT_TRUE(status.ok());
    if (signal == SIGTERM) {
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status;
    }
  }

  uint64_t OpenSession() {
    grpc::ClientContext ctx;
    pb::OpenSessionRequest req;
    req.set_hostname("test");
    pb::OpenSessionReply reply;
    grpc::Status status = stub_->OpenSession(&ctx, req, &reply);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(reply.root_ino(), 1u);
    return reply.client_id();
  }
  pb::RequestContext Ctx(uint64_t client, uint64_t request) {
    pb::RequestContext ctx;
    ctx.set_client_id(client);
    ctx.set_request_id(request);
    return ctx;
  }
  grpc::Status Mkdir(const pb::RequestContext& rctx, uint64_t parent, const std::string& name, pb::EntryReply* reply) {
    grpc::ClientContext ctx;
    pb::MkdirRequest req;
    *req.mutable_ctx() = rctx;
    req.set_parent(parent);
    req.set_name(name);
    req.set_mode(0755);
    return stub_->Mkdir(&ctx, req, reply);
  }
  pb::EntryReply Lookup(uint64_t parent, const std::string& name) {
    grpc::ClientContext ctx;
    pb::LookupRequest req;
    req.set_parent(parent);
    req.set_name(name);
    pb::EntryReply reply;
    EXPECT_TRUE(stub_->Lookup(&ctx, req, &reply).ok());
    return reply;
  }

  testing::TempDir dir_{"dfs-meta-it"};
  std::unique_ptr<testing::Process> process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::MetaService::Stub> stub_;
};

TEST_F(MetaProcessTest, Restart_NothingAcknowledgedIsLost) {
  uint64_t client = OpenSession();
  for (int i = 0; i < 50; ++i) {
    pb::EntryReply reply;
    ASSERT_TRUE(Mkdir(Ctx(client, i + 1), 1, "d" + std::to_string(i), &reply).ok());
    ASSERT_EQ(reply.status().code(), 0);
  }
  Stop(SIGTERM);
  Start();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(Lookup(1, "d" + std::to_string(i)).status().code(), 0) << i;
  // kill -9 right after acknowledged mutations: still there.
  for (int i = 50; i < 100; ++i) {
    pb::EntryReply reply;
    ASSERT_TRUE(Mkdir(Ctx(client, i + 1), 1, "d" + std::to_string(i), &reply).ok());
    ASSERT_EQ(reply.status().code(), 0);
  }
  Stop(SIGKILL);
  Start();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(Lookup(1, "d" + std::to_string(i)).status().code(), 0) << i;
  // The exactly-once table survived too: a retry of request 1 answers the first result.
  pb::EntryReply retry;
  ASSERT_TRUE(Mkdir(Ctx(client, 1), 1, "d0", &retry).ok());
  EXPECT_EQ(retry.status().code(), 0);
  EXPECT_EQ(retry.attr().ino(), Lookup(1, "d0").attr().ino());
}

TEST_F(MetaProcessTest, BadRequests_ClearErrorsNoCrash) {
  pb::EntryReply reply;
  EXPECT_EQ(Mkdir(Ctx(0, 0), 1, "", &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Mkdir(Ctx(0, 0), 1, "a/b", &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Mkdir(Ctx(0, 0), 0, "a", &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Mkdir(Ctx(0, 0), 1, std::string(256, 'n'), &reply).ok());
  EXPECT_EQ(reply.status().code(), C(StatusCode::kNameTooLong));
  ASSERT_TRUE(Mkdir(Ctx(0, 0), 424242, "a", &reply).ok());
  EXPECT_EQ(reply.status().code(), C(StatusCode::kNotFound));
  {
    grpc::ClientContext ctx;
    pb::GetAttrRequest req;
    req.set_ino(987654321);
    pb::AttrReply attr;
    ASSERT_TRUE(stub_->GetAttr(&ctx, req, &attr).ok());
    EXPECT_EQ(attr.status().code(), C(StatusCode::kNotFound));
  }
  {
    grpc::ClientContext ctx;
    pb::HeartbeatRequest req;
    pb::HeartbeatReply hb;
    EXPECT_EQ(stub_->Heartbeat(&ctx, req, &hb).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // Bytes that are not a MkdirRequest at all.
  {
    grpc::GenericStub generic(channel_);
    grpc::ClientContext ctx;
    std::string garbage = "\xff\xff\xff\xff\x0f garbage";
    grpc::Slice slice(garbage);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    generic.UnaryCall(&ctx, "/dfs.pb.MetaService/Mkdir", grpc::StubOptions(), &request, &response,
                      [&](grpc::Status s) {
                        std::lock_guard<std::mutex> lock(mu);
                        status = s;
                        done = true;
                        cv.notify_one();
                      });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    EXPECT_FALSE(status.ok());
  }
  // Still serving.
  ASSERT_TRUE(Mkdir(Ctx(0, 0), 1, "alive", &reply).ok());
  EXPECT_EQ(reply.status().code(), 0);
  EXPECT_TRUE(process_->Running());
}

TEST_F(MetaProcessTest, ReadDir_PagesThroughAllEntries) {
  uint64_t client = OpenSession();
  for (int i = 0; i < 300; ++i) {
    pb::EntryReply reply;
    ASSERT_TRUE(Mkdir(Ctx(client, i + 1), 1, "e" + std::to_string(i), &reply).ok());
  }
  uint64_t cookie = 0;
  int seen = 0;
  for (;;) {
    grpc::ClientContext ctx;
    pb::ReadDirRequest req;
    req.set_ino(1);
    req.set_cookie(cookie);
    req.set_max_entries(64);
    pb::ReadDirReply reply;
    ASSERT_TRUE(stub_->ReadDirPlus(&ctx, req, &reply).ok());
    for (const auto& e : reply.entries()) {
      ++seen;
      cookie = e.cookie();
      EXPECT_TRUE(S_ISDIR(e.attr().mode()));
    }
    if (reply.eof()) break;
  }
  EXPECT_EQ(seen, 300);
}

TEST_F(MetaProcessTest, ChunkFlow_LeaseTokenCommitAndGarbage) {
  // Two chunkservers.
  for (uint64_t node : {101, 102}) {
    grpc::ClientContext ctx;
    pb::RegisterRequest req;
    req.set_node_id(node);
    req.set_address("127.0.0.1:" + std::to_string(20000 + node));
    auto* disk = req.add_disks();
    disk->set_capacity_bytes(uint64_t{1} << 40);
    disk->set_used_bytes(uint64_t{1} << 30);
    pb::RegisterReply reply;
    ASSERT_TRUE(stub_->Register(&ctx, req, &reply).ok());
    EXPECT_EQ(reply.heartbeat_interval_ms(), 1000u);
  }
  {
    grpc::ClientContext ctx;
    pb::HeartbeatRequest req;
    req.set_node_id(999);
    pb::HeartbeatReply reply;
    ASSERT_TRUE(stub_->Heartbeat(&ctx, req, &reply).ok());
    EXPECT_TRUE(reply.reregister());
  }
  uint64_t client = OpenSession();
  pb::CreateReply created;
  {
    grpc::ClientContext ctx;
    pb::CreateRequest req;
    *req.mutable_ctx() = Ctx(client, 1);
    req.set_parent(1);
    req.set_name("file");
    req.set_mode(0644);
    req.set_flags(01 /* O_WRONLY */);
    ASSERT_TRUE(stub_->Create(&ctx, req, &created).ok());
    ASSERT_EQ(created.status().code(), 0);
    EXPECT_EQ(created.attr().replicas(), 2u);
  }
  pb::LeaseChunkReply leased;
  {
    grpc::ClientContext ctx;
    pb::LeaseChunkRequest req;
    *req.mutable_ctx() = Ctx(client, 2);
    req.set_ino(created.attr().ino());
    req.set_handle_id(created.handle_id());
    req.set_chunk_index(0);
    ASSERT_TRUE(stub_->LeaseChunk(&ctx, req, &leased).ok());
    ASSERT_EQ(leased.status().code(), 0) << leased.status().message();
  }
  const pb::ChunkLease& lease = leased.lease();
  EXPECT_EQ(lease.replicas_size(), 2);
  EXPECT_EQ(lease.write_quorum(), 2u);
  pb::WriteToken token;
  ASSERT_TRUE(token.ParseFromString(lease.write_token()));
  EXPECT_TRUE(common::VerifyWriteToken(kDevKey, token, lease.chunk_id(), lease.version(),
                                       lease.lease_expires_unix_ms() - 1000)
                  .ok());
  {
    grpc::ClientContext ctx;
    pb::CommitWriteRequest req;
    *req.mutable_ctx() = Ctx(client, 3);
    req.set_ino(created.attr().ino());
    req.set_handle_id(created.handle_id());
    req.set_new_size(4096);
    auto* c = req.add_chunks();
    c->set_chunk_index(0);
    c->set_chunk_id(lease.chunk_id());
    c->set_version(lease.version());
    c->set_length(4096);
    for (const auto& r : lease.replicas()) c->add_replica_node_ids(r.node_id());
    pb::AttrReply reply;
    ASSERT_TRUE(stub_->CommitWrite(&ctx, req, &reply).ok());
    ASSERT_EQ(reply.status().code(), 0);
    EXPECT_EQ(reply.attr().size(), 4096u);
  }
  {
    grpc::ClientContext ctx;
    pb::GetChunkLocationsRequest req;
    req.set_ino(created.attr().ino());
    req.set_length(4096);
    pb::GetChunkLocationsReply reply;
    ASSERT_TRUE(stub_->GetChunkLocations(&ctx, req, &reply).ok());
    ASSERT_EQ(reply.chunks_size(), 1);
    EXPECT_EQ(reply.chunks(0).replicas_size(), 2);
  }
  {
    grpc::ClientContext ctx;
    pb::StatfsRequest req;
    pb::StatfsReply reply;
    ASSERT_TRUE(stub_->Statfs(&ctx, req, &reply).ok());
    EXPECT_EQ(reply.total_bytes(), (uint64_t{2} << 40) / 2);
    EXPECT_EQ(reply.max_name_length(), 255u);
  }
  // Unlink, release: the chunk goes to both nodes as a Delete command,
  // and is forgotten once the next heartbeat confirms it.
  {
    grpc::ClientContext ctx;
    pb::UnlinkRequest req;
    *req.mutable_ctx() = Ctx(client, 4);
    req.set_parent(1);
    req.set_name("file");
    pb::StatusReply reply;
    ASSERT_TRUE(stub_->Unlink(&ctx, req, &reply).ok());
    ASSERT_EQ(reply.status().code(), 0);
  }
  {
    grpc::ClientContext ctx;
    pb::ReleaseRequest req;
    *req.mutable_ctx() = Ctx(client, 5);
    req.set_ino(created.attr().ino());
    req.set_handle_id(created.handle_id());
    pb::StatusReply reply;
    ASSERT_TRUE(stub_->Release(&ctx, req, &reply).ok());
  }
  for (int beat = 0; beat < 2; ++beat) {
    grpc::ClientContext ctx;
    pb::HeartbeatRequest req;
    req.set_node_id(101);
    pb::HeartbeatReply reply;
    ASSERT_TRUE(stub_->Heartbeat(&ctx, req, &reply).ok());
    EXPECT_FALSE(reply.reregister());
    if (beat == 0) {
      ASSERT_EQ(reply.commands_size(), 1);
      EXPECT_EQ(reply.commands(0).delete_chunk().chunk_id(), lease.chunk_id());
    } else {
      EXPECT_EQ(reply.commands_size(), 0);
    }
  }
  {
    grpc::ClientContext ctx;
    pb::ListNodesRequest req;
    pb::ListNodesReply reply;
    ASSERT_TRUE(stub_->ListNodes(&ctx, req, &reply).ok());
    ASSERT_EQ(reply.nodes_size(), 2);
    EXPECT_EQ(reply.nodes(0).state(), "up");
  }
}

TEST(MetaFlagsTest, BadFlags_ExitCode2) {
  testing::TempDir dir("dfs-meta-flags");
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"--listen", "127.0.0.1:0"},
           {"--listen", "nonsense", "--data", dir / "d", "--insecure-dev-key"},
           {"--listen", "127.0.0.1:0", "--data", dir / "d"},
           {"--listen", "127.0.0.1:0", "--data", dir / "d", "--insecure-dev-key", "--bogus"}}) {
    args.insert(args.begin(), testing::BinaryPath("DFS_META_BIN"));
    auto process = testing::Process::Start(args, dir / "log");
    ASSERT_TRUE(process.ok());
    auto status = (*process)->Wait(10000);
    ASSERT_TRUE(status.ok());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << args[1] << " " << args[2];
  }
}

}  // namespace
}  // namespace dfs
