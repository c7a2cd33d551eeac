#include "meta/service/member_rooms.h"

#include <gtest/gtest.h>

namespace dfs::meta {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(MemberRoomsTest, FreshReportsSayWhoIsShort) {
  MemberRooms rooms;
  rooms.Report(2, {100, true}, 0);
  rooms.Report(3, {5000, false}, 0);
  EXPECT_EQ(rooms.Short({1, 2, 3}, kSecond), (std::vector<uint64_t>{2}));
  EXPECT_TRUE(rooms.AnyShort(kSecond));
  ASSERT_TRUE(rooms.Of(3, kSecond).has_value());
  EXPECT_EQ(rooms.Of(3, kSecond)->free_bytes, 5000u);
  EXPECT_FALSE(rooms.Of(1, kSecond).has_value()) << "never heard";
  EXPECT_TRUE(rooms.Short({1, 3}, kSecond).empty()) << "only the voters asked about";
  // A report goes stale: a silent member counts as having room.
  EXPECT_TRUE(rooms.Short({1, 2, 3}, MemberRooms::kFreshNs + kSecond).empty());
  EXPECT_FALSE(rooms.AnyShort(MemberRooms::kFreshNs + kSecond));
  rooms.Report(2, {900, false}, 2 * kSecond);
  EXPECT_TRUE(rooms.Short({1, 2, 3}, 3 * kSecond).empty()) << "room again";
  rooms.Report(2, {100, true}, 4 * kSecond);
  rooms.Clear();
  EXPECT_TRUE(rooms.Short({1, 2, 3}, 4 * kSecond).empty());
}

TEST(MemberRoomsTest, AMajorityWithRoomIsNeeded) {
  EXPECT_TRUE(MajorityHasRoom(3, 0));
  EXPECT_TRUE(MajorityHasRoom(3, 1)) << "one short follower: it may stop, two go on";
  EXPECT_FALSE(MajorityHasRoom(3, 2));
  EXPECT_TRUE(MajorityHasRoom(5, 2));
  EXPECT_FALSE(MajorityHasRoom(5, 3));
  EXPECT_FALSE(MajorityHasRoom(1, 1));
  EXPECT_TRUE(MajorityHasRoom(1, 0));
  EXPECT_FALSE(MajorityHasRoom(2, 1));
  EXPECT_FALSE(MajorityHasRoom(3, 7)) << "more than there are";
}

}  // namespace
}  // namespace dfs::meta
