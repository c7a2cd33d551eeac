#include "chunkserver/store/chunk_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "chunkserver/store/test_util.h"
#include "common/chunk_geometry.h"
#include "common/crc32c.h"

namespace dfs::chunkserver {
namespace {

using common::kBlockSizeBytes;
using common::StatusCode;
using testing::Bytes;
using testing::PieceCrcsOf;
using testing::RandomBytes;
using testing::ReadAll;
using testing::WriteOnce;

class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/chunk_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<ChunkStore> OpenStore(FileIo* io = nullptr,
                                        std::function<common::Status(std::string_view)> hook = nullptr,
                                        bool direct_io = true) {
    ChunkStore::Options options;
    options.folders = {dir_};
    options.io = io;
    options.crash_hook = std::move(hook);
    options.direct_io = direct_io;
    auto store = ChunkStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  int CountFiles(const std::string& suffix) {
    int n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_)) {
      if (e.path().string().ends_with(suffix)) ++n;
    }
    return n;
  }

  std::string dir_;
};

TEST_F(ChunkStoreTest, Format_HeaderCrcTableAndDataAtDocumentedOffsets) {
  auto store = OpenStore();
  const std::string data = RandomBytes(100'000, 1);
  ASSERT_TRUE(WriteOnce(*store, 0xabcdef0102, 3, 0, 0, data).ok());
  const std::string path = store->TEST_PathOf(0xabcdef0102, 3);
  EXPECT_EQ(path, dir_ + "/chunks/02/000000abcdef0102.3.chunk");
  const std::string file = ReadFile(path);
  ASSERT_EQ(file.size(), kChunkDataOffset + data.size());
  EXPECT_TRUE(CheckChunkHeader(file.substr(0, 64), 0xabcdef0102, 3).ok());
  EXPECT_FALSE(CheckChunkHeader(file.substr(0, 64), 0xabcdef0102, 4).ok());
  EXPECT_EQ(file.substr(0, 8), "DFSCHNK1");
  EXPECT_EQ(file.substr(kChunkDataOffset), data);
  for (uint64_t b = 0; b < 2; ++b) {
    uint32_t stored = 0;
    std::memcpy(&stored, file.data() + kChunkHeaderBytes + 4 * b, 4);  // little-endian host
    size_t len = std::min<size_t>(kBlockSizeBytes, data.size() - b * kBlockSizeBytes);
    EXPECT_EQ(stored, common::Crc32c(data.data() + b * kBlockSizeBytes, len)) << "block " << b;
  }
  EXPECT_EQ(file.substr(kChunkHeaderBytes + 8, 16), std::string(16, '\0'));
}

TEST_F(ChunkStoreTest, ReadBlocks_FlippedByteOnDiskIsDataLossNamingChunkAndBlock) {
  auto store = OpenStore();
  const std::string data = RandomBytes(3 * kBlockSizeBytes, 2);
  ASSERT_TRUE(WriteOnce(*store, 77, 1, 0, 0, data).ok());
  {
    int fd = ::open(store->TEST_PathOf(77, 1).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c = 0;
    ASSERT_EQ(::pread(fd, &c, 1, kChunkDataOffset + kBlockSizeBytes + 5), 1);
    c ^= 0x10;
    ASSERT_EQ(::pwrite(fd, &c, 1, kChunkDataOffset + kBlockSizeBytes + 5), 1);
    ::close(fd);
  }
  std::string out;
  BlockRead blocks;
  EXPECT_TRUE(store->ReadBlocks(77, 1, 0, 1, &out, &blocks).ok());
  common::Status s = store->ReadBlocks(77, 1, 0, 16, &out, &blocks);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("chunk 000000000000004d"), std::string_view::npos) << s.ToString();
  EXPECT_NE(s.message().find("block 1"), std::string_view::npos) << s.ToString();
  EXPECT_TRUE(out.empty());
  auto damaged = store->TakeNewlyDamaged();
  ASSERT_EQ(damaged.size(), 1u);
  EXPECT_EQ(damaged[0].chunk_id, 77u);
  EXPECT_TRUE(store->Find(77, 1)->damaged);
  // The damage survives a restart.
  store.reset();
  store = OpenStore();
  EXPECT_TRUE(store->Find(77, 1)->damaged);
  EXPECT_EQ(store->ReadBlocks(77, 1, 1, 1, &out, &blocks).code(), StatusCode::kDataLoss);
}

TEST_F(ChunkStoreTest, Stat_AFileRemovedBehindOurBackIsReportedDamaged) {
  auto store = OpenStore();
  ASSERT_TRUE(WriteOnce(*store, 78, 2, 0, 0, RandomBytes(5000, 3)).ok());
  auto fine = store->Stat(78, 2);
  ASSERT_TRUE(fine.ok());
  ASSERT_EQ(fine->size(), 1u);
  EXPECT_FALSE((*fine)[0].damaged);
  ASSERT_EQ(::unlink(store->TEST_PathOf(78, 2).c_str()), 0);
  auto gone = store->Stat(78, 2);
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE((*gone)[0].damaged);
  std::vector<ChunkMeta> reported = store->TakeNewlyDamaged();
  ASSERT_EQ(reported.size(), 1u);  // meta hears of it at the next heartbeat
  EXPECT_EQ(store->damaged_count(), 1u);
  ASSERT_TRUE(store->Delete(78, 2).ok());
  EXPECT_EQ(store->damaged_count(), 0u);
  EXPECT_EQ(reported[0].chunk_id, 78u);
}

TEST_F(ChunkStoreTest, Write_PartialBlocksArePatchedAndVerifiable) {
  auto store = OpenStore();
  std::string model = RandomBytes(200'000, 3);
  ASSERT_TRUE(WriteOnce(*store, 5, 1, 0, 0, model).ok());
  struct Patch {
    uint64_t offset;
    size_t size;
  };
  const Patch patches[] = {{1000, 100}, {65530, 70}, {131072, 65536}, {199'990, 50}, {131071, 2}};
  uint64_t seed = 10;
  for (const Patch& p : patches) {
    std::string bytes = RandomBytes(p.size, ++seed);
    ASSERT_TRUE(WriteOnce(*store, 5, 1, 1, p.offset, bytes).ok()) << p.offset;
    if (model.size() < p.offset + p.size) model.resize(p.offset + p.size, '\0');
    model.replace(p.offset, p.size, bytes);
  }
  auto read = ReadAll(*store, 5, 1);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, model);
  EXPECT_EQ(store->Find(5, 1)->length, model.size());
}

// Records the two I/O hints (and still passes them to the kernel).
class HintRecordingFileIo : public PosixFileIo {
 public:
  struct Range {
    uint64_t offset, length;
    bool operator==(const Range&) const = default;
  };
  void WillNeed(int fd, uint64_t offset, uint64_t length) override {
    will_need.push_back({offset, length});
    PosixFileIo::WillNeed(fd, offset, length);
  }
  void StartWriteback(int fd, uint64_t offset, uint64_t length) override {
    writeback.push_back({offset, length});
    PosixFileIo::StartWriteback(fd, offset, length);
  }
  std::vector<Range> will_need, writeback;
};

TEST_F(ChunkStoreTest, Write_StartsWritebackOfEach8MiBWhileTheStreamGoesOn) {
  HintRecordingFileIo io;
  auto store = OpenStore(&io, nullptr, /*direct_io=*/false);  // writes through the page cache
  auto writer = store->StartWrite({21, 1, 0, false});
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  const uint64_t kMiB = 1 << 20;
  std::string model;
  for (uint64_t i = 0; i < 20; ++i) {
    std::string piece = RandomBytes(kMiB, 100 + i);
    ASSERT_TRUE((*writer)->Write(i * kMiB, Bytes(piece), PieceCrcsOf(i * kMiB, piece)).ok());
    model += piece;
  }
  // Two whole 8 MiB spans were handed to the disk; the last 4 MiB wait for Commit.
  using R = HintRecordingFileIo::Range;
  EXPECT_EQ(io.writeback, (std::vector<R>{{kChunkDataOffset, 8 * kMiB}, {kChunkDataOffset + 8 * kMiB, 8 * kMiB}}));
  ASSERT_TRUE((*writer)->Commit(true).ok());
  EXPECT_EQ(*ReadAll(*store, 21, 1), model);
}

// Counts the bytes of each kind of write, and can refuse O_DIRECT as tmpfs
// does (at open) or as a file system with a larger block would (per write).
class DirectRecordingFileIo : public PosixFileIo {
 public:
  common::Result<int> Open(const std::string& path, int flags, mode_t mode) override {
    if ((flags & O_DIRECT) != 0 && refuse_open) return IoError(EINVAL, "open " + path + " (O_DIRECT)");
    return PosixFileIo::Open(path, flags, mode);
  }
  common::Status PwriteFull(int fd, const void* buf, size_t size, uint64_t offset, const std::string& path) override {
    buffered_bytes += size;
    return PosixFileIo::PwriteFull(fd, buf, size, offset, path);
  }
  common::Status PwriteDirect(int fd, const void* buf, size_t size, uint64_t offset,
                              const std::string& path) override {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf) % kDirectIoAlignBytes, 0u);
    EXPECT_EQ(size % kDirectIoAlignBytes, 0u);
    EXPECT_EQ(offset % kDirectIoAlignBytes, 0u);
    if (refuse_writes) return IoError(EINVAL, "pwrite " + path + " (O_DIRECT)");
    direct_bytes += size;
    return PosixFileIo::PwriteDirect(fd, buf, size, offset, path);
  }
  bool refuse_open = false, refuse_writes = false;
  uint64_t buffered_bytes = 0, direct_bytes = 0;
};

TEST_F(ChunkStoreTest, Write_LargeAlignedMiddlesGoWithODirect_EndsAndSmallWritesThroughThePageCache) {
  DirectRecordingFileIo io;
  auto store = OpenStore(&io);
  const uint64_t kMiB = 1 << 20;
  std::string model = RandomBytes(kMiB, 1);
  ASSERT_TRUE(WriteOnce(*store, 31, 1, 0, 0, model).ok());
  if (!store->direct_io()) GTEST_SKIP() << "the file system of " << dir_ << " refuses O_DIRECT";
  EXPECT_EQ(io.direct_bytes, kMiB);  // a new chunk's first MiB, all aligned
  EXPECT_EQ(store->direct_bytes_written(), kMiB);

  // In place, both ends unaligned: only the aligned middle goes direct.
  io.direct_bytes = io.buffered_bytes = 0;
  const uint64_t at = 100'000;
  const std::string piece = RandomBytes(700'000, 2);
  ASSERT_TRUE(WriteOnce(*store, 31, 1, 0, at, piece).ok());
  const uint64_t begin = (kChunkDataOffset + at + 4095) / 4096 * 4096;
  const uint64_t end = (kChunkDataOffset + at + piece.size()) / 4096 * 4096;
  EXPECT_EQ(io.direct_bytes, end - begin);
  EXPECT_GE(io.buffered_bytes, piece.size() - (end - begin));  // the ends (and the CRC table)
  model.replace(at, piece.size(), piece);

  // Past the end (the gap zero-filled), then a new version built from this
  // one by a small write: a delta, so the 4 MiB base is not copied.
  const std::string tail = RandomBytes(kMiB + 5, 3);
  ASSERT_TRUE(WriteOnce(*store, 31, 1, 0, 3 * kMiB + 7, tail).ok());
  model.resize(3 * kMiB + 7, '\0');
  model += tail;
  io.direct_bytes = io.buffered_bytes = 0;
  const std::string small = RandomBytes(200'000, 4);
  ASSERT_TRUE(WriteOnce(*store, 31, 2, 1, 2 * kMiB, small).ok());
  // Its blocks twice (the .delta, then the base) and a CRC table and header.
  EXPECT_LT(io.direct_bytes + io.buffered_bytes, 3 * 262'144);
  model.replace(2 * kMiB, small.size(), small);
  auto read = ReadAll(*store, 31, 2);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, model);
  EXPECT_EQ(store->Find(31, 2)->length, model.size());

  // Switched off: nothing direct.
  DirectRecordingFileIo io2;
  auto buffered = OpenStore(&io2, nullptr, /*direct_io=*/false);
  ASSERT_TRUE(WriteOnce(*buffered, 32, 1, 0, 0, model).ok());
  EXPECT_EQ(io2.direct_bytes, 0u);
  EXPECT_EQ(*ReadAll(*buffered, 32, 1), model);
}

TEST_F(ChunkStoreTest, Write_WhereODirectIsRefused_GoesThroughThePageCacheFromThenOn) {
  for (bool at_open : {true, false}) {
    SCOPED_TRACE(at_open ? "refused at open" : "refused per write");
    DirectRecordingFileIo io;
    (at_open ? io.refuse_open : io.refuse_writes) = true;
    auto store = OpenStore(&io);
    const uint64_t id = at_open ? 41 : 42;
    const std::string data = RandomBytes(3 << 20, 5);
    ASSERT_TRUE(WriteOnce(*store, id, 1, 0, 0, data).ok());
    EXPECT_FALSE(store->direct_io());
    EXPECT_EQ(io.direct_bytes, 0u);
    EXPECT_EQ(store->direct_bytes_written(), 0u);
    ASSERT_TRUE(WriteOnce(*store, id, 1, 0, 1 << 20, data).ok());
    EXPECT_EQ(*ReadAll(*store, id, 1), data.substr(0, 1 << 20) + data);
  }
}

TEST_F(ChunkStoreTest, Write_ODirectFailures_AreTheWritesFailures) {
  FaultInjectingFileIo io;
  auto store = OpenStore(&io);
  const std::string v1 = RandomBytes(2 << 20, 6);
  ASSERT_TRUE(WriteOnce(*store, 43, 1, 0, 0, v1).ok());
  if (!store->direct_io()) GTEST_SKIP() << "the file system of " << dir_ << " refuses O_DIRECT";
  // A large write into a new version: refused, nothing changed.
  io.fail_writes_errno = ENOSPC;
  EXPECT_EQ(WriteOnce(*store, 43, 2, 1, 0, RandomBytes(1 << 20, 7)).code(), StatusCode::kResourceExhausted);
  io.fail_writes_errno = EIO;
  EXPECT_EQ(WriteOnce(*store, 44, 1, 0, 0, RandomBytes(1 << 20, 8)).code(), StatusCode::kUnknown);
  io.fail_writes_errno = 0;
  EXPECT_TRUE(store->direct_io());  // an I/O error is not a refusal of O_DIRECT
  EXPECT_EQ(*ReadAll(*store, 43, 1), v1);
  EXPECT_EQ(store->Stat(43, 0)->size(), 1u);
  EXPECT_EQ(store->Find(44, 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(CountFiles(".tmp"), 0);
}

TEST_F(ChunkStoreTest, ReadBlocks_AsksTheKernelForTheBlocksThatFollow) {
  HintRecordingFileIo io;
  auto store = OpenStore(&io);
  const std::string data = RandomBytes(40 * kBlockSizeBytes + 100, 5);  // 41 blocks, the last partial
  ASSERT_TRUE(WriteOnce(*store, 22, 1, 0, 0, data).ok());
  std::string out;
  BlockRead blocks;
  ASSERT_TRUE(store->ReadBlocks(22, 1, 0, 16, &out, &blocks, 16).ok());
  EXPECT_EQ(out, data.substr(0, 16 * kBlockSizeBytes));
  ASSERT_TRUE(store->ReadBlocks(22, 1, 32, 16, &out, &blocks, 16).ok());  // clipped to the chunk
  EXPECT_EQ(out, data.substr(32 * kBlockSizeBytes));
  ASSERT_TRUE(store->ReadBlocks(22, 1, 16, 16, &out, &blocks, 0).ok());   // no hint asked for
  using R = HintRecordingFileIo::Range;
  // Blocks 16..31 after the first read; nothing after the end of the chunk.
  EXPECT_EQ(io.will_need, (std::vector<R>{{kChunkDataOffset + 16 * kBlockSizeBytes, 16 * kBlockSizeBytes}}));
}

TEST_F(ChunkStoreTest, ReadBlocks_AtTheEndOfAShortLastBlockIsEmpty) {
  auto store = OpenStore();
  ASSERT_TRUE(WriteOnce(*store, 41, 1, 0, 0, RandomBytes(kBlockSizeBytes + 10, 13)).ok());
  std::string out = "stale";
  BlockRead blocks;
  ASSERT_TRUE(store->ReadBlocks(41, 1, 2, 16, &out, &blocks).ok());
  EXPECT_EQ(out, "");
  EXPECT_TRUE(blocks.crcs.empty());
  EXPECT_EQ(store->ReadBlocks(41, 1, 3, 16, &out, &blocks).code(), StatusCode::kInvalidArgument);
}

TEST_F(ChunkStoreTest, Write_PastTheEndZeroFillsTheGap) {
  auto store = OpenStore();
  ASSERT_TRUE(WriteOnce(*store, 6, 1, 0, 0, "head").ok());
  ASSERT_TRUE(WriteOnce(*store, 6, 1, 0, 300'000, "tail").ok());
  auto read = ReadAll(*store, 6, 1);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  std::string expected = "head" + std::string(300'000 - 4, '\0') + "tail";
  EXPECT_EQ(*read, expected);
}

// Bytes the file system gave the file (its holes take none).
uint64_t AllocatedBytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return UINT64_MAX;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

TEST_F(ChunkStoreTest, Write_AGapBeforeAFarWriteIsAHole) {
  auto store = OpenStore();
  const std::string data = RandomBytes(1 << 20, 31);
  ASSERT_TRUE(WriteOnce(*store, 31, 1, 0, 0, "head").ok());
  ASSERT_TRUE(WriteOnce(*store, 31, 1, 0, 36 << 20, data).ok());
  // Before: the 36 MiB gap was reserved, 37.9 MB allocated.
  EXPECT_LT(AllocatedBytes(store->TEST_PathOf(31, 1)), 3u << 20);
  auto read = ReadAll(*store, 31, 1);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, "head" + std::string((36 << 20) - 4, '\0') + data);
  // A write into the hole later lands like any other.
  const std::string middle = RandomBytes(100'000, 32);
  ASSERT_TRUE(WriteOnce(*store, 31, 1, 0, 10'000'000, middle).ok());
  std::string expected = *read;
  expected.replace(10'000'000, middle.size(), middle);
  EXPECT_EQ(*ReadAll(*store, 31, 1), expected);
}

// Extending past a partial last block writes no zeros into it either: its
// tail past the old end reads as zeros once the file is extended, and its
// CRC is the stored one extended over them, so a bad block stays bad.
TEST_F(ChunkStoreTest, Write_PastAPartialLastBlockWritesNoZeros) {
  auto store = OpenStore();
  const std::string tail = RandomBytes(4096, 42);
  ASSERT_TRUE(WriteOnce(*store, 42, 1, 0, 0, "abc").ok());
  ASSERT_TRUE(WriteOnce(*store, 42, 1, 0, 200 << 10, tail).ok());
  // The header, the CRC table, a page for "abc" and one for the tail.
  EXPECT_LE(AllocatedBytes(store->TEST_PathOf(42, 1)), 16u << 10);
  std::string expected = "abc" + std::string((200 << 10) - 3, '\0') + tail;
  EXPECT_EQ(*ReadAll(*store, 42, 1), expected);
  // A new version (a delta) extending past its partial last block.
  ASSERT_TRUE(WriteOnce(*store, 42, 2, 1, expected.size() + 70'000, "x").ok());
  expected += std::string(70'000, '\0') + "x";
  EXPECT_EQ(*ReadAll(*store, 42, 2), expected);
  // A rotten partial block, extended: still refused.
  ASSERT_TRUE(WriteOnce(*store, 43, 1, 0, 0, "hello").ok());
  int fd = ::open(store->TEST_PathOf(43, 1).c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "J", 1, kChunkDataOffset), 1);
  ::close(fd);
  ASSERT_TRUE(WriteOnce(*store, 43, 1, 0, 300'000, "far").ok());
  std::string out;
  BlockRead blocks;
  EXPECT_EQ(store->ReadBlocks(43, 1, 0, 1, &out, &blocks).code(), StatusCode::kDataLoss);
}

// What a commit says the version takes on disk (WriteReply.stored_bytes,
// the file's blocks in meta): its data, not its holes or its header.
TEST_F(ChunkStoreTest, Commit_SaysWhatTheVersionStores) {
  auto store = OpenStore();
  const std::string data = RandomBytes(1 << 20, 41);
  auto far = [&](uint64_t version, uint64_t base, uint64_t offset) -> std::optional<uint64_t> {
    auto writer = store->StartWrite({41, version, base, false});
    EXPECT_TRUE(writer.ok());
    if (!writer.ok()) return std::nullopt;
    EXPECT_TRUE((*writer)->Write(offset, Bytes(data), PieceCrcsOf(offset, data)).ok());
    EXPECT_TRUE((*writer)->Commit(true).ok());
    return (*writer)->stored_bytes();
  };
  std::optional<uint64_t> built = far(1, 0, 30 << 20);  // a new version
  ASSERT_TRUE(built.has_value());
  EXPECT_GE(*built, data.size());
  EXPECT_LT(*built, data.size() + (64u << 10));
  std::optional<uint64_t> in_place = far(1, 0, 10 << 20);
  ASSERT_TRUE(in_place.has_value());
  EXPECT_GE(*in_place, 2 * data.size());
  EXPECT_LT(*in_place, 2 * data.size() + (128u << 10));
  std::optional<uint64_t> delta = far(2, 1, 20 << 20);  // patched into the base
  ASSERT_TRUE(delta.has_value());
  EXPECT_GE(*delta, 3 * data.size());
  EXPECT_LT(*delta, 3 * data.size() + (192u << 10));
}

TEST_F(ChunkStoreTest, Write_WholeZeroBlocksPastTheEndAreHoles) {
  // What a replica pulled from a peer, or a version built from empty, is
  // sent: every byte of a sparse chunk, its gap as zeros.
  auto store = OpenStore();
  std::string chunk(20 << 20, '\0');
  const std::string data = RandomBytes(300'000, 33);
  chunk.replace(5'000, 10, "0123456789");      // a block with a few bytes
  chunk.replace(15 << 20, data.size(), data);  // and data after a long gap
  chunk += std::string(200'000, '\0');        // a zero tail, last block short
  ASSERT_TRUE(WriteOnce(*store, 33, 1, 0, 0, chunk).ok());
  EXPECT_LT(AllocatedBytes(store->TEST_PathOf(33, 1)), 2u << 20);
  auto read = ReadAll(*store, 33, 1);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, chunk);
  EXPECT_EQ(store->Find(33, 1)->length, chunk.size());
  // Zeros written over stored bytes are written.
  const std::string zeros(1 << 20, '\0');
  ASSERT_TRUE(WriteOnce(*store, 33, 1, 0, 15 << 20, zeros).ok());
  chunk.replace(15 << 20, zeros.size(), zeros);
  EXPECT_EQ(*ReadAll(*store, 33, 1), chunk);
}

TEST_F(ChunkStoreTest, NewVersion_FromASparseBaseStaysSparse) {
  auto store = OpenStore();
  const std::string tail = RandomBytes(1 << 20, 34);
  ASSERT_TRUE(WriteOnce(*store, 34, 1, 0, 40 << 20, tail).ok());
  std::string expected = std::string(40 << 20, '\0') + tail;
  // A small write: a delta patched into the base.
  ASSERT_TRUE(WriteOnce(*store, 34, 2, 1, 100, "delta").ok());
  expected.replace(100, 5, "delta");
  EXPECT_LT(AllocatedBytes(store->TEST_PathOf(34, 2)), 3u << 20);
  EXPECT_EQ(*ReadAll(*store, 34, 2), expected);
  // Over half the chunk rewritten: a full copy, the base's holes copied as holes.
  const std::string front = RandomBytes(24 << 20, 35);
  ASSERT_TRUE(WriteOnce(*store, 34, 3, 2, 0, front).ok());
  expected.replace(0, front.size(), front);
  EXPECT_LT(AllocatedBytes(store->TEST_PathOf(34, 3)), 27u << 20);
  EXPECT_EQ(*ReadAll(*store, 34, 3), expected);
  // A delta that extends the chunk far: the gap stays a hole.
  ASSERT_TRUE(WriteOnce(*store, 34, 4, 3, 60 << 20, "end").ok());
  expected += std::string((60 << 20) - expected.size(), '\0') + "end";
  EXPECT_LT(AllocatedBytes(store->TEST_PathOf(34, 4)), 27u << 20);
  EXPECT_EQ(*ReadAll(*store, 34, 4), expected);
}

// Zeros written over stored bytes (what a mount sends for a punched range
// of a file) free their room: punched in place, and in a delta once it is
// applied to the base, after a crash too.
TEST_F(ChunkStoreTest, Write_ZerosOverStoredBytesFreeTheirRoom) {
  const std::string zeros(2 << 20, '\0');
  std::string expected = RandomBytes(8 << 20, 40);
  {
    auto store = OpenStore();
    ASSERT_TRUE(WriteOnce(*store, 40, 1, 0, 0, expected).ok());
    const uint64_t full = AllocatedBytes(store->TEST_PathOf(40, 1));
    // In place; the range starts inside a block, whose zeros are written.
    ASSERT_TRUE(WriteOnce(*store, 40, 1, 0, (1 << 20) + 100, zeros).ok());
    expected.replace((1 << 20) + 100, zeros.size(), zeros);
    EXPECT_LT(AllocatedBytes(store->TEST_PathOf(40, 1)), full - (1900u << 10));
    EXPECT_EQ(*ReadAll(*store, 40, 1), expected);
  }
  // A delta (a quarter of the chunk), its commit cut off once the .delta is
  // saved: start-up applies it, punching the base.
  bool armed = false;
  {
    auto store = OpenStore(nullptr, [&armed](std::string_view s) {
      return armed && s == "delta_saved" ? common::InternalError("simulated crash") : common::Status::Ok();
    });
    armed = true;
    EXPECT_EQ(WriteOnce(*store, 40, 2, 1, 5 << 20, zeros).message(), "simulated crash");
  }
  expected.replace(5 << 20, zeros.size(), zeros);
  auto store = OpenStore();
  ASSERT_TRUE(store->Find(40, 2).ok());
  EXPECT_LT(AllocatedBytes(store->TEST_PathOf(40, 2)), (4u << 20) + (200u << 10));
  auto read = ReadAll(*store, 40, 2);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, expected);
}

TEST_F(ChunkStoreTest, Write_IntoAHoleOnAFullDiskFailsAndChangesNothing) {
  FaultInjectingFileIo io;
  auto store = OpenStore(&io);
  const std::string data = RandomBytes(1 << 20, 36);
  ASSERT_TRUE(WriteOnce(*store, 36, 1, 0, 8 << 20, data).ok());
  const std::string expected = std::string(8 << 20, '\0') + data;
  io.fail_reserve_errno = ENOSPC;
  // In place, and as a delta of a new version.
  EXPECT_EQ(WriteOnce(*store, 36, 1, 0, 1 << 20, RandomBytes(200'000, 37)).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(WriteOnce(*store, 36, 2, 1, 1 << 20, RandomBytes(200'000, 38)).code(), StatusCode::kResourceExhausted);
  io.fail_reserve_errno = 0;
  EXPECT_EQ(*ReadAll(*store, 36, 1), expected);
  EXPECT_FALSE(store->Find(36, 1)->damaged);
  EXPECT_EQ(store->Find(36, 2).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountFiles(".tmp") + CountFiles(".delta"), 0);
}

TEST_F(ChunkStoreTest, Write_BadInputIsRefused) {
  auto store = OpenStore();
  auto writer = store->StartWrite({8, 1, 0, false});
  ASSERT_TRUE(writer.ok());
  std::string data = RandomBytes(70'000, 4);
  auto crcs = PieceCrcsOf(0, data);
  crcs[1] ^= 1;
  common::Status s = (*writer)->Write(0, Bytes(data), crcs);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("block 1"), std::string_view::npos) << s.ToString();
  crcs.pop_back();
  EXPECT_EQ((*writer)->Write(0, Bytes(data), crcs).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*writer)->Write(common::kChunkSizeBytes - 10, Bytes(data), PieceCrcsOf(common::kChunkSizeBytes - 10, data))
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*writer)->Truncate(common::kChunkSizeBytes + 1).code(), StatusCode::kInvalidArgument);
}

TEST_F(ChunkStoreTest, StartWrite_VersionRules) {
  auto store = OpenStore();
  EXPECT_EQ(store->StartWrite({9, 0, 0, false}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->StartWrite({9, 2, 3, false}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->StartWrite({9, 2, 1, false}).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(WriteOnce(*store, 9, 5, 0, 0, "v5").ok());
  EXPECT_EQ(store->StartWrite({9, 4, 0, false}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->StartWrite({9, 7, 6, false}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Find(9, 4).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store->Find(9, 4).status().message().find("stale"), std::string_view::npos);
  EXPECT_NE(store->Find(9, 6).status().message().find("future"), std::string_view::npos);
  EXPECT_EQ(store->Find(10, 1).status().code(), StatusCode::kNotFound);
}

// A writer that died after its new version was finished here, before meta
// committed it: meta still names the base, which finishing dropped. Reads of
// the base are served from the newer version, and the next writer (base: the
// committed version, version: past the abandoned one) builds from it.
TEST_F(ChunkStoreTest, AbandonedVersion_ServesReadsOfItsBaseAndIsTheNextWritersBase) {
  auto store = OpenStore();
  const std::string v1 = RandomBytes(100'000, 7);
  ASSERT_TRUE(WriteOnce(*store, 12, 1, 0, 0, v1).ok());
  ASSERT_TRUE(WriteOnce(*store, 12, 2, 1, 10, "abandoned").ok());
  EXPECT_EQ(store->Find(12, 1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->FindReadable(12, 1)->version, 2u);
  EXPECT_EQ(store->FindReadable(12, 2)->version, 2u);
  EXPECT_EQ(store->FindReadable(12, 3).status().code(), StatusCode::kFailedPrecondition);  // future
  EXPECT_EQ(store->FindReadable(13, 1).status().code(), StatusCode::kNotFound);

  auto writer = store->StartWrite({12, 3, 1, false});
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  EXPECT_EQ((*writer)->built_from(), 2u);  // the client learns it (WriteReply.built_from_version)
  ASSERT_TRUE((*writer)->Write(50'000, Bytes("next"), PieceCrcsOf(50'000, "next")).ok());
  ASSERT_TRUE((*writer)->Commit(true).ok());
  writer->reset();
  std::string v3 = v1;
  v3.replace(10, 9, "abandoned");
  v3.replace(50'000, 4, "next");
  EXPECT_EQ(*ReadAll(*store, 12, 3), v3);
  // Only a version between the base and the new one stands in for the base.
  EXPECT_EQ(store->StartWrite({12, 5, 4, false}).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->StartWrite({12, 3, 2, false}).ok(), true);  // in place: version 3 is stored
}

TEST_F(ChunkStoreTest, Commit_NewVersionFromBaseReplacesOldAtomically) {
  auto store = OpenStore();
  const std::string v1 = RandomBytes(150'000, 5);
  ASSERT_TRUE(WriteOnce(*store, 11, 1, 0, 0, v1).ok());
  auto writer = store->StartWrite({11, 2, 1, false});
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE((*writer)->building_new_version());
  EXPECT_EQ((*writer)->built_from(), 1u);
  ASSERT_TRUE((*writer)->Write(10, Bytes("XYZ"), PieceCrcsOf(10, "XYZ")).ok());
  // Until the commit, readers see version 1 only.
  EXPECT_EQ(*ReadAll(*store, 11, 1), v1);
  EXPECT_EQ(store->Find(11, 2).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*writer)->Commit(true).ok());
  writer->reset();
  std::string v2 = v1;
  v2.replace(10, 3, "XYZ");
  EXPECT_EQ(*ReadAll(*store, 11, 2), v2);
  EXPECT_EQ(store->Find(11, 1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountFiles(".chunk"), 1);
  EXPECT_EQ(CountFiles(".tmp"), 0);
}

TEST_F(ChunkStoreTest, Commit_CrashBetweenStepsLeavesOldOrNewVersion) {
  const std::string v1 = RandomBytes(100'000, 6);
  const char* steps[] = {"tmp_written", "before_rename", "after_rename", "after_unlink_old"};
  for (const char* step : steps) {
    SCOPED_TRACE(step);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directory(dir_);
    {
      bool armed = false;
      auto store = OpenStore(nullptr, [step, &armed](std::string_view s) {
        return armed && s == step ? common::InternalError("simulated crash") : common::Status::Ok();
      });
      ASSERT_TRUE(WriteOnce(*store, 12, 1, 0, 0, v1).ok());
      armed = true;
      auto writer = store->StartWrite({12, 2, 1, false});
      ASSERT_TRUE(writer.ok());
      ASSERT_TRUE((*writer)->Write(0, Bytes("new"), PieceCrcsOf(0, "new")).ok());
      EXPECT_FALSE((*writer)->Commit(true).ok());
    }
    auto store = OpenStore();  // recovery
    auto versions = store->Stat(12, 0);
    ASSERT_TRUE(versions.ok());
    ASSERT_EQ(versions->size(), 1u);
    const bool renamed = std::string_view(step).starts_with("after");
    EXPECT_EQ((*versions)[0].version, renamed ? 2u : 1u);
    std::string expected = v1;
    if (renamed) expected.replace(0, 3, "new");
    EXPECT_EQ(*ReadAll(*store, 12, (*versions)[0].version), expected);
    EXPECT_EQ(CountFiles(".tmp"), 0);
    EXPECT_EQ(CountFiles(".chunk"), 1);
  }
}

// A new version built from a large base by a few writes is a delta (only
// its blocks written); by many, a copy. Either must read back exactly what
// a model of the bytes says, through writes in part of a block, truncates
// down and up, and writes past the end.
TEST_F(ChunkStoreTest, NewVersion_FromABase_ReadsBackWhatTheStreamMade) {
  auto store = OpenStore();
  std::mt19937_64 gen(42);
  auto below = [&gen](uint64_t n) { return n == 0 ? 0 : gen() % n; };
  for (uint64_t chunk = 1; chunk <= 40; ++chunk) {
    SCOPED_TRACE(fmt::format("chunk {}", chunk));
    std::string model = RandomBytes(1 + below(6 << 20), chunk);
    ASSERT_TRUE(WriteOnce(*store, chunk, 1, 0, 0, model).ok());
    for (uint64_t version = 2; version <= 4; ++version) {
      auto writer = store->StartWrite({chunk, version, version - 1, false});
      ASSERT_TRUE(writer.ok()) << writer.status().ToString();
      const int ops = 1 + static_cast<int>(below(5));
      for (int op = 0; op < ops; ++op) {
        const uint64_t kind = below(10);
        if (kind < 7) {
          // Mostly small writes; now and then one of megabytes.
          const uint64_t len = 1 + (below(8) == 0 ? below(3 << 20) : below(150'000));
          const uint64_t off = std::min<uint64_t>(below(model.size() + 200'000), (64 << 20) - len);
          const std::string data = RandomBytes(len, gen());
          ASSERT_TRUE((*writer)->Write(off, Bytes(data), PieceCrcsOf(off, data)).ok());
          if (off > model.size()) model.resize(off, '\0');
          if (off + len > model.size()) model.resize(off + len);
          model.replace(off, len, data);
        } else {
          const uint64_t len = kind < 9 ? below(model.size() + 1) : model.size() + below(300'000);
          ASSERT_TRUE((*writer)->Truncate(len).ok());
          model.resize(len, '\0');
        }
      }
      auto committed = (*writer)->Commit(gen() % 2 == 0);
      ASSERT_TRUE(committed.ok()) << committed.status().ToString();
      writer->reset();
      auto read = ReadAll(*store, chunk, version);
      ASSERT_TRUE(read.ok()) << read.status().ToString();
      ASSERT_EQ(read->size(), model.size());
      ASSERT_TRUE(*read == model) << "version " << version;
      EXPECT_EQ(store->Find(chunk, version - 1).status().code(), StatusCode::kFailedPrecondition);
    }
  }
  EXPECT_EQ(CountFiles(".chunk"), 40);
  EXPECT_EQ(CountFiles(".tmp"), 0);
  EXPECT_EQ(CountFiles(".delta"), 0);
  // And after a restart.
  store.reset();
  store = OpenStore();
  EXPECT_EQ(store->chunk_count(), 40u);
  for (uint64_t chunk = 1; chunk <= 40; ++chunk) EXPECT_TRUE(ReadAll(*store, chunk, 4).ok());
}

TEST_F(ChunkStoreTest, DeltaCommit_CrashAtEachStepLeavesOldOrNewVersion) {
  const std::string v1 = RandomBytes(4 << 20, 9);
  const std::string piece = RandomBytes(70'000, 10);
  const uint64_t at = 1'000'000;
  std::string v2 = v1;
  v2.replace(at, piece.size(), piece);
  v2 += "tail";
  struct Case {
    const char* step;
    bool applied;
    bool scribble;  // also leave the base half patched, as a crash mid-apply would
  };
  const Case cases[] = {{"tmp_written", false, false},
                        {"before_rename", false, false},
                        {"delta_saved", true, false},
                        {"delta_saved", true, true},
                        {"delta_applied", true, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(fmt::format("{}{}", c.step, c.scribble ? " (half applied)" : ""));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directory(dir_);
    std::string base_path;
    {
      bool armed = false;
      auto store = OpenStore(nullptr, [&c, &armed](std::string_view s) {
        return armed && s == c.step ? common::InternalError("simulated crash") : common::Status::Ok();
      });
      ASSERT_TRUE(WriteOnce(*store, 12, 1, 0, 0, v1).ok());
      base_path = store->TEST_PathOf(12, 1);
      armed = true;
      auto writer = store->StartWrite({12, 2, 1, false});
      ASSERT_TRUE(writer.ok());
      ASSERT_TRUE((*writer)->Write(at, Bytes(piece), PieceCrcsOf(at, piece)).ok());
      ASSERT_TRUE((*writer)->Write(v1.size(), Bytes("tail"), PieceCrcsOf(v1.size(), "tail")).ok());
      auto committed = (*writer)->Commit(true);
      EXPECT_EQ(committed.status().message(), "simulated crash");
    }
    if (std::string_view(c.step) != "delta_applied") {
      EXPECT_EQ(CountFiles(".delta"), std::string_view(c.step) == "delta_saved" ? 1 : 0);
    }
    if (c.scribble) {
      // The first patched block and a new header written, the rest not.
      int fd = ::open(base_path.c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      const uint64_t block = at / kBlockSizeBytes * kBlockSizeBytes;
      ASSERT_EQ(::pwrite(fd, v2.data() + block, kBlockSizeBytes, kChunkDataOffset + block),
                static_cast<ssize_t>(kBlockSizeBytes));
      const std::string header = EncodeChunkHeader(12, 2);
      ASSERT_EQ(::pwrite(fd, header.data(), header.size(), 0), static_cast<ssize_t>(header.size()));
      ::close(fd);
    }
    auto store = OpenStore();  // recovery
    auto versions = store->Stat(12, 0);
    ASSERT_TRUE(versions.ok());
    ASSERT_EQ(versions->size(), 1u);
    EXPECT_EQ((*versions)[0].version, c.applied ? 2u : 1u);
    EXPECT_FALSE((*versions)[0].damaged);
    auto read = ReadAll(*store, 12, (*versions)[0].version);
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    EXPECT_TRUE(*read == (c.applied ? v2 : v1));
    EXPECT_EQ(CountFiles(".tmp"), 0);
    EXPECT_EQ(CountFiles(".delta"), 0);
    EXPECT_EQ(CountFiles(".chunk"), 1);
  }
}

TEST_F(ChunkStoreTest, DeltaCommit_ABaseThatCannotBePatchedIsDroppedNotMixed) {
  FaultInjectingFileIo io;
  auto store = OpenStore(&io, [&io](std::string_view step) {
    // The delta is saved; patching the base then fails part-way.
    if (step == "delta_saved") io.fail_writes_errno = EIO;
    return common::Status::Ok();
  });
  const std::string v1 = RandomBytes(4 << 20, 11);
  ASSERT_TRUE(WriteOnce(*store, 21, 1, 0, 0, v1).ok());
  common::Status s = WriteOnce(*store, 21, 2, 1, 100, "patch");
  EXPECT_FALSE(s.ok());
  io.fail_writes_errno = 0;
  // This copy is gone from disk, and listed damaged for meta (which copies
  // the chunk back from another replica): reads of it fail.
  auto base = store->Find(21, 1);
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  EXPECT_TRUE(base->damaged);
  auto reported = store->TakeNewlyDamaged();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].chunk_id, 21u);
  EXPECT_FALSE(ReadAll(*store, 21, 1).ok());
  EXPECT_EQ(store->Find(21, 2).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountFiles(".chunk"), 0);
  EXPECT_EQ(CountFiles(".delta"), 0);
  EXPECT_EQ(CountFiles(".tmp"), 0);
  // The next replica written here starts from nothing, as usual.
  ASSERT_TRUE(WriteOnce(*store, 21, 3, 0, 0, "fresh").ok());
  EXPECT_EQ(*ReadAll(*store, 21, 3), "fresh");
}

TEST_F(ChunkStoreTest, DeltaCommit_ABaseDeletedDuringTheWriteFailsTheWrite) {
  auto store = OpenStore();
  const std::string v1 = RandomBytes(4 << 20, 12);
  ASSERT_TRUE(WriteOnce(*store, 22, 1, 0, 0, v1).ok());
  auto writer = store->StartWrite({22, 2, 1, false});
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write(5, Bytes("x"), PieceCrcsOf(5, "x")).ok());
  ASSERT_TRUE(store->Delete(22, 1).ok());
  auto committed = (*writer)->Commit(true);
  EXPECT_EQ(committed.status().code(), StatusCode::kAborted) << committed.status().ToString();
  writer->reset();
  EXPECT_EQ(store->Find(22, 2).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(CountFiles(".chunk") + CountFiles(".tmp") + CountFiles(".delta"), 0);
}

TEST_F(ChunkStoreTest, Write_DiskFullFailsWithoutChangingAnything) {
  FaultInjectingFileIo io;
  auto store = OpenStore(&io);
  const std::string v1 = RandomBytes(100'000, 7);
  ASSERT_TRUE(WriteOnce(*store, 13, 1, 0, 0, v1).ok());
  io.fail_writes_errno = ENOSPC;
  // In place, extending.
  common::Status s = WriteOnce(*store, 13, 1, 0, 90'000, RandomBytes(50'000, 8));
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("disk full"), std::string_view::npos);
  // A new version.
  EXPECT_EQ(WriteOnce(*store, 13, 2, 1, 0, "x").code(), StatusCode::kResourceExhausted);
  // A new chunk.
  EXPECT_EQ(WriteOnce(*store, 14, 1, 0, 0, "x").code(), StatusCode::kResourceExhausted);
  io.fail_writes_errno = 0;
  EXPECT_EQ(*ReadAll(*store, 13, 1), v1);
  EXPECT_EQ(store->Find(13, 1)->length, v1.size());
  EXPECT_FALSE(store->Find(13, 1)->damaged);
  EXPECT_EQ(store->Find(14, 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(CountFiles(".tmp"), 0);
}

TEST_F(ChunkStoreTest, Write_DiskFullMidStreamCutsOffWhatTheStreamAppended) {
  FaultInjectingFileIo io;
  auto store = OpenStore(&io);
  const std::string v1 = RandomBytes(100'000, 7);
  ASSERT_TRUE(WriteOnce(*store, 16, 1, 0, 0, v1).ok());
  auto writer = store->StartWrite({16, 1, 0, false});
  ASSERT_TRUE(writer.ok());
  const std::string more = RandomBytes(50'000, 8);
  ASSERT_TRUE((*writer)->Write(90'000, Bytes(more), PieceCrcsOf(90'000, more)).ok());
  EXPECT_EQ(store->Find(16, 1)->length, 140'000u);
  io.fail_reserve_errno = ENOSPC;
  common::Status s = (*writer)->Write(140'000, Bytes(more), PieceCrcsOf(140'000, more));
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  writer->reset();
  io.fail_reserve_errno = 0;
  // Back to the length the stream started from; the overwritten part of the
  // old range keeps the stream's bytes (in-place writes are not journaled).
  std::string expected = v1;
  expected.replace(90'000, 10'000, more.substr(0, 10'000));
  auto read = ReadAll(*store, 16, 1);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, expected);
  EXPECT_FALSE(store->Find(16, 1)->damaged);
}

TEST_F(ChunkStoreTest, IoErrors_AreStatusesAndAnUnreadableChunkIsDamaged) {
  FaultInjectingFileIo io;
  auto store = OpenStore(&io);
  const std::string v1 = RandomBytes(100'000, 17);
  ASSERT_TRUE(WriteOnce(*store, 18, 1, 0, 0, v1).ok());
  // A durable write whose fdatasync fails is not acknowledged.
  io.fail_sync_errno = EIO;
  EXPECT_EQ(WriteOnce(*store, 18, 2, 1, 0, "x", /*durable=*/true).code(), StatusCode::kUnknown);
  io.fail_sync_errno = 0;
  EXPECT_EQ(store->Stat(18, 0)->size(), 1u);
  EXPECT_EQ(store->Stat(18, 0)->front().version, 1u);
  EXPECT_EQ(CountFiles(".tmp"), 0);
  // A read that hits EIO fails and marks the chunk damaged (queued for meta).
  io.fail_reads_errno = EIO;
  std::string out;
  BlockRead blocks;
  common::Status s = store->ReadBlocks(18, 1, 0, 16, &out, &blocks);
  EXPECT_EQ(s.code(), StatusCode::kUnknown) << s.ToString();
  EXPECT_NE(s.message().find("chunk 0000000000000012 version 1"), std::string_view::npos) << s.ToString();
  io.fail_reads_errno = 0;
  EXPECT_TRUE(store->Find(18, 1)->damaged);
  EXPECT_EQ(store->TakeNewlyDamaged().size(), 1u);
}

TEST_F(ChunkStoreTest, Truncate_ShrinksAndGrows) {
  auto store = OpenStore();
  const std::string v1 = RandomBytes(200'000, 9);
  ASSERT_TRUE(WriteOnce(*store, 15, 1, 0, 0, v1).ok());
  {
    auto writer = store->StartWrite({15, 1, 0, false});
    ASSERT_TRUE((*writer)->Truncate(70'000).ok());
    ASSERT_TRUE((*writer)->Commit(true).ok());
  }
  EXPECT_EQ(*ReadAll(*store, 15, 1), v1.substr(0, 70'000));
  {
    auto writer = store->StartWrite({15, 2, 1, false});
    ASSERT_TRUE((*writer)->Truncate(140'000).ok());
    ASSERT_EQ(*(*writer)->Commit(true), 140'000u);
  }
  EXPECT_EQ(*ReadAll(*store, 15, 2), v1.substr(0, 70'000) + std::string(70'000, '\0'));
}

TEST_F(ChunkStoreTest, Write_ConcurrentWritersSerializePerChunkAndRunInParallel) {
  auto store = OpenStore();
  constexpr int kThreads = 4;
  constexpr size_t kPiece = 100'000;
  ASSERT_TRUE(WriteOnce(*store, 20, 1, 0, 0, std::string(kThreads * kPiece, 'z')).ok());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        // The same chunk: disjoint, unaligned ranges.
        std::string mine = RandomBytes(kPiece, static_cast<uint64_t>(t * 100 + round));
        if (!WriteOnce(*store, 20, 1, 0, t * kPiece, mine, false).ok()) ++failures;
        // A chunk of its own.
        if (!WriteOnce(*store, 100 + static_cast<uint64_t>(t), 1, 0, round * kPiece, mine, false).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  std::string expected;
  for (int t = 0; t < kThreads; ++t) expected += RandomBytes(kPiece, static_cast<uint64_t>(t * 100 + 4));
  auto read = ReadAll(*store, 20, 1);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, expected);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(store->Find(100 + static_cast<uint64_t>(t), 1)->length, 5 * kPiece);
}

TEST_F(ChunkStoreTest, StartWrite_WaitsForTheChunksWriterThenGivesUp) {
  auto store = OpenStore();
  auto first = store->StartWrite({22, 1, 0, false});
  ASSERT_TRUE(first.ok());
  WriteSpec spec{22, 1, 0, false};
  spec.lock_timeout_ms = 50;
  EXPECT_EQ(store->StartWrite(spec).status().code(), StatusCode::kAborted);
  // Another chunk is not blocked.
  EXPECT_TRUE(store->StartWrite({23, 1, 0, false}).ok());
  ASSERT_TRUE((*first)->Commit(false).ok());
  first->reset();
  EXPECT_TRUE(store->StartWrite(spec).ok());
}

// Writes `writes` pieces of `size` bytes `stride` apart in place into a
// chunk of `initial` bytes while another thread reads it whole again and
// again; returns how many of those reads failed, and checks the end result.
int FailedReadsDuringInPlaceWrites(ChunkStore& store, uint64_t chunk_id, size_t initial, int writes, uint64_t stride,
                                   size_t size) {
  std::string model = RandomBytes(initial, 1);
  EXPECT_TRUE(WriteOnce(store, chunk_id, 1, 0, 0, model).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::thread reader([&] {
    while (!stop) {
      if (!ReadAll(store, chunk_id, 1).ok()) ++errors;
    }
  });
  for (int i = 0; i < writes; ++i) {
    const uint64_t at = static_cast<uint64_t>(i) * stride;
    const std::string piece = RandomBytes(size, 100 + i);
    EXPECT_TRUE(WriteOnce(store, chunk_id, 1, 0, at, piece, false).ok());
    if (model.size() < at + size) model.resize(at + size, '\0');
    model.replace(at, size, piece);
  }
  stop = true;
  reader.join();
  EXPECT_EQ(*ReadAll(store, chunk_id, 1), model);
  return errors.load();
}

TEST_F(ChunkStoreTest, ReadBlocks_ConcurrentWithInPlaceWritesNeverSeesTornBlocks) {
  auto store = OpenStore();
  EXPECT_EQ(FailedReadsDuringInPlaceWrites(*store, 21, 1 << 20, 50, 12345, 70'000), 0);
  // Unaligned and large, so each write mixes a direct middle with buffered
  // ends (direct_writer.h): no read sees a torn or stale block either.
  EXPECT_EQ(FailedReadsDuringInPlaceWrites(*store, 45, 4 << 20, 20, 150'001, 600'000), 0);
}

TEST_F(ChunkStoreTest, Delete_RemovesVersionsAndStatListSeeThem) {
  auto store = OpenStore();
  ASSERT_TRUE(WriteOnce(*store, 30, 1, 0, 0, "a").ok());
  ASSERT_TRUE(WriteOnce(*store, 31, 4, 0, 0, "bb").ok());
  auto list = store->List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1].chunk_id, 31u);
  EXPECT_EQ(list[1].length, 2u);
  EXPECT_EQ(store->chunk_count(), 2u);
  EXPECT_EQ(store->Delete(31, 3).status().code(), StatusCode::kNotFound);
  auto freed = store->Delete(31, 0);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(*freed, kChunkDataOffset + 2);
  EXPECT_EQ(store->Stat(31, 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->Delete(31, 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(CountFiles(".chunk"), 1);
}

TEST_F(ChunkStoreTest, Open_SeveralFoldersAreAllScannedAfterARestart) {
  const std::string second = dir_ + "/disk2";
  const std::string first = dir_ + "/disk1";
  std::filesystem::create_directories(first);
  std::filesystem::create_directories(second);
  ChunkStore::Options options;
  options.folders = {first, second};
  {
    auto store = ChunkStore::Open(options);
    ASSERT_TRUE(store.ok());
    for (uint64_t id = 1; id <= 6; ++id) ASSERT_TRUE(WriteOnce(**store, id, 1, 0, 0, RandomBytes(1000, id)).ok());
  }
  // Move two chunks to the second disk, as if placed there.
  for (uint64_t id : {2, 5}) {
    std::string name = fmt::format("chunks/{:02x}/{:016x}.1.chunk", id, id);
    std::filesystem::create_directories(std::filesystem::path(second + "/" + name).parent_path());
    std::filesystem::rename(first + "/" + name, second + "/" + name);
  }
  auto store = ChunkStore::Open(options);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->chunk_count(), 6u);
  for (uint64_t id = 1; id <= 6; ++id) EXPECT_EQ(*ReadAll(**store, id, 1), RandomBytes(1000, id)) << id;
  EXPECT_TRUE((*store)->TEST_PathOf(5, 1).starts_with(second));
  // A new version of a chunk stays on its disk.
  ASSERT_TRUE(WriteOnce(**store, 5, 2, 1, 0, "x").ok());
  EXPECT_TRUE((*store)->TEST_PathOf(5, 2).starts_with(second));
  EXPECT_EQ((*store)->Disks().size(), 2u);
}

TEST_F(ChunkStoreTest, Open_TruncatedOrForeignFileIsReportedDamaged) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(WriteOnce(*store, 40, 1, 0, 0, "hello").ok());
    ASSERT_EQ(::truncate(store->TEST_PathOf(40, 1).c_str(), 100), 0);
  }
  auto store = OpenStore();
  EXPECT_TRUE(store->Find(40, 1)->damaged);
  EXPECT_EQ(store->TakeNewlyDamaged().size(), 1u);
}

}  // namespace
}  // namespace dfs::chunkserver
