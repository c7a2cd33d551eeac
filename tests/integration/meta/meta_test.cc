// dfs-meta as a real process on 127.0.0.1, driven through gRPC: namespace
// calls, restart with the same data folder (graceful and kill -9), bad
// requests, exactly-once retries, and the chunkserver/chunk-map flow.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <unistd.h>

#include <chrono>
#include <thread>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "common/file_util.h"
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

// The ready file means listening; the lone member elects itself on its loop
// thread, which a loaded machine may run a moment later.
void WaitForLeader(pb::MetaService::Stub& stub) {
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext ctx;
    pb::ClusterStatusRequest req;
    pb::ClusterStatusReply reply;
    if (stub.ClusterStatus(&ctx, req, &reply).ok() && reply.leader_id() != 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

class MetaProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(const std::vector<std::string>& extra_args = {}) {
    std::string ready = dir_ / "ready";
    ::unlink(ready.c_str());
    std::vector<std::string> argv = {testing::BinaryPath("DFS_META_BIN"), "--listen", "127.0.0.1:0", "--data",
                                     dir_ / "data", "--ready-file", ready, "--insecure-dev-key", "--replicas", "2"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    auto process = testing::Process::Start(argv, dir_ / "meta.log");
    ASSERT_TRUE(process.ok()) << process.status().ToString();
    process_ = std::move(process).value();
    auto address = testing::WaitForReadyFile(ready, *process_, 20000);
    ASSERT_TRUE(address.ok()) << address.status().ToString();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(common::kMaxGrpcMessageBytes);
    channel_ = grpc::CreateCustomChannel(*address, grpc::InsecureChannelCredentials(), args);
    stub_ = pb::MetaService::NewStub(channel_);
    WaitForLeader(*stub_);
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

  // Sends `bytes` as the body of a Mkdir call, whatever they hold.
  grpc::Status RawMkdir(const std::string& bytes) {
    grpc::GenericStub generic(channel_);
    grpc::ClientContext ctx;
    grpc::Slice slice(bytes);
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
    return status;
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
  EXPECT_FALSE(RawMkdir("\xff\xff\xff\xff\x0f garbage").ok());
  // Still serving.
  ASSERT_TRUE(Mkdir(Ctx(0, 0), 1, "alive", &reply).ok());
  EXPECT_EQ(reply.status().code(), 0);
  EXPECT_TRUE(process_->Running());
}

// Calls sent as messages of one call stream are answered as the unary calls
// answer them, in order, mutations exactly once; a bad message gets its
// error and the stream goes on.
TEST_F(MetaProcessTest, CallStream_AnswersAsUnaryCallsDo_BadMessagesLeaveItOpen) {
  uint64_t client = OpenSession();
  pb::EntryReply made;
  ASSERT_TRUE(Mkdir(Ctx(client, 1), 1, "d", &made).ok());
  ASSERT_EQ(made.status().code(), 0);
  const pb::EntryReply unary = Lookup(1, "d");

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto stream = stub_->Calls(&ctx);
  auto call = [&](const pb::MetaCall& c) {
    pb::MetaReturn ret;
    EXPECT_TRUE(stream->Write(c) && stream->Read(&ret));
    return ret;
  };
  pb::MetaCall lookup;
  lookup.mutable_lookup()->set_parent(1);
  lookup.mutable_lookup()->set_name("d");
  pb::MetaReturn ret = call(lookup);
  EXPECT_EQ(ret.code(), 0) << ret.message();
  EXPECT_EQ(ret.entry().SerializeAsString(), unary.SerializeAsString());

  pb::MetaCall getattr;
  getattr.mutable_get_attr()->set_ino(unary.attr().ino());
  ret = call(getattr);
  EXPECT_EQ(ret.code(), 0);
  EXPECT_EQ(ret.attr().attr().SerializeAsString(), unary.attr().SerializeAsString());

  lookup.mutable_lookup()->set_name("missing");
  ret = call(lookup);
  EXPECT_EQ(ret.code(), 0);
  EXPECT_EQ(ret.entry().status().code(), C(StatusCode::kNotFound));

  // Malformed: what the unary calls answer INVALID_ARGUMENT.
  lookup.mutable_lookup()->set_name("a/b");
  EXPECT_EQ(call(lookup).code(), grpc::StatusCode::INVALID_ARGUMENT);
  lookup.mutable_lookup()->set_parent(0);
  lookup.mutable_lookup()->set_name("d");
  EXPECT_EQ(call(lookup).code(), grpc::StatusCode::INVALID_ARGUMENT);
  getattr.mutable_get_attr()->set_ino(0);
  EXPECT_EQ(call(getattr).code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A message carrying no request (or one from a newer client).
  ret = call(pb::MetaCall());
  EXPECT_EQ(ret.code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_FALSE(ret.message().empty());

  // Mutations too: a mkdir on the stream, and its retry (the same request
  // id) answered with the first result, applied once.
  pb::MetaCall mkdir;
  *mkdir.mutable_mkdir()->mutable_ctx() = Ctx(client, 2);
  mkdir.mutable_mkdir()->set_parent(1);
  mkdir.mutable_mkdir()->set_name("s");
  mkdir.mutable_mkdir()->set_mode(0755);
  ret = call(mkdir);
  ASSERT_EQ(ret.code(), 0) << ret.message();
  ASSERT_EQ(ret.entry().status().code(), 0);
  const uint64_t made_ino = ret.entry().attr().ino();
  EXPECT_EQ(ret.entry().parent_attr().ino(), 1u);
  ret = call(mkdir);
  ASSERT_EQ(ret.code(), 0);
  EXPECT_EQ(ret.entry().status().code(), 0);
  EXPECT_EQ(ret.entry().attr().ino(), made_ino);
  EXPECT_EQ(Lookup(1, "s").attr().ino(), made_ino);
  pb::MetaCall create;
  *create.mutable_create()->mutable_ctx() = Ctx(client, 3);
  create.mutable_create()->set_parent(made_ino);
  create.mutable_create()->set_name("f");
  create.mutable_create()->set_mode(0644);
  create.mutable_create()->set_flags(O_WRONLY);
  ret = call(create);
  ASSERT_EQ(ret.code(), 0) << ret.message();
  EXPECT_EQ(ret.create().status().code(), 0);
  EXPECT_NE(ret.create().handle_id(), 0u);
  pb::MetaCall rmdir;
  *rmdir.mutable_rmdir()->mutable_ctx() = Ctx(client, 4);
  rmdir.mutable_rmdir()->set_parent(1);
  rmdir.mutable_rmdir()->set_name("s");
  ret = call(rmdir);
  ASSERT_EQ(ret.code(), 0);
  EXPECT_EQ(ret.status().status().code(), C(StatusCode::kNotEmpty));

  // Still answering, in order, on the same stream.
  for (int i = 0; i < 20; ++i) {
    getattr.mutable_get_attr()->set_ino(i % 2 == 0 ? 1 : unary.attr().ino());
    ret = call(getattr);
    ASSERT_EQ(ret.code(), 0);
    EXPECT_EQ(ret.attr().attr().ino(), getattr.get_attr().ino());
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
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
    // An open that asks is told where chunk 0 is, as above (the client asks
    // when it will read); one that does not ask is not.
    for (uint32_t flags : {00u /* O_RDONLY */, 02u /* O_RDWR */, 01u /* O_WRONLY */}) {
      for (bool want : {true, false}) {
        grpc::ClientContext octx;
        pb::OpenRequest open;
        open.set_ino(created.attr().ino());
        open.set_flags(flags);
        open.set_want_first_chunk(want);
        pb::OpenReply opened;
        ASSERT_TRUE(stub_->Open(&octx, open, &opened).ok());
        ASSERT_EQ(opened.status().code(), 0) << opened.status().message();
        const bool told = want;
        ASSERT_EQ(opened.has_first_chunk(), told) << "flags " << flags << " want " << want;
        if (told) {
          EXPECT_EQ(opened.first_chunk().SerializeAsString(), reply.SerializeAsString());
        }
      }
    }
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
  // The leader frees the orphan in its next housekeeping pass (no session
  // reports lazy read opens here, so none may still read it).
  bool deleted = false;
  for (int beat = 0; beat < 100 && !deleted; ++beat) {
    grpc::ClientContext ctx;
    pb::HeartbeatRequest req;
    req.set_node_id(101);
    pb::HeartbeatReply reply;
    ASSERT_TRUE(stub_->Heartbeat(&ctx, req, &reply).ok());
    EXPECT_FALSE(reply.reregister());
    if (reply.commands_size() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    ASSERT_EQ(reply.commands_size(), 1);
    EXPECT_EQ(reply.commands(0).delete_chunk().chunk_id(), lease.chunk_id());
    deleted = true;
  }
  ASSERT_TRUE(deleted) << "the chunk of the unlinked file was never deleted";
  {
    grpc::ClientContext ctx;
    pb::HeartbeatRequest req;
    req.set_node_id(101);
    pb::HeartbeatReply reply;
    ASSERT_TRUE(stub_->Heartbeat(&ctx, req, &reply).ok());
    EXPECT_EQ(reply.commands_size(), 0);
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

// A lazy read open (OpenRequest.lazy_read) writes nothing to the log: the
// reader's KeepAlives list it instead, and the file it holds stays after its
// last name goes, until a report (taken after a reply newer than the unlink)
// no longer lists it, or the reader's session ends.
TEST_F(MetaProcessTest, LazyReadOpen_HoldsAnUnlinkedFileUntilTheReaderLetsGo) {
  uint64_t writer = OpenSession();
  uint64_t reader = 0;
  {
    grpc::ClientContext ctx;
    pb::OpenSessionRequest req;
    req.set_hostname("reader");
    req.set_reports_read_pins(true);
    pb::OpenSessionReply reply;
    ASSERT_TRUE(stub_->OpenSession(&ctx, req, &reply).ok());
    EXPECT_NE(reply.features() & pb::FEATURE_LAZY_READ_OPEN, 0u);
    reader = reply.client_id();
  }
  uint64_t epoch = 0;
  auto keep_alive = [&](std::vector<uint64_t> pins) {
    grpc::ClientContext ctx;
    pb::KeepAliveRequest req;
    req.set_client_id(reader);
    req.set_reports_read_pins(true);
    req.set_pin_epoch(epoch);
    for (uint64_t ino : pins) req.add_read_pins(ino);
    pb::KeepAliveReply reply;
    ASSERT_TRUE(stub_->KeepAlive(&ctx, req, &reply).ok());
    ASSERT_EQ(reply.status().code(), 0);
    epoch = reply.pin_epoch();
  };
  uint64_t request = 0;
  auto create = [&](const std::string& name) {
    grpc::ClientContext ctx;
    pb::CreateRequest req;
    *req.mutable_ctx() = Ctx(writer, ++request);
    req.set_parent(1);
    req.set_name(name);
    req.set_mode(0644);
    req.set_flags(01 /* O_WRONLY */);
    pb::CreateReply created;
    EXPECT_TRUE(stub_->Create(&ctx, req, &created).ok());
    EXPECT_EQ(created.status().code(), 0);
    grpc::ClientContext rctx;
    pb::ReleaseRequest release;
    *release.mutable_ctx() = Ctx(writer, ++request);
    release.set_ino(created.attr().ino());
    release.set_handle_id(created.handle_id());
    pb::StatusReply released;
    EXPECT_TRUE(stub_->Release(&rctx, release, &released).ok());
    return created.attr().ino();
  };
  auto unlink = [&](const std::string& name) {
    grpc::ClientContext ctx;
    pb::UnlinkRequest req;
    *req.mutable_ctx() = Ctx(writer, ++request);
    req.set_parent(1);
    req.set_name(name);
    pb::StatusReply reply;
    ASSERT_TRUE(stub_->Unlink(&ctx, req, &reply).ok());
    ASSERT_EQ(reply.status().code(), 0);
  };
  auto open_lazily = [&](uint64_t ino) {
    grpc::ClientContext ctx;
    pb::OpenRequest req;
    *req.mutable_ctx() = Ctx(reader, 0);
    req.set_ino(ino);
    req.set_flags(00 /* O_RDONLY */);
    req.set_lazy_read(true);
    pb::OpenReply reply;
    EXPECT_TRUE(stub_->Open(&ctx, req, &reply).ok());
    EXPECT_EQ(reply.status().code(), 0) << reply.status().message();
    return reply.handle_id();
  };
  auto exists = [&](uint64_t ino) {
    grpc::ClientContext ctx;
    pb::GetAttrRequest req;
    req.set_ino(ino);
    pb::AttrReply reply;
    EXPECT_TRUE(stub_->GetAttr(&ctx, req, &reply).ok());
    return reply.status().code() == 0;
  };
  // Polls (reporting `pins` meanwhile) until `ino` exists no more; false
  // after `seconds`.
  auto freed_within = [&](uint64_t ino, std::vector<uint64_t> pins, int seconds) {
    for (int i = 0; i < seconds * 10; ++i) {
      keep_alive(pins);
      if (!exists(ino)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };

  keep_alive({});
  const uint64_t ino = create("held");
  EXPECT_EQ(open_lazily(ino), 0u) << "a lazy read open took a handle";
  keep_alive({ino});
  unlink("held");
  EXPECT_FALSE(freed_within(ino, {ino}, 3)) << "freed while the reader reports it";
  // With no name left, only a handle keeps it: a lazy open gets one.
  const uint64_t handle = open_lazily(ino);
  EXPECT_NE(handle, 0u);
  {
    grpc::ClientContext ctx;
    pb::ReleaseRequest req;
    *req.mutable_ctx() = Ctx(reader, 1);
    req.set_ino(ino);
    req.set_handle_id(handle);
    pb::StatusReply reply;
    ASSERT_TRUE(stub_->Release(&ctx, req, &reply).ok());
  }
  EXPECT_TRUE(freed_within(ino, {}, 10)) << "not freed once the reader let go";

  // The reader's session ends while it still reports the file.
  const uint64_t second = create("held2");
  EXPECT_EQ(open_lazily(second), 0u);
  keep_alive({second});
  unlink("held2");
  EXPECT_FALSE(freed_within(second, {second}, 2));
  {
    grpc::ClientContext ctx;
    pb::CloseSessionRequest req;
    *req.mutable_ctx() = Ctx(reader, 2);
    pb::StatusReply reply;
    ASSERT_TRUE(stub_->CloseSession(&ctx, req, &reply).ok());
  }
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = !exists(second);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << "not freed after the reader's session closed";

  // What a request carries (RequestContext.releases) is applied only with a
  // logged op: a lazy open that carries a release gets a real handle.
  reader = OpenSession();
  const uint64_t third = create("held3");
  uint64_t rw_handle = 0;
  {
    grpc::ClientContext ctx;
    pb::OpenRequest req;
    *req.mutable_ctx() = Ctx(reader, 1);
    req.set_ino(third);
    req.set_flags(02 /* O_RDWR */);
    pb::OpenReply reply;
    ASSERT_TRUE(stub_->Open(&ctx, req, &reply).ok());
    rw_handle = reply.handle_id();
    ASSERT_NE(rw_handle, 0u);
  }
  {
    grpc::ClientContext ctx;
    pb::OpenRequest req;
    *req.mutable_ctx() = Ctx(reader, 2);
    pb::ReleaseRequest* carried = req.mutable_ctx()->add_releases();
    carried->set_ino(third);
    carried->set_handle_id(rw_handle);
    req.set_ino(third);
    req.set_flags(00);
    req.set_lazy_read(true);
    pb::OpenReply reply;
    ASSERT_TRUE(stub_->Open(&ctx, req, &reply).ok());
    EXPECT_EQ(reply.status().code(), 0);
    EXPECT_NE(reply.handle_id(), 0u) << "the carried release was dropped";
  }
}

// Hostile input (issue [security]): names and paths no local filesystem
// takes, oversized values, deep nesting, chunk ids and versions that do not
// exist, truncated messages, and another client's handles and ids. Each gets
// a clear answer, changes nothing it should not, and the daemon keeps serving.
TEST_F(MetaProcessTest, HostileInput_ClearAnswersAndNothingChanges) {
  uint64_t client = OpenSession();
  uint64_t request = 0;
  auto mkdir_status = [&](uint64_t parent, const std::string& name) {
    pb::EntryReply reply;
    grpc::Status s = Mkdir(Ctx(client, ++request), parent, name, &reply);
    return s.ok() ? reply.status().code() : -static_cast<int>(s.error_code());
  };
  const int kInvalid = -static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(mkdir_status(1, "a/b"), kInvalid);
  EXPECT_EQ(mkdir_status(1, std::string("a\0b", 3)), kInvalid);
  EXPECT_EQ(mkdir_status(1, "/"), kInvalid);
  // (The kernel answers mkdir(".") itself with EEXIST; meta never names
  // an entry "." or "..".)
  EXPECT_EQ(mkdir_status(1, "."), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(mkdir_status(1, ".."), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(mkdir_status(1, std::string(256, 'x')), C(StatusCode::kNameTooLong));
  EXPECT_EQ(mkdir_status(1, std::string(255, 'x')), 0);
  // Names are bytes, as on Linux: not UTF-8 is fine.
  EXPECT_EQ(mkdir_status(1, "caf\xe9-latin1"), 0);
  EXPECT_EQ(Lookup(1, "caf\xe9-latin1").status().code(), 0);

  // Symlink targets: up to 4095 bytes (PATH_MAX with its NUL), then ENAMETOOLONG.
  auto symlink_status = [&](const std::string& name, const std::string& target) {
    grpc::ClientContext ctx;
    pb::SymlinkRequest req;
    *req.mutable_ctx() = Ctx(client, ++request);
    req.set_parent(1);
    req.set_name(name);
    req.set_target(target);
    pb::EntryReply reply;
    grpc::Status s = stub_->Symlink(&ctx, req, &reply);
    return s.ok() ? reply.status().code() : -static_cast<int>(s.error_code());
  };
  EXPECT_EQ(symlink_status("long-target", std::string(4095, 'p')), 0);
  EXPECT_EQ(symlink_status("too-long-target", std::string(4096, 'p')), C(StatusCode::kNameTooLong));
  EXPECT_EQ(Lookup(1, "too-long-target").status().code(), C(StatusCode::kNotFound));

  // Deep nesting: 400 levels, each found again from its parent.
  uint64_t parent = 1;
  for (int depth = 0; depth < 400; ++depth) {
    pb::EntryReply reply;
    ASSERT_TRUE(Mkdir(Ctx(client, ++request), parent, "d", &reply).ok());
    ASSERT_EQ(reply.status().code(), 0) << "depth " << depth;
    parent = reply.attr().ino();
  }
  EXPECT_EQ(Lookup(parent, "missing").status().code(), C(StatusCode::kNotFound));

  // xattrs: a value over 64 KiB is E2BIG; one over the gRPC message limit
  // is refused by gRPC itself.
  auto setxattr = [&](const std::string& value) {
    grpc::ClientContext ctx;
    pb::SetXattrRequest req;
    *req.mutable_ctx() = Ctx(client, ++request);
    req.set_ino(1);
    req.set_name("user.big");
    req.set_value(value);
    pb::StatusReply reply;
    grpc::Status s = stub_->SetXattr(&ctx, req, &reply);
    return s.ok() ? reply.status().code() : -static_cast<int>(s.error_code());
  };
  EXPECT_EQ(setxattr(std::string(65536, 'v')), 0);
  EXPECT_EQ(setxattr(std::string(65537, 'v')), C(StatusCode::kValueTooLarge));
  EXPECT_EQ(setxattr(std::string(common::kMaxGrpcMessageBytes + 1, 'v')),
            -static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));

  // Chunk ids, versions and inodes that do not exist.
  pb::CreateReply created;
  {
    grpc::ClientContext ctx;
    pb::CreateRequest req;
    *req.mutable_ctx() = Ctx(client, ++request);
    req.set_parent(1);
    req.set_name("victim");
    req.set_mode(0644);
    req.set_flags(01);
    ASSERT_TRUE(stub_->Create(&ctx, req, &created).ok());
    ASSERT_EQ(created.status().code(), 0);
  }
  const uint64_t ino = created.attr().ino();
  {
    grpc::ClientContext ctx;
    pb::CommitWriteRequest req;
    *req.mutable_ctx() = Ctx(client, ++request);
    req.set_ino(ino);
    req.set_handle_id(created.handle_id());
    req.set_new_size(1 << 20);
    auto* c = req.add_chunks();
    c->set_chunk_index(0);
    c->set_chunk_id(0xdeadbeefcafe);
    c->set_version(77);
    c->set_length(1 << 20);
    pb::AttrReply reply;
    grpc::Status s = stub_->CommitWrite(&ctx, req, &reply);
    EXPECT_TRUE(!s.ok() || reply.status().code() != 0) << "a commit of a chunk nobody leased was accepted";
  }
  {
    grpc::ClientContext ctx;
    pb::GetAttrRequest req;
    req.set_ino(ino);
    pb::AttrReply attr;
    ASSERT_TRUE(stub_->GetAttr(&ctx, req, &attr).ok());
    EXPECT_EQ(attr.attr().size(), 0u);
  }
  {
    grpc::ClientContext ctx;
    pb::GetChunkLocationsRequest req;
    req.set_ino(987654321);
    req.set_length(4096);
    pb::GetChunkLocationsReply reply;
    grpc::Status s = stub_->GetChunkLocations(&ctx, req, &reply);
    EXPECT_TRUE(!s.ok() || reply.status().code() == C(StatusCode::kNotFound));
  }
  {
    grpc::ClientContext ctx;
    pb::ReportBadReplicaRequest req;
    *req.mutable_ctx() = Ctx(client, ++request);
    req.set_chunk_id(0xdeadbeefcafe);
    req.set_version(3);
    req.set_node_id(42);
    pb::StatusReply reply;
    grpc::Status s = stub_->ReportBadReplica(&ctx, req, &reply);
    EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  }

  // Another client's handle: a second session cannot lease with it, nor
  // release it; the owner still can (once a chunkserver exists to place on).
  {
    grpc::ClientContext ctx;
    pb::RegisterRequest req;
    req.set_node_id(101);
    req.set_address("127.0.0.1:20101");
    req.add_disks()->set_capacity_bytes(uint64_t{1} << 40);
    pb::RegisterReply reply;
    ASSERT_TRUE(stub_->Register(&ctx, req, &reply).ok());
  }
  uint64_t other = OpenSession();
  EXPECT_NE(other, client);
  EXPECT_GE(other, uint64_t{1} << 32) << "session ids are drawn at random, not counted";
  // Leases chunk 0 of the file with its creator's handle, as session `session`.
  auto lease_with_handle = [&](uint64_t session, uint64_t request_id, pb::LeaseChunkReply* reply) {
    grpc::ClientContext ctx;
    pb::LeaseChunkRequest req;
    *req.mutable_ctx() = Ctx(session, request_id);
    req.set_ino(ino);
    req.set_handle_id(created.handle_id());
    return stub_->LeaseChunk(&ctx, req, reply);
  };
  {
    pb::LeaseChunkReply reply;
    grpc::Status s = lease_with_handle(other, 1, &reply);
    EXPECT_TRUE(!s.ok() || reply.status().code() != 0) << "leased with another client's handle";
  }
  {
    grpc::ClientContext ctx;
    pb::ReleaseRequest req;
    *req.mutable_ctx() = Ctx(other, 2);
    req.set_ino(ino);
    req.set_handle_id(created.handle_id());
    pb::StatusReply reply;
    ASSERT_TRUE(stub_->Release(&ctx, req, &reply).ok());
  }
  {
    grpc::ClientContext ctx;
    pb::KeepAliveRequest req;
    req.set_client_id(12345);  // nobody's
    pb::KeepAliveReply reply;
    ASSERT_TRUE(stub_->KeepAlive(&ctx, req, &reply).ok());
    EXPECT_EQ(reply.status().code(), C(StatusCode::kNotFound));
  }
  {
    pb::LeaseChunkReply reply;
    ASSERT_TRUE(lease_with_handle(client, ++request, &reply).ok());
    EXPECT_EQ(reply.status().code(), 0) << "the owner's handle stopped working: " << reply.status().message();
  }

  // A truncated MkdirRequest (a valid one cut in the middle of its name).
  {
    pb::MkdirRequest req;
    *req.mutable_ctx() = Ctx(client, ++request);
    req.set_parent(1);
    req.set_name("truncated-name");
    req.set_mode(0755);
    std::string bytes = req.SerializeAsString();
    bytes.resize(bytes.size() - 5);
    EXPECT_FALSE(RawMkdir(bytes).ok());
    EXPECT_EQ(Lookup(1, "truncated-name").status().code(), C(StatusCode::kNotFound));
  }
  EXPECT_TRUE(process_->Running());
  EXPECT_EQ(mkdir_status(1, "still-serving"), 0);
}

// --client-rate: a client host over its rate is answered "retry after", and
// A data folder short of room (--min-free-space above what any disk has):
// creates are refused with RESOURCE_EXHAUSTED (ENOSPC at a mount; no
// retry-after, so not a rate limit) before they reach the Raft log, while reads, sessions and deletes go on and the
// process stays up. Before, the first commit that found the disk full
// stopped dfs-meta ("database or disk is full").
TEST_F(MetaProcessTest, DataFolderShortOfRoom_RefusesCreatesButDeletesGoOn) {
  const uint64_t before = OpenSession();
  pb::EntryReply made;
  ASSERT_TRUE(Mkdir(Ctx(before, 1), 1, "kept", &made).ok());
  ASSERT_EQ(made.status().code(), 0) << made.status().message();
  Stop(SIGTERM);
  Start({"--min-free-space", "1000000T"});

  // A retry of a request applied before (its reply lost) answers as first.
  pb::EntryReply retried;
  grpc::Status retry = Mkdir(Ctx(before, 1), 1, "kept", &retried);
  ASSERT_TRUE(retry.ok()) << retry.error_message();
  EXPECT_EQ(retried.status().code(), 0) << retried.status().message();
  EXPECT_EQ(retried.attr().ino(), made.attr().ino());

  const uint64_t client = OpenSession();
  pb::EntryReply refused_reply;
  grpc::Status refused = Mkdir(Ctx(client, 1), 1, "refused", &refused_reply);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("metadata disk is nearly full"), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(Lookup(1, "refused").status().code(), C(StatusCode::kNotFound));
  {
    grpc::ClientContext ctx;
    pb::ClusterStatusReply status;
    ASSERT_TRUE(stub_->ClusterStatus(&ctx, pb::ClusterStatusRequest(), &status).ok());
    EXPECT_TRUE(status.data_short_of_room());
    EXPECT_GT(status.data_free_bytes(), 0u);
  }
  EXPECT_EQ(Lookup(1, "kept").status().code(), 0);
  {
    grpc::ClientContext ctx;
    pb::RmdirRequest req;
    *req.mutable_ctx() = Ctx(client, 2);
    req.set_parent(1);
    req.set_name("kept");
    pb::StatusReply reply;
    ASSERT_TRUE(stub_->Rmdir(&ctx, req, &reply).ok());
    EXPECT_EQ(reply.status().code(), 0) << reply.status().message();
  }
  EXPECT_EQ(Lookup(1, "kept").status().code(), C(StatusCode::kNotFound));
  auto log = common::ReadFileToString(dir_ / "meta.log");
  EXPECT_TRUE(log.ok() && log->find("refusing creates and writes with ENOSPC") != std::string::npos);
  Stop(SIGTERM);
}

// LeaderChannel waits and retries, so every call still succeeds, slower.
TEST(MetaRateLimitTest, OverTheRateCallsWaitButSucceed) {
  testing::TempDir dir("dfs-meta-rate");
  std::string ready = dir / "ready";
  auto process = testing::Process::Start({testing::BinaryPath("DFS_META_BIN"), "--listen", "127.0.0.1:0", "--data",
                                          dir / "data", "--ready-file", ready, "--insecure-dev-key",
                                          "--client-rate", "100", "--client-burst", "20"},
                                         dir / "meta.log");
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  auto address = testing::WaitForReadyFile(ready, **process, 20000);
  ASSERT_TRUE(address.ok()) << address.status().ToString();

  // Raw calls: some are refused with the retry-after trailer.
  auto stub = pb::MetaService::NewStub(common::MakeChannel(*address));
  WaitForLeader(*stub);
  ::usleep(300'000);  // let the bucket refill after the polls
  int refused = 0;
  std::string retry_after;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    pb::GetAttrRequest req;
    req.set_ino(1);
    pb::AttrReply reply;
    grpc::Status s = stub->GetAttr(&ctx, req, &reply);
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      auto it = ctx.GetServerTrailingMetadata().find(common::kRetryAfterHeader);
      if (it != ctx.GetServerTrailingMetadata().end()) retry_after.assign(it->second.data(), it->second.size());
      EXPECT_NE(s.error_message().find("request rate"), std::string::npos) << s.error_message();
    } else {
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_FALSE(retry_after.empty());

  // Messages of a call stream count against the same rate: over it, a
  // message is answered RESOURCE_EXHAUSTED with the wait, and the stream
  // stays open.
  {
    ::usleep(300'000);
    grpc::ClientContext ctx;
    auto stream = stub->Calls(&ctx);
    pb::MetaCall call;
    call.mutable_get_attr()->set_ino(1);
    int stream_refused = 0, stream_answered = 0;
    for (int i = 0; i < 100; ++i) {
      pb::MetaReturn ret;
      ASSERT_TRUE(stream->Write(call) && stream->Read(&ret));
      if (ret.code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++stream_refused;
        EXPECT_GT(ret.retry_after_ms(), 0);
      } else {
        EXPECT_EQ(ret.code(), 0) << ret.message();
        ++stream_answered;
      }
    }
    EXPECT_GT(stream_refused, 0);
    EXPECT_GT(stream_answered, 0);
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
  }

  // Through LeaderChannel: 150 calls all succeed, and take at least the time
  // the rate allows (130 beyond the burst at 100/s).
  common::LeaderChannel::Options options;
  auto channel = common::LeaderChannel::Create(*address, options);
  ASSERT_TRUE(channel.ok());
  ::usleep(300'000);  // let the bucket refill
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 150; ++i) {
    pb::AttrReply reply;
    grpc::Status s = (*channel)->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& ctx) {
      pb::GetAttrRequest req;
      req.set_ino(1);
      return pb::MetaService::NewStub(ch)->GetAttr(&ctx, req, &reply);
    });
    ASSERT_TRUE(s.ok()) << i << ": " << s.error_message();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(seconds, 1.0) << "150 calls at 100/s with a burst of 20 took " << seconds << " s";
  (*process)->Signal(SIGTERM);
  ASSERT_TRUE((*process)->Wait(20000).ok());
}

TEST(MetaFlagsTest, BadFlags_ExitCode2) {
  testing::TempDir dir("dfs-meta-flags");
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"--listen", "127.0.0.1:0"},
           {"--listen", "nonsense", "--data", dir / "d", "--insecure-dev-key"},
           {"--listen", "127.0.0.1:0", "--data", dir / "d"},
           {"--listen", "127.0.0.1:0", "--data", dir / "d", "--insecure-dev-key", "--bogus"},
           {"--listen", "127.0.0.1:0", "--data", dir / "d", "--insecure-dev-key", "--session-lease", "100ms"},
           {"--listen", "127.0.0.1:0", "--data", dir / "d", "--insecure-dev-key", "--session-lease", "soon"},
           {"--listen", "127.0.0.1:0", "--data", dir / "d", "--insecure-dev-key", "--min-free-space", "lots"}}) {
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
