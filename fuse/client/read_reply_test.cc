#include "fuse/client/read_reply.h"

#include <gtest/gtest.h>

#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/chunk_geometry.h"
#include "common/crc32c.h"

namespace dfs::fuse {
namespace {

using common::kBlockSizeBytes;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::string out(n, '\0');
  std::mt19937_64 rng(seed);
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

std::span<const std::byte> Bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

// What a chunkserver sends for [from, to) of `chunk`: whole blocks, or
// with `exact` the bytes asked for and their PieceCheck terms.
pb::ReadReply Reply(const std::string& chunk, uint64_t from, uint64_t to, bool exact) {
  pb::ReadReply reply;
  reply.set_chunk_length(chunk.size());
  const uint64_t first = from / kBlockSizeBytes;
  const uint64_t last = (to - 1) / kBlockSizeBytes;
  const uint64_t lo = exact ? from : first * kBlockSizeBytes;
  const uint64_t hi = exact ? to : std::min<uint64_t>(chunk.size(), (last + 1) * kBlockSizeBytes);
  reply.set_offset(lo);
  reply.set_data(chunk.substr(lo, hi - lo));
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t start = b * kBlockSizeBytes;
    const std::string_view block = std::string_view(chunk).substr(start, common::BlockLength(chunk.size(), b));
    reply.add_block_crcs(common::Crc32c(Bytes(block)));
    if (!exact) continue;
    const uint64_t piece_from = std::clamp(lo, start, start + block.size());
    const uint64_t piece_to = std::clamp(hi, piece_from, start + block.size());
    common::PieceCheck check = common::Crc32cPieceCheck(Bytes(block), piece_from - start, piece_to - piece_from);
    reply.add_head_crcs(check.head_crc);
    reply.add_tail_terms(check.tail_term);
  }
  return reply;
}

// The bytes CheckReadReply handed on, laid out from `from`, and whether it
// passed.
std::pair<common::Status, std::string> Check(const pb::ReadReply& reply, bool exact, uint64_t from) {
  std::string got;
  common::Status s = CheckReadReply(reply, exact, [&](uint64_t at, std::string_view piece) {
    EXPECT_EQ(at, from + got.size()) << "pieces out of order";
    got.append(piece);
  });
  return {s, got};
}

TEST(CheckReadReply, ExactPiecesAcrossBlocksAndAtTheChunkEnd) {
  const std::string chunk = RandomBytes(5 * kBlockSizeBytes + 1'000, 1);  // a short last block
  const std::vector<std::pair<uint64_t, uint64_t>> ranges = {
      {100, 4'196},                                    // inside one block
      {kBlockSizeBytes - 10, kBlockSizeBytes + 10},    // across a boundary
      {0, kBlockSizeBytes},                            // one whole block
      {70'000, 4 * kBlockSizeBytes + 5},               // whole blocks between two parts
      {5 * kBlockSizeBytes + 3, chunk.size()},         // part of the short last block
  };
  for (const auto& [from, to] : ranges) {
    auto [s, got] = Check(Reply(chunk, from, to, /*exact=*/true), /*exact=*/true, from);
    ASSERT_TRUE(s.ok()) << from << "-" << to << ": " << s.ToString();
    EXPECT_TRUE(got == chunk.substr(from, to - from)) << from << "-" << to;
  }
}

TEST(CheckReadReply, AFlippedBitFailsAndHandsNothingOnFromThatPiece) {
  const std::string chunk = RandomBytes(3 * kBlockSizeBytes, 2);
  const uint64_t from = kBlockSizeBytes - 100, to = kBlockSizeBytes + 4'000;
  for (size_t at : {size_t{0}, size_t{99}, size_t{100}, size_t{4'099}}) {
    pb::ReadReply reply = Reply(chunk, from, to, true);
    (*reply.mutable_data())[at] ^= 0x10;
    auto [s, got] = Check(reply, true, from);
    EXPECT_EQ(s.code(), common::StatusCode::kDataLoss) << "byte " << at;
    // Pieces before the bad one were good; the bad one never came out.
    EXPECT_LE(got.size(), at) << "byte " << at;
  }
  // A term that does not belong to the piece.
  pb::ReadReply reply = Reply(chunk, from, to, true);
  reply.set_tail_terms(1, reply.tail_terms(1) ^ 1);
  EXPECT_EQ(Check(reply, true, from).first.code(), common::StatusCode::kDataLoss);
}

TEST(CheckReadReply, WholeBlocksFromAnOlderChunkserverPassAnExactRead) {
  // A chunkserver that predates exact reads widens the range and sends no terms.
  const std::string chunk = RandomBytes(3 * kBlockSizeBytes, 3);
  auto [s, got] = Check(Reply(chunk, 5'000, 9'000, /*exact=*/false), /*exact=*/true, 0);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(got == chunk.substr(0, kBlockSizeBytes));
}

TEST(CheckReadReply, PartialBlocksNeedTermsAndAnExactRequest) {
  const std::string chunk = RandomBytes(3 * kBlockSizeBytes, 4);
  pb::ReadReply no_terms = Reply(chunk, 5'000, 9'000, true);
  no_terms.clear_head_crcs();
  no_terms.clear_tail_terms();
  EXPECT_EQ(Check(no_terms, true, 5'000).first.code(), common::StatusCode::kDataLoss);
  // Good terms, but the reader wanted whole blocks to cache.
  EXPECT_EQ(Check(Reply(chunk, 5'000, 9'000, true), /*exact=*/false, 5'000).first.code(),
            common::StatusCode::kDataLoss);
  // A partial block whose own CRC is sent as if it were the block's.
  pb::ReadReply forged = Reply(chunk, 0, 4'096, true);
  forged.set_block_crcs(0, common::Crc32c(Bytes(forged.data())));
  forged.clear_head_crcs();
  forged.clear_tail_terms();
  EXPECT_EQ(Check(forged, true, 0).first.code(), common::StatusCode::kDataLoss);
}

TEST(CheckReadReply, BytesNoCrcCoversAreDataLoss) {
  const std::string chunk = RandomBytes(2 * kBlockSizeBytes, 5);
  pb::ReadReply reply = Reply(chunk, 0, 2 * kBlockSizeBytes, false);
  reply.mutable_block_crcs()->RemoveLast();  // two blocks of data, one CRC
  EXPECT_EQ(Check(reply, false, 0).first.code(), common::StatusCode::kDataLoss);
  pb::ReadReply past_end = Reply(chunk, 0, kBlockSizeBytes, false);
  past_end.set_chunk_length(100);  // data beyond the length it claims
  EXPECT_EQ(Check(past_end, false, 0).first.code(), common::StatusCode::kDataLoss);
}

// A sparse chunk's holes, sent as a count of zero blocks with their stored
// CRCs: handed on as zero blocks, once each CRC is a zero block's.
TEST(CheckReadReply, ZeroBlocksSentAsACount) {
  const std::string zeros(3 * kBlockSizeBytes, '\0');
  pb::ReadReply reply = Reply(zeros + RandomBytes(100, 6), kBlockSizeBytes, 3 * kBlockSizeBytes, false);
  reply.clear_data();
  reply.set_zero_blocks(2);
  EXPECT_EQ(ReplyBytes(reply), 2 * kBlockSizeBytes);
  auto [ok, got] = Check(reply, false, kBlockSizeBytes);
  EXPECT_TRUE(ok.ok()) << ok.ToString();
  EXPECT_TRUE(got == std::string(2 * kBlockSizeBytes, '\0'));
  // A block whose stored CRC is not a zero block's was not zeros on disk.
  pb::ReadReply lying = reply;
  lying.set_block_crcs(1, lying.block_crcs(1) ^ 1);
  auto [bad, none] = Check(lying, false, kBlockSizeBytes);
  EXPECT_EQ(bad.code(), common::StatusCode::kDataLoss);
  EXPECT_TRUE(none.empty());
  // Malformed: data as well, a CRC missing, past the chunk's end, or in
  // answer to an exact read.
  pb::ReadReply with_data = reply;
  with_data.set_data("x");
  EXPECT_EQ(Check(with_data, false, kBlockSizeBytes).first.code(), common::StatusCode::kDataLoss);
  pb::ReadReply short_crcs = reply;
  short_crcs.mutable_block_crcs()->RemoveLast();
  EXPECT_EQ(Check(short_crcs, false, kBlockSizeBytes).first.code(), common::StatusCode::kDataLoss);
  pb::ReadReply past_end = reply;
  past_end.set_chunk_length(2 * kBlockSizeBytes);
  EXPECT_EQ(Check(past_end, false, kBlockSizeBytes).first.code(), common::StatusCode::kDataLoss);
  EXPECT_EQ(Check(reply, true, kBlockSizeBytes).first.code(), common::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace dfs::fuse
