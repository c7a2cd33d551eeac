#include "fuse/client/page_cache.h"

#include <gtest/gtest.h>

namespace dfs::fuse {
namespace {

Block MakeBlock(size_t size, char fill) { return std::make_shared<const std::string>(size, fill); }

TEST(PageCacheTest, Get_ReturnsWhatWasPut) {
  PageCache cache(1 << 20);
  cache.Put({1, 2, 3}, MakeBlock(100, 'a'));
  ASSERT_NE(cache.Get({1, 2, 3}), nullptr);
  EXPECT_EQ(*cache.Get({1, 2, 3}), std::string(100, 'a'));
  EXPECT_EQ(cache.Get({1, 3, 3}), nullptr);  // another version is another key
  EXPECT_EQ(cache.size_bytes(), 100u);
}

TEST(PageCacheTest, Put_EvictsLeastRecentlyUsed) {
  PageCache cache(300);
  cache.Put({1, 1, 0}, MakeBlock(100, 'a'));
  cache.Put({1, 1, 1}, MakeBlock(100, 'b'));
  cache.Put({1, 1, 2}, MakeBlock(100, 'c'));
  ASSERT_NE(cache.Get({1, 1, 0}), nullptr);  // now most recent
  cache.Put({1, 1, 3}, MakeBlock(100, 'd'));  // evicts block 1
  EXPECT_EQ(cache.Get({1, 1, 1}), nullptr);
  EXPECT_NE(cache.Get({1, 1, 0}), nullptr);
  EXPECT_NE(cache.Get({1, 1, 3}), nullptr);
  EXPECT_LE(cache.size_bytes(), 300u);
}

TEST(PageCacheTest, Put_ReplacesSameKey) {
  PageCache cache(1000);
  cache.Put({1, 1, 0}, MakeBlock(100, 'a'));
  cache.Put({1, 1, 0}, MakeBlock(50, 'b'));
  EXPECT_EQ(cache.size_bytes(), 50u);
  EXPECT_EQ(*cache.Get({1, 1, 0}), std::string(50, 'b'));
}

TEST(PageCacheTest, DropChunk_RemovesEveryVersion) {
  PageCache cache(1000);
  cache.Put({7, 1, 0}, MakeBlock(10, 'a'));
  cache.Put({7, 2, 0}, MakeBlock(10, 'b'));
  cache.Put({8, 1, 0}, MakeBlock(10, 'c'));
  cache.DropChunk(7);
  EXPECT_EQ(cache.Get({7, 1, 0}), nullptr);
  EXPECT_EQ(cache.Get({7, 2, 0}), nullptr);
  EXPECT_NE(cache.Get({8, 1, 0}), nullptr);
  EXPECT_EQ(cache.size_bytes(), 10u);
}

// One version read under two stamps (the file's ctime at two opens): two
// keys, and DropChunk drops both.
TEST(PageCacheTest, AnotherStampIsAnotherKey) {
  PageCache cache(1000);
  cache.Put({7, 1, 0, 100}, MakeBlock(10, 'a'));
  EXPECT_EQ(cache.Get({7, 1, 0, 200}), nullptr);
  cache.Put({7, 1, 0, 200}, MakeBlock(10, 'b'));
  EXPECT_EQ(*cache.Get({7, 1, 0, 100}), std::string(10, 'a'));
  EXPECT_EQ(*cache.Get({7, 1, 0, 200}), std::string(10, 'b'));
  cache.DropChunk(7);
  EXPECT_EQ(cache.Get({7, 1, 0, 100}), nullptr);
  EXPECT_EQ(cache.Get({7, 1, 0, 200}), nullptr);
  EXPECT_EQ(cache.size_bytes(), 0u);
}

TEST(PageCacheTest, EvictedBlock_StaysAliveForReader) {
  PageCache cache(100);
  cache.Put({1, 1, 0}, MakeBlock(100, 'a'));
  Block held = cache.Get({1, 1, 0});
  cache.Put({1, 1, 1}, MakeBlock(100, 'b'));
  EXPECT_EQ(cache.Get({1, 1, 0}), nullptr);
  EXPECT_EQ(*held, std::string(100, 'a'));
}

}  // namespace
}  // namespace dfs::fuse
