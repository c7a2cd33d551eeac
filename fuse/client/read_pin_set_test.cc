#include "fuse/client/read_pin_set.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace dfs::fuse {
namespace {

TEST(ReadPinSetTest, CountsOpensPerInode) {
  ReadPinSet pins;
  EXPECT_TRUE(pins.Pin(5));
  EXPECT_TRUE(pins.Pin(5));
  EXPECT_TRUE(pins.Pin(6));
  std::vector<uint64_t> listed = pins.List();
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, (std::vector<uint64_t>{5, 6}));
  EXPECT_TRUE(pins.Unpin(5));
  EXPECT_EQ(pins.List().size(), 2u);  // one open of 5 left
  EXPECT_TRUE(pins.Unpin(5));
  EXPECT_EQ(pins.List(), (std::vector<uint64_t>{6}));
  EXPECT_FALSE(pins.Unpin(5));
}

TEST(ReadPinSetTest, RefusesNewInodesAtTheLimit) {
  ReadPinSet pins;
  for (uint64_t ino = 1; ino <= ReadPinSet::kMaxInodes; ++ino) ASSERT_TRUE(pins.Pin(ino));
  EXPECT_FALSE(pins.Pin(ReadPinSet::kMaxInodes + 1));
  EXPECT_TRUE(pins.Pin(1));  // another open of a pinned inode costs nothing
  EXPECT_TRUE(pins.Unpin(2));
  EXPECT_TRUE(pins.Pin(ReadPinSet::kMaxInodes + 1));
}

}  // namespace
}  // namespace dfs::fuse
