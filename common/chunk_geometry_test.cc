#include "common/chunk_geometry.h"

#include <gtest/gtest.h>

namespace dfs::common {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(ChunkGeometryTest, ChunkIndexOf_SplitsAt64MiB) {
  EXPECT_EQ(ChunkIndexOf(0), 0u);
  EXPECT_EQ(ChunkIndexOf(64 * kMiB - 1), 0u);
  EXPECT_EQ(ChunkIndexOf(64 * kMiB), 1u);
  EXPECT_EQ(OffsetInChunk(64 * kMiB + 5), 5u);
  EXPECT_EQ(ChunkStartOffset(3), 192 * kMiB);
  EXPECT_EQ(ChunkCount(0), 0u);
  EXPECT_EQ(ChunkCount(1), 1u);
  EXPECT_EQ(ChunkCount(64 * kMiB), 1u);
  EXPECT_EQ(ChunkCount(64 * kMiB + 1), 2u);
}

TEST(ChunkGeometryTest, BlocksTouched_CoversPartialBlocks) {
  EXPECT_EQ(BlocksTouched(0, 0).count, 0u);
  EXPECT_EQ(BlocksTouched(0, 1), (BlockRange{0, 1}));
  EXPECT_EQ(BlocksTouched(0, kBlockSizeBytes), (BlockRange{0, 1}));
  EXPECT_EQ(BlocksTouched(kBlockSizeBytes - 1, 2), (BlockRange{0, 2}));
  EXPECT_EQ(BlocksTouched(3 * kBlockSizeBytes, kMiB), (BlockRange{3, 16}));
  EXPECT_EQ(BlocksTouched(0, kChunkSizeBytes), (BlockRange{0, kBlocksPerChunk}));
}

TEST(ChunkGeometryTest, BlockLength_LastBlockMayBeShort) {
  EXPECT_EQ(BlockCount(0), 0u);
  EXPECT_EQ(BlockCount(1), 1u);
  EXPECT_EQ(BlockCount(kBlockSizeBytes + 1), 2u);
  EXPECT_EQ(BlockLength(kBlockSizeBytes + 10, 0), kBlockSizeBytes);
  EXPECT_EQ(BlockLength(kBlockSizeBytes + 10, 1), 10u);
  EXPECT_EQ(BlockLength(kBlockSizeBytes + 10, 2), 0u);
}

TEST(ChunkGeometryTest, SplitByChunk_CutsAtChunkBoundaries) {
  EXPECT_TRUE(SplitByChunk(5, 0).empty());
  auto one = SplitByChunk(10, 100);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], (ChunkSlice{0, 10, 100, 10}));

  // [64 MiB - 4, 192 MiB + 4): the tail of chunk 0, chunks 1 and 2 whole, the head of chunk 3.
  auto four = SplitByChunk(64 * kMiB - 4, 128 * kMiB + 8);
  ASSERT_EQ(four.size(), 4u);
  EXPECT_EQ(four[0], (ChunkSlice{0, 64 * kMiB - 4, 4, 64 * kMiB - 4}));
  EXPECT_EQ(four[1], (ChunkSlice{1, 0, 64 * kMiB, 64 * kMiB}));
  EXPECT_EQ(four[2], (ChunkSlice{2, 0, 64 * kMiB, 128 * kMiB}));
  EXPECT_EQ(four[3], (ChunkSlice{3, 0, 4, 192 * kMiB}));
}

}  // namespace
}  // namespace dfs::common
