#include "chunkserver/service/scrubber.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "chunkserver/store/test_util.h"

namespace dfs::chunkserver {
namespace {

using testing::RandomBytes;
using testing::WriteOnce;

class ScrubberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dfs-scrub-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ChunkStore::Options options;
    options.folders = {dir_};
    auto store = ChunkStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void FlipByte(uint64_t chunk, uint64_t version, uint64_t data_offset) {
    int fd = ::open(store_->TEST_PathOf(chunk, version).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c = 0;
    ASSERT_EQ(::pread(fd, &c, 1, kChunkDataOffset + data_offset), 1);
    c ^= 0x01;
    ASSERT_EQ(::pwrite(fd, &c, 1, kChunkDataOffset + data_offset), 1);
    ::close(fd);
  }
  template <typename Pred>
  bool WaitFor(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  std::string dir_;
  std::unique_ptr<ChunkStore> store_;
};

TEST_F(ScrubberTest, FindsARottenBlockNobodyReadsAndQueuesItForMeta) {
  ASSERT_TRUE(WriteOnce(*store_, 1, 1, 0, 0, RandomBytes(3 << 20, 1)).ok());
  ASSERT_TRUE(WriteOnce(*store_, 2, 4, 0, 0, RandomBytes(100'000, 2)).ok());
  FlipByte(1, 1, (2 << 20) + 12345);  // block 32 of chunk 1
  Scrubber scrubber(*store_, {.bytes_per_s = 1e9, .pause_ms = 10});
  ASSERT_TRUE(WaitFor([&] { return scrubber.stats().passes >= 1; }));
  Scrubber::Stats stats = scrubber.stats();
  EXPECT_EQ(stats.damaged, 1u);
  EXPECT_GE(stats.chunks, 2u);
  std::vector<ChunkMeta> damaged = store_->TakeNewlyDamaged();
  ASSERT_EQ(damaged.size(), 1u);
  EXPECT_EQ(damaged[0].chunk_id, 1u);
  EXPECT_EQ(damaged[0].version, 1u);
  // A damaged version is reported once, not again on every pass.
  ASSERT_TRUE(WaitFor([&] { return scrubber.stats().passes >= 3; }));
  EXPECT_EQ(scrubber.stats().damaged, 1u);
  EXPECT_TRUE(store_->TakeNewlyDamaged().empty());
}

TEST_F(ScrubberTest, KeepsToItsByteBudget) {
  ASSERT_TRUE(WriteOnce(*store_, 1, 1, 0, 0, RandomBytes(4 << 20, 3)).ok());
  // 8 MiB/s with an 8 MiB burst: the first pass is free, the next three
  // 4 MiB passes must take about a second between them.
  auto start = std::chrono::steady_clock::now();
  Scrubber scrubber(*store_, {.bytes_per_s = 8 << 20, .pause_ms = 0});
  ASSERT_TRUE(WaitFor([&] { return scrubber.stats().passes >= 4; }));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_EQ(scrubber.stats().damaged, 0u);
}

}  // namespace
}  // namespace dfs::chunkserver
