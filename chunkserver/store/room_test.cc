#include "chunkserver/store/room.h"

#include <gtest/gtest.h>

namespace dfs::chunkserver {
namespace {

DiskStats Disk(uint64_t available, bool healthy = true) {
  DiskStats d;
  d.path = "/d";
  d.capacity_bytes = 1000;
  d.available_bytes = available;
  d.healthy = healthy;
  return d;
}

TEST(ShortOfRoomTest, BelowTheLineIsShortAndStaysShortUntilAQuarterMore) {
  EXPECT_FALSE(ShortOfRoom(false, {Disk(100)}, 100));
  EXPECT_TRUE(ShortOfRoom(false, {Disk(99)}, 100));
  // Hysteresis: short until 125.
  EXPECT_TRUE(ShortOfRoom(true, {Disk(100)}, 100));
  EXPECT_TRUE(ShortOfRoom(true, {Disk(124)}, 100));
  EXPECT_FALSE(ShortOfRoom(true, {Disk(125)}, 100));
}

TEST(ShortOfRoomTest, TheFolderWithTheMostRoomDecides) {
  EXPECT_FALSE(ShortOfRoom(false, {Disk(10), Disk(500)}, 100));
  EXPECT_TRUE(ShortOfRoom(false, {Disk(60), Disk(60)}, 100)) << "a chunk goes to one folder, not to their sum";
  EXPECT_TRUE(ShortOfRoom(false, {Disk(10), Disk(500, /*healthy=*/false)}, 100)) << "a broken folder takes nothing";
}

TEST(ShortOfRoomTest, ZeroTurnsItOffAndNoMeasureIsNoVerdict) {
  EXPECT_FALSE(ShortOfRoom(false, {Disk(0)}, 0));
  EXPECT_FALSE(ShortOfRoom(true, {Disk(0)}, 0));
  EXPECT_FALSE(ShortOfRoom(false, {}, 100));
  EXPECT_FALSE(ShortOfRoom(true, {Disk(0, /*healthy=*/false)}, 100));
}

}  // namespace
}  // namespace dfs::chunkserver
