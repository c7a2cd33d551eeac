// MetaClient against a small fake MetaService served in-process: registration
// with the inventory, heartbeats at the interval, commands executed, retries
// while meta is down.
#include "chunkserver/service/meta_client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "chunkserver/service/fake_meta.h"
#include "chunkserver/service/test_server.h"
#include "chunkserver/store/test_util.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::chunkserver {
namespace {

using testing::Bytes;
using testing::FakeMetaServer;
using testing::Header;
using testing::InProcessChunkserver;
using testing::RandomBytes;

// Polls `done` every 10 ms for at most timeout_ms.
template <typename F>
bool WaitFor(F done, int timeout_ms = 10'000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

MetaClient::Options ClientOptions(const std::string& meta_address, int64_t interval_ms = 100) {
  MetaClient::Options options;
  options.meta_addresses = meta_address;
  options.node_id = 0x1234;
  options.advertise_address = "127.0.0.1:1";
  options.heartbeat_interval_ms = interval_ms;
  options.rpc_timeout_ms = 1000;
  options.inventory_page_size = 2;
  return options;
}

TEST(MetaClient, Start_RegistersWithInventoryThenHeartbeatsEveryInterval) {
  FakeMetaServer meta;
  InProcessChunkserver cs;
  for (uint64_t id = 1; id <= 3; ++id) ASSERT_TRUE(WriteChunk(*cs.stub, Header(id, 2, 0, 0), Bytes("abc")).ok());
  MetaClient client(*cs.store, ClientOptions(meta.address));
  ASSERT_TRUE(client.Start().ok());
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(meta.meta.mu);
    return meta.meta.heartbeat_times.size() >= 6;
  }));
  client.Stop();
  std::lock_guard<std::mutex> lock(meta.meta.mu);
  EXPECT_EQ(meta.meta.registers, 1);
  EXPECT_EQ(meta.meta.last_register.node_id(), 0x1234u);
  EXPECT_EQ(meta.meta.last_register.address(), "127.0.0.1:1");
  EXPECT_EQ(meta.meta.last_register.disks_size(), 1);
  EXPECT_EQ(meta.meta.pages, 2);  // page size 2, 3 chunks
  EXPECT_TRUE(meta.meta.saw_last);
  ASSERT_EQ(meta.meta.inventory.size(), 3u);
  EXPECT_EQ(meta.meta.inventory[2].chunk_id(), 3u);
  EXPECT_EQ(meta.meta.inventory[2].version(), 2u);
  EXPECT_EQ(meta.meta.inventory[2].length(), 3u);
  EXPECT_EQ(meta.meta.last_heartbeat.chunk_count(), 3u);
  EXPECT_GT(meta.meta.last_heartbeat.capacity_bytes(), 0u);
  auto& times = meta.meta.heartbeat_times;
  double mean_ms = std::chrono::duration<double, std::milli>(times.back() - times.front()).count() /
                   static_cast<double>(times.size() - 1);
  EXPECT_GT(mean_ms, 80);
  EXPECT_LT(mean_ms, 400);
}

TEST(MetaClient, Heartbeat_ExecutesDeleteAndReplicateCommands) {
  FakeMetaServer meta;
  InProcessChunkserver cs;
  InProcessChunkserver peer;
  ASSERT_TRUE(WriteChunk(*cs.stub, Header(1, 1, 0, 0), Bytes("doomed")).ok());
  ASSERT_TRUE(WriteChunk(*cs.stub, Header(3, 1, 0, 0), Bytes("doomed too")).ok());
  const std::string data = RandomBytes(2'000'000, 9);
  ASSERT_TRUE(WriteChunk(*peer.stub, Header(2, 4, 0, 0), Bytes(data)).ok());
  {
    std::lock_guard<std::mutex> lock(meta.meta.mu);
    pb::Command del;
    del.set_command_id(1);
    del.mutable_delete_chunk()->set_chunk_id(1);
    pb::Command rep;
    rep.set_command_id(2);
    rep.mutable_replicate()->set_chunk_id(2);
    rep.mutable_replicate()->set_version(4);
    rep.mutable_replicate()->set_source_address(peer.address);
    // A repeated copy runs once; a delete whose id comes back (meta numbers
    // deletes by garbage row, and rows are reused) still runs.
    pb::Command del_again = del;
    del_again.mutable_delete_chunk()->set_chunk_id(3);
    meta.meta.pending_commands = {del, rep, rep, del_again};
  }
  MetaClient client(*cs.store, ClientOptions(meta.address));
  ASSERT_TRUE(client.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return client.commands_done() >= 3; }));
  EXPECT_EQ(cs.store->Find(1, 1).status().code(), common::StatusCode::kNotFound);
  EXPECT_EQ(cs.store->Find(3, 1).status().code(), common::StatusCode::kNotFound);
  auto copy = ReadChunk(*cs.stub, 2, 4, 0, common::kChunkSizeBytes);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_EQ(*copy, data);
  client.Stop();
  EXPECT_EQ(client.commands_done(), 3u);
}

TEST(MetaClient, Heartbeat_ReportsEachCopyDoneOrFailed) {
  FakeMetaServer meta;
  InProcessChunkserver cs;
  InProcessChunkserver peer;
  ASSERT_TRUE(WriteChunk(*peer.stub, Header(2, 4, 0, 0), Bytes("copy me")).ok());
  {
    std::lock_guard<std::mutex> lock(meta.meta.mu);
    pb::Command ok;
    ok.set_command_id(1);
    ok.mutable_replicate()->set_chunk_id(2);
    ok.mutable_replicate()->set_version(4);
    ok.mutable_replicate()->set_source_address(peer.address);
    // The source's version moved on (a write since meta planned the copy).
    pb::Command stale = ok;
    stale.set_command_id(2);
    stale.mutable_replicate()->set_version(3);
    meta.meta.pending_commands = {ok, stale};
  }
  MetaClient client(*cs.store, ClientOptions(meta.address));
  ASSERT_TRUE(client.Start().ok());
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(meta.meta.mu);
    return meta.meta.replicated.size() + meta.meta.copy_failed.size() >= 2;
  }));
  client.Stop();
  std::lock_guard<std::mutex> lock(meta.meta.mu);
  ASSERT_EQ(meta.meta.replicated.size(), 1u);
  EXPECT_EQ(meta.meta.replicated[0].chunk_id(), 2u);
  EXPECT_EQ(meta.meta.replicated[0].version(), 4u);
  EXPECT_EQ(meta.meta.replicated[0].length(), 7u);
  ASSERT_EQ(meta.meta.copy_failed.size(), 1u);  // once, not in every heartbeat
  EXPECT_EQ(meta.meta.copy_failed[0].chunk_id(), 2u);
  EXPECT_EQ(meta.meta.copy_failed[0].version(), 3u);
}

TEST(MetaClient, Heartbeat_ReportsDamagedChunksAndReregistersWhenAsked) {
  FakeMetaServer meta;
  InProcessChunkserver cs;
  ASSERT_TRUE(WriteChunk(*cs.stub, Header(5, 1, 0, 0), Bytes("x")).ok());
  MetaClient client(*cs.store, ClientOptions(meta.address));
  ASSERT_TRUE(client.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return client.heartbeats_sent() >= 1; }));
  cs.store->MarkDamaged(5, 1, "test");
  {
    std::lock_guard<std::mutex> lock(meta.meta.mu);
    meta.meta.ask_reregister = true;
  }
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(meta.meta.mu);
    return meta.meta.registers >= 2 && !meta.meta.damaged.empty();
  }));
  client.Stop();
  std::lock_guard<std::mutex> lock(meta.meta.mu);
  EXPECT_EQ(meta.meta.damaged[0].chunk_id(), 5u);
  EXPECT_TRUE(meta.meta.damaged[0].damaged());
  ASSERT_EQ(meta.meta.inventory.size(), 1u);
  EXPECT_TRUE(meta.meta.inventory[0].damaged());
}

TEST(MetaClient, Start_KeepsRetryingWhileMetaIsDownAndRegistersWhenItComes) {
  InProcessChunkserver cs;
  // A meta that does not implement the chunkserver RPCs yet.
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  pb::MetaService::Service unimplemented;
  builder.RegisterService(&unimplemented);
  auto server = builder.BuildAndStart();
  MetaClient client(*cs.store, ClientOptions("127.0.0.1:" + std::to_string(port)));
  ASSERT_TRUE(client.Start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(client.registered());
  // Reads and writes are unaffected.
  EXPECT_TRUE(WriteChunk(*cs.stub, Header(6, 1, 0, 0), Bytes("still serving")).ok());
  auto start = std::chrono::steady_clock::now();
  client.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  server->Shutdown();
  server->Wait();
  // An address with no server at all, then a real fake meta: registration follows.
  FakeMetaServer meta;
  MetaClient client2(*cs.store, ClientOptions("127.0.0.1:1," + meta.address));
  ASSERT_TRUE(client2.Start().ok());
  EXPECT_TRUE(WaitFor([&] { return client2.registered(); }));
  client2.Stop();
}

}  // namespace
}  // namespace dfs::chunkserver
