#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string_view>
#include <vector>

#include "common/chunk_geometry.h"

namespace dfs::common {
namespace {

std::span<const std::byte> Bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::vector<std::byte> RandomBytes(size_t n, uint64_t seed) {
  std::vector<std::byte> out(n);
  std::mt19937_64 rng(seed);
  for (auto& b : out) b = static_cast<std::byte>(rng());
  return out;
}

// Published vectors: the CRC catalogue check value, and RFC 3720 B.4.
TEST(Crc32cTest, Crc32c_MatchesPublishedVectors) {
  EXPECT_EQ(Crc32c(Bytes("123456789")), 0xE3069283u);
  EXPECT_EQ(Crc32c(Bytes("")), 0u);

  std::vector<std::byte> buf(32, std::byte{0});
  EXPECT_EQ(Crc32c(buf), 0x8A9136AAu);
  std::fill(buf.begin(), buf.end(), std::byte{0xff});
  EXPECT_EQ(Crc32c(buf), 0x62A8AB43u);
  for (size_t i = 0; i < 32; ++i) buf[i] = static_cast<std::byte>(i);
  EXPECT_EQ(Crc32c(buf), 0x46DD794Eu);
  for (size_t i = 0; i < 32; ++i) buf[i] = static_cast<std::byte>(31 - i);
  EXPECT_EQ(Crc32c(buf), 0x113FDB5Cu);
}

TEST(Crc32cTest, Extend_EqualsWholeComputation) {
  auto data = RandomBytes(200'000, 1);
  uint32_t whole = Crc32c(data);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{65536}, size_t{199'999}, data.size()}) {
    std::span<const std::byte> all(data);
    uint32_t crc = Crc32cExtend(Crc32c(all.first(cut)), all.subspan(cut));
    EXPECT_EQ(crc, whole) << "cut at " << cut;
  }
}

TEST(Crc32cTest, Patched_EqualsFullRecompute) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 300; ++round) {
    size_t block_size = rng() % (kBlockSizeBytes + 1);
    auto block = RandomBytes(block_size, rng());
    size_t offset = block_size == 0 ? 0 : rng() % (block_size + 1);
    size_t patch_size = rng() % (kBlockSizeBytes - offset + 1);
    auto patch = RandomBytes(patch_size, rng());

    std::vector<std::byte> expected(block);
    if (offset + patch_size > expected.size()) expected.resize(offset + patch_size);
    std::memcpy(expected.data() + offset, patch.data(), patch_size);

    EXPECT_EQ(Crc32cPatched(block, offset, patch), Crc32c(expected))
        << "block " << block_size << " offset " << offset << " patch " << patch_size;
  }
}

TEST(Crc32cTest, Patched_DetectsChange) {
  auto block = RandomBytes(kBlockSizeBytes, 3);
  std::vector<std::byte> patch(10, std::byte{0x5a});
  EXPECT_NE(Crc32cPatched(block, 100, patch), Crc32c(block));
}

TEST(Crc32cTest, PieceCheck_MatchesTheStoredCrcOfTheWholeBlock) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 300; ++round) {
    // Short blocks too: the last block of a chunk.
    size_t block_size = round % 3 == 0 ? kBlockSizeBytes : rng() % (kBlockSizeBytes + 1);
    auto block = RandomBytes(block_size, rng());
    size_t offset = rng() % (block_size + 1);
    size_t size = rng() % (block_size - offset + 1);
    std::span<const std::byte> piece = std::span(block).subspan(offset, size);
    PieceCheck check = Crc32cPieceCheck(block, offset, size);
    EXPECT_TRUE(Crc32cPieceMatches(Crc32c(block), block_size, offset, piece, check))
        << "block " << block_size << " offset " << offset << " size " << size;
  }
}

TEST(Crc32cTest, PieceCheck_FailsForAnyFlippedBitOrWrongPlace) {
  auto block = RandomBytes(kBlockSizeBytes, 5);
  const uint32_t stored = Crc32c(block);
  const size_t offset = 12'345;
  const size_t size = 4'096;
  PieceCheck check = Crc32cPieceCheck(block, offset, size);
  std::vector<std::byte> piece(block.begin() + offset, block.begin() + offset + size);
  ASSERT_TRUE(Crc32cPieceMatches(stored, block.size(), offset, piece, check));
  for (size_t bit : {size_t{0}, size_t{7}, size_t{4'000 * 8 + 3}, size * 8 - 1}) {
    std::vector<std::byte> bad(piece);
    bad[bit / 8] ^= std::byte(1u << (bit % 8));
    EXPECT_FALSE(Crc32cPieceMatches(stored, block.size(), offset, bad, check)) << "bit " << bit;
  }
  // The right bytes claimed at another offset, or a shorter block.
  EXPECT_FALSE(Crc32cPieceMatches(stored, block.size(), offset + 1, piece, check));
  EXPECT_FALSE(Crc32cPieceMatches(stored, block.size() - 1, offset, piece, check));
  // A piece that cannot fit in the block.
  EXPECT_FALSE(Crc32cPieceMatches(stored, 100, 50, piece, check));
  // The whole block as its own piece needs no terms.
  PieceCheck whole = Crc32cPieceCheck(block, 0, block.size());
  EXPECT_EQ(whole.head_crc, 0u);
  EXPECT_EQ(whole.tail_term, 0u);
}

TEST(Crc32cTest, PieceCrcs_CutAtBlockBoundaries) {
  constexpr size_t kBlock = 16;
  auto data = RandomBytes(40, 9);
  // Range [10, 50) of a chunk with 16-byte blocks: pieces [10,16) [16,32) [32,48) [48,50).
  ASSERT_EQ(PieceCount(10, data.size(), kBlock), 4u);
  std::vector<uint32_t> crcs(4);
  PieceCrcs(10, data, kBlock, crcs);
  std::span<const std::byte> d(data);
  EXPECT_EQ(crcs[0], Crc32c(d.subspan(0, 6)));
  EXPECT_EQ(crcs[1], Crc32c(d.subspan(6, 16)));
  EXPECT_EQ(crcs[2], Crc32c(d.subspan(22, 16)));
  EXPECT_EQ(crcs[3], Crc32c(d.subspan(38, 2)));
  EXPECT_EQ(PieceCount(0, 0, kBlock), 0u);
  EXPECT_EQ(PieceCount(0, 16, kBlock), 1u);
  EXPECT_EQ(PieceCount(15, 2, kBlock), 2u);
}

}  // namespace
}  // namespace dfs::common
