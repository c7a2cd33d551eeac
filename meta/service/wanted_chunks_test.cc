#include "meta/service/wanted_chunks.h"

#include <gtest/gtest.h>

namespace dfs::meta {
namespace {

TEST(WantedChunksTest, ARefusalCountsForItsWindowAndOnlyForItsChunk) {
  WantedChunks wanted(3000);
  EXPECT_FALSE(wanted.Wanted(7, 0, 1000));
  wanted.Refused(7, 0, 1000);
  EXPECT_TRUE(wanted.Wanted(7, 0, 1000));
  EXPECT_TRUE(wanted.Wanted(7, 0, 4000));
  EXPECT_FALSE(wanted.Wanted(7, 0, 4001));
  EXPECT_FALSE(wanted.Wanted(7, 1, 1000));
  EXPECT_FALSE(wanted.Wanted(8, 0, 1000));
  wanted.Refused(7, 0, 5000);  // a waiter that keeps asking stays wanted
  EXPECT_TRUE(wanted.Wanted(7, 0, 7000));
}

TEST(WantedChunksTest, OldRefusalsArePrunedOnceThereAreMany) {
  WantedChunks wanted(100);
  for (uint64_t i = 0; i < 5000; ++i) wanted.Refused(i, 0, static_cast<int64_t>(i) * 1000);
  EXPECT_LE(wanted.size(), 1025u);
  EXPECT_TRUE(wanted.Wanted(4999, 0, 4'999'000));
}

}  // namespace
}  // namespace dfs::meta
