#include "fuse/client/remote_changes.h"

#include <gtest/gtest.h>

namespace dfs::fuse {
namespace {

TEST(RemoteChanges, AFetchBeforeANoticeIsStaleOnlyForWhatTheNoticeNamed) {
  RemoteChanges changes;
  const uint64_t before = changes.Now();
  changes.Note({10, 11}, false);
  EXPECT_FALSE(changes.Current(10, before));
  EXPECT_FALSE(changes.Current(11, before));
  EXPECT_TRUE(changes.Current(12, before));  // another directory: still usable
  EXPECT_FALSE(changes.Current(std::vector<uint64_t>{12, 11}, before));
  EXPECT_TRUE(changes.Current(std::vector<uint64_t>{12, 13}, before));
  const uint64_t after = changes.Now();
  EXPECT_TRUE(changes.Current(10, after));  // fetched after the notice was heard
  EXPECT_TRUE(changes.Current(std::vector<uint64_t>{10, 11, 12}, after));
  changes.Note({10}, false);
  EXPECT_FALSE(changes.Current(10, after));
  EXPECT_TRUE(changes.Current(11, after));
}

TEST(RemoteChanges, MissedNoticesEndEverythingFetchedBefore) {
  RemoteChanges changes;
  const uint64_t before = changes.Now();
  changes.Note({}, /*all=*/true);
  EXPECT_FALSE(changes.Current(1, before));
  EXPECT_TRUE(changes.Current(1, changes.Now()));
}

TEST(RemoteChanges, TooManyMarksEndEverythingFetchedBeforeAndStayBounded) {
  RemoteChanges changes(/*max_ids=*/4);
  const uint64_t before = changes.Now();
  changes.Note({1, 2, 3}, false);
  EXPECT_EQ(changes.TEST_Marks(), 3u);
  EXPECT_TRUE(changes.Current(9, before));
  const uint64_t middle = changes.Now();
  changes.Note({4, 5}, false);  // one too many
  EXPECT_LE(changes.TEST_Marks(), 4u);
  EXPECT_FALSE(changes.Current(9, before));
  EXPECT_FALSE(changes.Current(9, middle));
  EXPECT_TRUE(changes.Current(4, changes.Now()));
}

}  // namespace
}  // namespace dfs::fuse
