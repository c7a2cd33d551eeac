// dfs-chunkserver as a real process on 127.0.0.1: random writes read back,
// on-disk corruption, a full disk, kill -9 in the middle of a write stream,
// node identity across restarts, and the daemon's flag conventions.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <csignal>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "chunkserver/service/chunk_client.h"
#include "chunkserver/service/fake_meta.h"
#include "proto/meta.grpc.pb.h"
#include "chunkserver/service/test_server.h"
#include "chunkserver/store/chunk_store.h"
#include "chunkserver/store/test_util.h"
#include "common/chunk_geometry.h"
#include "common/file_util.h"
#include "common/leader_channel.h"
#include "tests/harness/process.h"
#include "tests/harness/tmpfs.h"

namespace dfs::chunkserver {
namespace {

using common::kBlockSizeBytes;
using common::kChunkSizeBytes;
using common::StatusCode;
using dfs::testing::Process;
using dfs::testing::TempDir;
using dfs::testing::TmpfsMount;
using testing::Bytes;
using testing::Header;
using testing::RandomBytes;

constexpr int kReadyTimeoutMs = 20'000;

std::string ChunkPath(const std::string& data_dir, uint64_t chunk_id, uint64_t version) {
  return fmt::format("{}/chunks/{:02x}/{:016x}.{}.chunk", data_dir, chunk_id & 0xff, chunk_id, version);
}

// One dfs-chunkserver process on a data folder, with a stub to it.
class Daemon {
 public:
  Daemon(const TempDir& dir, std::string data_dir, std::string name = "cs", std::string meta = "127.0.0.1:1")
      : dir_(dir), data_dir_(std::move(data_dir)), name_(std::move(name)), meta_(std::move(meta)) {}

  ::testing::AssertionResult Start() {
    const std::string key_file = dir_ / "cluster.key";
    if (!std::filesystem::exists(key_file)) {
      if (!common::WriteFileAtomic(key_file, testing::kTestKey).ok()) {
        return ::testing::AssertionFailure() << "cannot write the key file";
      }
    }
    const std::string ready = dir_ / (name_ + ".ready");
    std::filesystem::remove(ready);
    auto process = Process::Start({dfs::testing::BinaryPath("DFS_CHUNKSERVER_BIN"), "--listen", "127.0.0.1:0",
                                   "--data", data_dir_, "--meta", meta_, "--cluster-key-file", key_file,
                                   "--ready-file", ready, "--heartbeat-interval", "200ms"},
                                  dir_ / (name_ + ".log"));
    if (!process.ok()) return ::testing::AssertionFailure() << process.status().ToString();
    process_ = std::move(*process);
    auto address = dfs::testing::WaitForReadyFile(ready, *process_, kReadyTimeoutMs);
    if (!address.ok()) return ::testing::AssertionFailure() << address.status().ToString();
    address_ = *address;
    stub_ = pb::ChunkService::NewStub(common::MakeChannel(address_));
    return ::testing::AssertionSuccess();
  }

  Process& process() { return *process_; }
  pb::ChunkService::Stub& stub() { return *stub_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& address() const { return address_; }

 private:
  const TempDir& dir_;
  std::string data_dir_;
  std::string name_;
  std::string meta_;
  std::unique_ptr<Process> process_;
  std::string address_;
  std::unique_ptr<pb::ChunkService::Stub> stub_;
};

std::string MakeDataDir(const TempDir& dir, const std::string& name) {
  std::string path = dir / name;
  std::filesystem::create_directories(path);
  return path;
}

// Our channels used to ping idle connections every 10 s. A gRPC server left
// at its defaults counts those pings as abuse and answers GOAWAY
// "too_many_pings" after a few, and with that allowed the client's keepalive
// watchdog still closed the connection: the next chunk write of a client
// idle for ~30 s failed with UNAVAILABLE, which cp -a reported as EIO.
// The connection must stay up through 45 idle seconds of pings (it dropped
// at 30 s before the fix).
TEST(ChunkserverProcess, IdleClientKeepsItsConnection) {
  TempDir dir("cs-idle");
  Daemon cs(dir, MakeDataDir(dir, "data"));
  ASSERT_TRUE(cs.Start());
  std::shared_ptr<grpc::Channel> channel = common::MakeChannel(cs.address());
  auto stub = pb::ChunkService::NewStub(channel);
  auto stat = [&] {
    grpc::ClientContext context;
    pb::StatRequest request;
    request.set_chunk_id(0xc0ffee);
    pb::StatReply reply;
    return stub->Stat(&context, request, &reply);
  };
  ASSERT_NE(stat().error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // Bounded: 45 one-second steps; a GOAWAY drops the channel out of READY.
  for (int second = 0; second < 45; ++second) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY) << "connection dropped after " << second + 1 << " s idle";
  }
  EXPECT_NE(stat().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(ChunkserverProcess, Write_64MiBAtRandomOffsetsAndSizesReadsBackExactly) {
  TempDir dir("cs-random");
  Daemon cs(dir, MakeDataDir(dir, "data"));
  ASSERT_TRUE(cs.Start());
  std::mt19937_64 gen(42);
  std::string model;
  uint64_t total = 0;
  // Bounded: stops at 64 MiB written or 400 writes.
  for (int i = 0; i < 400 && total < kChunkSizeBytes; ++i) {
    uint64_t size = 1 + gen() % (3 << 20);
    uint64_t offset = gen() % (kChunkSizeBytes - size + 1);
    if (i == 0) offset = 0;
    std::string data = RandomBytes(size, gen());
    auto written = WriteChunk(cs.stub(), Header(0x77, 1, 0, offset), Bytes(data), 60'000);
    ASSERT_TRUE(written.ok()) << "write " << i << ": " << written.status().ToString();
    if (model.size() < offset + size) model.resize(offset + size, '\0');
    model.replace(offset, size, data);
    ASSERT_EQ(written->chunk_length, model.size());
    total += size;
  }
  ASSERT_GE(total, kChunkSizeBytes);
  auto read = ReadChunk(cs.stub(), 0x77, 1, 0, kChunkSizeBytes, 120'000);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->size(), model.size());
  EXPECT_TRUE(*read == model) << "content differs";
  // And a few random sub-ranges.
  for (int i = 0; i < 20; ++i) {
    uint64_t offset = gen() % model.size();
    uint64_t length = gen() % (5 << 20);
    auto part = ReadChunk(cs.stub(), 0x77, 1, offset, length);
    ASSERT_TRUE(part.ok()) << part.status().ToString();
    EXPECT_TRUE(*part == model.substr(offset, length)) << "range at " << offset;
  }
}

TEST(ChunkserverProcess, Read_CorruptBlockOnDiskIsDataLossNamingChunkAndBlock) {
  TempDir dir("cs-corrupt");
  Daemon cs(dir, MakeDataDir(dir, "data"));
  ASSERT_TRUE(cs.Start());
  const std::string data = RandomBytes(4 << 20, 7);
  ASSERT_TRUE(WriteChunk(cs.stub(), Header(0xc0ffee, 3, 0, 0), Bytes(data)).ok());
  const std::string path = ChunkPath(cs.data_dir(), 0xc0ffee, 3);
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  const uint64_t victim = 37 * kBlockSizeBytes + 1234;
  char c = 0;
  ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(kChunkDataOffset + victim)), 1);
  c = static_cast<char>(c ^ 0x01);
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(kChunkDataOffset + victim)), 1);
  ::close(fd);
  auto read = ReadChunk(cs.stub(), 0xc0ffee, 3, 0, data.size());
  ASSERT_EQ(read.status().code(), StatusCode::kDataLoss) << read.status().ToString();
  EXPECT_NE(read.status().message().find("chunk 0000000000c0ffee version 3: block 37"), std::string_view::npos)
      << read.status().ToString();
  // Blocks before it are fine; the chunk is now listed as damaged.
  auto head = ReadChunk(cs.stub(), 0xc0ffee, 3, 0, 37 * kBlockSizeBytes);
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_TRUE(*head == data.substr(0, 37 * kBlockSizeBytes));
  grpc::ClientContext context;
  pb::StatRequest stat;
  stat.set_chunk_id(0xc0ffee);
  pb::StatReply reply;
  ASSERT_TRUE(cs.stub().Stat(&context, stat, &reply).ok());
  ASSERT_EQ(reply.versions_size(), 1);
  EXPECT_TRUE(reply.versions(0).damaged());
}

TEST(ChunkserverProcess, Write_FullDiskIsResourceExhaustedAndReadsStillWork) {
  TempDir dir("cs-full");
  TmpfsMount tmpfs(dir / "small", "24m");
  if (!tmpfs.mounted()) GTEST_SKIP() << "cannot mount tmpfs here: " << std::strerror(tmpfs.error());
  Daemon cs(dir, dir / "small");
  ASSERT_TRUE(cs.Start());
  const std::string first = RandomBytes(4 << 20, 1);
  ASSERT_TRUE(WriteChunk(cs.stub(), Header(1, 1, 0, 0), Bytes(first)).ok());
  // A write 40 MiB into a chunk fits on this 24 MiB disk: the gap is a hole.
  const std::string far = RandomBytes(64 << 10, 2);
  auto sparse = WriteChunk(cs.stub(), Header(60, 1, 0, 40 << 20), Bytes(far));
  ASSERT_TRUE(sparse.ok()) << sparse.status().ToString();
  // Fill the disk, chunk by chunk (bounded: 24 MiB holds fewer than 10).
  common::Status full;
  uint64_t failed_chunk = 0;
  for (uint64_t id = 2; id < 12; ++id) {
    auto written = WriteChunk(cs.stub(), Header(id, 1, 0, 0), Bytes(RandomBytes(8 << 20, id)));
    if (!written.ok()) {
      full = written.status();
      failed_chunk = id;
      break;
    }
  }
  ASSERT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_NE(full.message().find("disk full"), std::string_view::npos) << full.ToString();
  // Nothing half-written is visible.
  grpc::ClientContext context;
  pb::StatRequest stat;
  stat.set_chunk_id(failed_chunk);
  pb::StatReply reply;
  EXPECT_EQ(cs.stub().Stat(&context, stat, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
  // An in-place extension of an existing chunk fails the same way and leaves it intact.
  auto grow = WriteChunk(cs.stub(), Header(1, 1, 0, first.size()), Bytes(RandomBytes(20 << 20, 99)));
  EXPECT_EQ(grow.status().code(), StatusCode::kResourceExhausted) << grow.status().ToString();
  // So does a write into the hole; the sparse chunk still reads (in place,
  // the messages before the failing one stay written, as chunk_store.h says).
  auto into_hole = WriteChunk(cs.stub(), Header(60, 1, 0, 1 << 20), Bytes(RandomBytes(20 << 20, 98)));
  EXPECT_EQ(into_hole.status().code(), StatusCode::kResourceExhausted) << into_hole.status().ToString();
  auto sparse_read = ReadChunk(cs.stub(), 60, 1, 0, kChunkSizeBytes);
  ASSERT_TRUE(sparse_read.ok()) << sparse_read.status().ToString();
  ASSERT_EQ(sparse_read->size(), (40u << 20) + far.size());
  EXPECT_TRUE(sparse_read->substr(0, 1 << 20) == std::string(1 << 20, '\0'));
  EXPECT_TRUE(sparse_read->substr(40 << 20) == far);
  // The server is up and serves reads.
  EXPECT_TRUE(cs.process().Running());
  auto read = ReadChunk(cs.stub(), 1, 1, 0, kChunkSizeBytes);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_TRUE(*read == first);
  // Deleting frees space and writes work again.
  grpc::ClientContext c2;
  pb::DeleteRequest del;
  del.set_chunk_id(2);
  pb::DeleteReply freed;
  ASSERT_TRUE(cs.stub().Delete(&c2, del, &freed).ok());
  EXPECT_TRUE(WriteChunk(cs.stub(), Header(50, 1, 0, 0), Bytes(RandomBytes(1 << 20, 50))).ok());
}

// Streams `data` slowly (256 KiB messages, 5 ms apart) so a kill lands
// mid-stream. The outcome does not matter: the server is killed.
void SlowWrite(pb::ChunkService::Stub* stub, pb::WriteHeader header, std::string data) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  pb::WriteReply reply;
  auto writer = stub->Write(&context, &reply);
  pb::WriteRequest request;
  *request.mutable_header() = header;
  bool open = writer->Write(request);
  constexpr size_t kMessage = 256 << 10;
  for (size_t pos = 0; open && pos < data.size(); pos += kMessage) {
    std::string piece = data.substr(pos, kMessage);
    auto crcs = testing::PieceCrcsOf(header.offset() + pos, piece);
    request.mutable_data()->set_data(piece);
    request.mutable_data()->mutable_piece_crcs()->Assign(crcs.begin(), crcs.end());
    open = writer->Write(request);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  writer->WritesDone();
  (void)writer->Finish();
}

// After a restart, every block of the chunk must read as the old bytes, the
// new bytes, or fail with DATA_LOSS (damaged): never anything else.
void CheckOldNewOrDamaged(pb::ChunkService::Stub& stub, uint64_t chunk_id, const std::string& old_data,
                          uint64_t old_version, const std::string& new_data, uint64_t new_version,
                          int* saw_old, int* saw_new, int* saw_damaged) {
  grpc::ClientContext context;
  pb::StatRequest stat;
  stat.set_chunk_id(chunk_id);
  pb::StatReply reply;
  ASSERT_TRUE(stub.Stat(&context, stat, &reply).ok());
  ASSERT_EQ(reply.versions_size(), 1) << "exactly one version survives";
  const uint64_t version = reply.versions(0).version();
  ASSERT_TRUE(version == old_version || version == new_version) << version;
  const uint64_t length = reply.versions(0).length();
  for (uint64_t block = 0; block * kBlockSizeBytes < length; ++block) {
    auto read = ReadChunk(stub, chunk_id, version, block * kBlockSizeBytes, kBlockSizeBytes);
    if (!read.ok()) {
      ASSERT_EQ(read.status().code(), StatusCode::kDataLoss) << read.status().ToString();
      ++*saw_damaged;
      continue;
    }
    const uint64_t off = block * kBlockSizeBytes;
    bool is_old = off < old_data.size() && *read == old_data.substr(off, kBlockSizeBytes);
    bool is_new = off < new_data.size() && *read == new_data.substr(off, kBlockSizeBytes);
    ASSERT_TRUE(is_old || is_new) << "block " << block << " of version " << version << " is neither old nor new";
    if (is_new && !is_old) {
      ++*saw_new;
    } else {
      ++*saw_old;
    }
  }
}

TEST(ChunkserverProcess, KillDuringWriteStream_ChunkIsOldNewOrDamaged) {
  TempDir dir("cs-kill");
  const std::string data_dir = MakeDataDir(dir, "data");
  const std::string old_data = RandomBytes(16 << 20, 1);
  const std::string new_data = RandomBytes(16 << 20, 2);
  int saw_old = 0, saw_new = 0, saw_damaged = 0;
  // Rounds alternate: a new version built from the old one (atomic switch),
  // and an in-place rewrite of the stored version (damaged blocks allowed).
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(round);
    const uint64_t chunk_id = 100 + static_cast<uint64_t>(round);
    const bool new_version = round % 2 == 0;
    Daemon cs(dir, data_dir, fmt::format("cs{}", round));
    ASSERT_TRUE(cs.Start());
    ASSERT_TRUE(WriteChunk(cs.stub(), Header(chunk_id, 1, 0, 0), Bytes(old_data)).ok());
    pb::WriteHeader header = new_version ? Header(chunk_id, 2, 1, 0) : Header(chunk_id, 1, 0, 0);
    std::thread writer(SlowWrite, &cs.stub(), header, new_data);
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + 70 * round));
    cs.process().Kill();  // SIGKILL
    writer.join();
    Daemon again(dir, data_dir, fmt::format("cs{}b", round));
    ASSERT_TRUE(again.Start());
    int old_blocks = 0, new_blocks = 0, damaged_blocks = 0;
    CheckOldNewOrDamaged(again.stub(), chunk_id, old_data, 1, new_data, new_version ? 2 : 1, &old_blocks,
                         &new_blocks, &damaged_blocks);
    std::printf("round %d (%s): %d old, %d new, %d damaged blocks\n", round, new_version ? "new version" : "in place",
                old_blocks, new_blocks, damaged_blocks);
    if (new_version) {
      EXPECT_TRUE(old_blocks == 0 || new_blocks == 0) << "a new version is all or nothing";
    }
    saw_old += old_blocks;
    saw_new += new_blocks;
    saw_damaged += damaged_blocks;
  }
  std::printf("blocks after kill -9: %d old, %d new, %d damaged\n", saw_old, saw_new, saw_damaged);
}

// A version built from a large base by a small write is a delta, patched
// into the base file in place (chunk_store.h, ATOMICITY). kill -9 during a
// run of such commits must leave one version, whole: the last one
// acknowledged or the one in flight. Never a mix of the two (its blocks
// would all pass their CRC checks) and never a damaged copy.
TEST(ChunkserverProcess, KillDuringDeltaCommits_LeavesOneWholeVersion) {
  TempDir dir("cs-delta-kill");
  const std::string data_dir = MakeDataDir(dir, "data");
  std::mt19937_64 gen(7);
  int recovered = 0;
  constexpr int kRounds = 12;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    const uint64_t chunk_id = 200 + static_cast<uint64_t>(round);
    // Version v is version 1 with patches[2..v] written over it in turn.
    const std::string first = RandomBytes(8 << 20, 10 + round);
    std::vector<std::pair<uint64_t, std::string>> patches(2);
    for (uint64_t v = 2, length = first.size(); v <= 1000; ++v) {
      const uint64_t off = gen() % (length + 1);
      patches.emplace_back(off, RandomBytes(1 + gen() % 100'000, gen()));
      length = std::max<uint64_t>(length, off + patches.back().second.size());
    }
    auto contents = [&](uint64_t version) {
      std::string out = first;
      for (uint64_t v = 2; v <= version; ++v) {
        const auto& [off, piece] = patches[v];
        if (off + piece.size() > out.size()) out.resize(off + piece.size());
        out.replace(off, piece.size(), piece);
      }
      return out;
    };
    Daemon cs(dir, data_dir, fmt::format("delta{}", round));
    ASSERT_TRUE(cs.Start());
    ASSERT_TRUE(WriteChunk(cs.stub(), Header(chunk_id, 1, 0, 0), Bytes(first)).ok());
    std::atomic<uint64_t> acked{1};
    std::thread writer([&] {
      for (uint64_t v = 2; v < patches.size(); ++v) {
        const auto& [off, piece] = patches[v];
        if (!WriteChunk(cs.stub(), Header(chunk_id, v, v - 1, off), Bytes(piece)).ok()) return;
        acked = v;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 50 * round));
    cs.process().Kill();  // SIGKILL
    writer.join();
    ASSERT_GT(acked.load(), 1u) << "no delta commit finished before the kill";
    Daemon again(dir, data_dir, fmt::format("delta{}b", round));
    ASSERT_TRUE(again.Start());
    grpc::ClientContext context;
    pb::StatRequest stat;
    stat.set_chunk_id(chunk_id);
    pb::StatReply reply;
    ASSERT_TRUE(again.stub().Stat(&context, stat, &reply).ok());
    ASSERT_EQ(reply.versions_size(), 1) << "exactly one version survives";
    const uint64_t version = reply.versions(0).version();
    EXPECT_FALSE(reply.versions(0).damaged());
    ASSERT_TRUE(version == acked || version == acked + 1) << version << " after " << acked << " acknowledged";
    auto read = ReadChunk(again.stub(), chunk_id, version, 0, kChunkSizeBytes);
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    ASSERT_TRUE(*read == contents(version)) << "version " << version << " is not what its writes made";
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(data_dir, ec)) {
      EXPECT_NE(e.path().extension(), ".delta") << e.path();
    }
    again.process().Kill();
    auto log = common::ReadFileToString(dir / fmt::format("delta{}b.log", round));
    recovered += log.ok() && log->find("recovery: applied") != std::string::npos;
    std::printf("round %d: %llu acknowledged, version %llu survived\n", round,
                static_cast<unsigned long long>(acked.load()), static_cast<unsigned long long>(version));
  }
  std::printf("a delta was re-applied at start-up in %d of %d rounds\n", recovered, kRounds);
}

// Polls `done` every 20 ms for at most timeout_ms.
template <typename F>
bool WaitFor(F done, int timeout_ms = 15'000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

TEST(ChunkserverProcess, Meta_RegistersHeartbeatsAndExecutesCommands) {
  TempDir dir("cs-meta");
  testing::FakeMetaServer meta;
  Daemon cs(dir, MakeDataDir(dir, "a"), "a", meta.address);
  Daemon peer(dir, MakeDataDir(dir, "b"), "b", meta.address);
  ASSERT_TRUE(cs.Start());
  ASSERT_TRUE(peer.Start());
  ASSERT_TRUE(WriteChunk(cs.stub(), Header(1, 1, 0, 0), Bytes("to be deleted")).ok());
  const std::string data = RandomBytes(5 << 20, 3);
  ASSERT_TRUE(WriteChunk(peer.stub(), Header(2, 7, 0, 0), Bytes(data)).ok());
  // Both register and heartbeat at about --heartbeat-interval (200ms).
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(meta.meta.mu);
    return meta.meta.registers >= 2 && meta.meta.heartbeat_times.size() >= 10;
  }));
  {
    std::lock_guard<std::mutex> lock(meta.meta.mu);
    auto& times = meta.meta.heartbeat_times;
    double mean_ms = std::chrono::duration<double, std::milli>(times.back() - times.front()).count() /
                     static_cast<double>(times.size() - 1);
    EXPECT_GT(mean_ms, 50);   // two nodes at 200 ms each: ~100 ms apart on average
    EXPECT_LT(mean_ms, 400);
    pb::Command del;
    del.set_command_id(11);
    del.mutable_delete_chunk()->set_chunk_id(1);
    pb::Command rep;
    rep.set_command_id(12);
    rep.mutable_replicate()->set_chunk_id(2);
    rep.mutable_replicate()->set_version(7);
    rep.mutable_replicate()->set_source_address(peer.address());
    ASSERT_EQ(meta.meta.node_by_address.count(cs.address()), 1u);
    meta.meta.command_target = meta.meta.node_by_address[cs.address()];
    meta.meta.pending_commands = {del, rep};
  }
  ASSERT_TRUE(WaitFor([&] {
    auto read = ReadChunk(cs.stub(), 2, 7, 0, kChunkSizeBytes);
    auto gone = ReadChunk(cs.stub(), 1, 1, 0, 10);
    return read.ok() && *read == data && gone.status().code() == StatusCode::kNotFound;
  }));
  // The node id in the registration is the one stamped in the data folder.
  auto stamp = common::ReadFileToString(cs.data_dir() + "/dfs-folder");
  ASSERT_TRUE(stamp.ok());
  std::lock_guard<std::mutex> lock(meta.meta.mu);
  EXPECT_NE(stamp->find(fmt::format("node_id={:016x}", meta.meta.command_target)), std::string::npos);
}

TEST(ChunkserverProcess, RealMeta_RegistersAndHeartbeatsWithDfsMeta) {
  if (std::getenv("DFS_META_BIN") == nullptr) GTEST_SKIP() << "dfs-meta is not built";
  TempDir dir("cs-realmeta");
  const std::string meta_data = MakeDataDir(dir, "meta");
  auto meta = Process::Start({dfs::testing::BinaryPath("DFS_META_BIN"), "--listen", "127.0.0.1:0", "--data", meta_data,
                              "--insecure-dev-key", "--ready-file", dir / "meta.ready"},
                             dir / "meta.log");
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  auto meta_address = dfs::testing::WaitForReadyFile(dir / "meta.ready", **meta, kReadyTimeoutMs);
  ASSERT_TRUE(meta_address.ok()) << meta_address.status().ToString();
  Daemon cs(dir, MakeDataDir(dir, "cs"), "cs", *meta_address);
  ASSERT_TRUE(cs.Start());
  ASSERT_TRUE(WriteChunk(cs.stub(), Header(0x5151, 1, 0, 0), Bytes("registered")).ok());
  auto stub = pb::MetaService::NewStub(common::MakeChannel(*meta_address));
  pb::NodeStatus seen;
  bool found = WaitFor([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    pb::ListNodesReply reply;
    if (!stub->ListNodes(&context, pb::ListNodesRequest(), &reply).ok()) return false;
    for (const auto& node : reply.nodes()) {
      if (node.address() == cs.address() && node.state() == "up" && node.chunk_count() == 1) {
        seen = node;
        return true;
      }
    }
    return false;
  });
  ASSERT_TRUE(found) << "dfs-meta never listed the chunkserver as up with its chunk; see " << (dir / "meta.log");
  EXPECT_GT(seen.capacity_bytes(), 0u);
  EXPECT_GT(seen.last_heartbeat_unix_ms(), 0);
}

TEST(ChunkserverProcess, Restart_KeepsNodeIdAndChunks) {
  TempDir dir("cs-restart");
  const std::string data_dir = MakeDataDir(dir, "data");
  {
    Daemon cs(dir, data_dir, "first");
    ASSERT_TRUE(cs.Start());
    ASSERT_TRUE(WriteChunk(cs.stub(), Header(5, 1, 0, 0), Bytes("persisted")).ok());
    cs.process().Signal(SIGTERM);
    auto status = cs.process().Wait(15'000);
    ASSERT_TRUE(status.ok());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  }
  auto stamp = common::ReadFileToString(data_dir + "/dfs-folder");
  ASSERT_TRUE(stamp.ok());
  Daemon cs(dir, data_dir, "second");
  ASSERT_TRUE(cs.Start());
  EXPECT_EQ(*common::ReadFileToString(data_dir + "/dfs-folder"), *stamp);
  EXPECT_EQ(*ReadChunk(cs.stub(), 5, 1, 0, 100), "persisted");
  // A folder of another node is refused.
  const std::string other = MakeDataDir(dir, "other");
  ASSERT_TRUE(common::WriteFileAtomic(other + "/dfs-folder",
                                      "dfs-chunkserver-folder\nformat=1\nnode_id=00000000000000aa\n")
                  .ok());
  auto refused = Process::Start({dfs::testing::BinaryPath("DFS_CHUNKSERVER_BIN"), "--listen", "127.0.0.1:0", "--data",
                                 data_dir, "--data", other, "--meta", "127.0.0.1:1", "--insecure-dev-key"},
                                dir / "refused.log");
  ASSERT_TRUE(refused.ok());
  auto status = (*refused)->Wait(15'000);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1);
}

TEST(ChunkserverProcess, Flags_BadFlagsExitTwoAndKeyIsRequired) {
  TempDir dir("cs-flags");
  const std::string data_dir = MakeDataDir(dir, "data");
  const std::vector<std::vector<std::string>> bad = {
      {"--no-such-flag"},
      {"--listen", "127.0.0.1:0", "--data", data_dir},                                  // no --meta
      {"--listen", "nonsense", "--data", data_dir, "--meta", "127.0.0.1:1", "--insecure-dev-key"},
      {"--listen", "127.0.0.1:0", "--data", data_dir, "--meta", "127.0.0.1:1"},        // no key
  };
  int i = 0;
  for (auto args : bad) {
    args.insert(args.begin(), dfs::testing::BinaryPath("DFS_CHUNKSERVER_BIN"));
    auto process = Process::Start(args, dir / fmt::format("bad{}.log", i++));
    ASSERT_TRUE(process.ok());
    auto status = (*process)->Wait(15'000);
    ASSERT_TRUE(status.ok());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << "args #" << i << " status " << *status;
  }
}

}  // namespace
}  // namespace dfs::chunkserver
