#include "fuse/client/dir_attr_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

namespace dfs::fuse {
namespace {

pb::Attr Dir(uint64_t ino, int64_t ctime_ns, uint32_t nlink = 2) {
  pb::Attr a;
  a.set_ino(ino);
  a.set_mode(S_IFDIR | 0755);
  a.set_ctime_ns(ctime_ns);
  a.set_mtime_ns(ctime_ns);
  a.set_nlink(nlink);
  return a;
}

class DirAttrCacheTest : public ::testing::Test {
 protected:
  void AdvanceMs(int64_t ms) { clock_.Advance(ms * 1'000'000); }

  common::ManualClock clock_;
  DirAttrCache cache_{1'000, clock_};
};

TEST_F(DirAttrCacheTest, AnswersForTheTimeoutCountedFromThePut) {
  cache_.Put(Dir(5, 100));
  auto fresh = cache_.Get(5);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->attr.ctime_ns(), 100);
  EXPECT_DOUBLE_EQ(fresh->valid_s, 1.0);
  AdvanceMs(600);
  fresh = cache_.Get(5);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_DOUBLE_EQ(fresh->valid_s, 0.4);  // the kernel keeps it only for what is left
  AdvanceMs(400);
  EXPECT_FALSE(cache_.Get(5).has_value());
  EXPECT_FALSE(cache_.Get(6).has_value());
}

TEST_F(DirAttrCacheTest, KeepsOnlyDirectories) {
  pb::Attr file = Dir(7, 100);
  file.set_mode(S_IFREG | 0644);
  cache_.Put(file);
  EXPECT_FALSE(cache_.Get(7).has_value());
}

TEST_F(DirAttrCacheTest, NewerReplacesOlderAndCrossedRepliesForget) {
  cache_.Put(Dir(5, 100, 2));
  cache_.Put(Dir(5, 200, 3));
  EXPECT_EQ(cache_.Get(5)->attr.nlink(), 3u);
  // A reply of an earlier mutation arriving late: neither answer is trusted.
  cache_.Put(Dir(5, 150, 2));
  EXPECT_FALSE(cache_.Get(5).has_value());
  // Two changes stamped with one time (one Raft entry) that differ: forget.
  cache_.Put(Dir(5, 300, 3));
  cache_.Put(Dir(5, 300, 4));
  EXPECT_FALSE(cache_.Get(5).has_value());
  // The same answer twice is fine.
  cache_.Put(Dir(5, 400, 4));
  cache_.Put(Dir(5, 400, 4));
  EXPECT_TRUE(cache_.Get(5).has_value());
}

TEST_F(DirAttrCacheTest, DropAndClear) {
  cache_.Put(Dir(5, 100));
  cache_.Put(Dir(6, 100));
  cache_.Drop(5);
  EXPECT_FALSE(cache_.Get(5).has_value());
  EXPECT_TRUE(cache_.Get(6).has_value());
  cache_.Clear();
  EXPECT_FALSE(cache_.Get(6).has_value());
}

TEST(DirAttrCacheOff, ZeroTimeoutKeepsNothing) {
  common::ManualClock clock;
  DirAttrCache cache(0, clock);
  cache.Put(Dir(5, 100));
  EXPECT_FALSE(cache.Get(5).has_value());
}

TEST(DirAttrCacheBound, ManyDirectoriesStayBounded) {
  common::ManualClock clock;
  DirAttrCache cache(1'000, clock);
  for (uint64_t i = 1; i <= 10'000; ++i) {
    cache.Put(Dir(i, 1));
    clock.Advance(1'000'000);
  }
  // The newest is there; far older ones were swept once expired.
  EXPECT_TRUE(cache.Get(10'000).has_value());
  EXPECT_FALSE(cache.Get(1).has_value());
}

}  // namespace
}  // namespace dfs::fuse
