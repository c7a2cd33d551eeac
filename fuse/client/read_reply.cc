#include "fuse/client/read_reply.h"

#include <algorithm>
#include <span>
#include <string>

#include "common/chunk_geometry.h"
#include "common/crc32c.h"

namespace dfs::fuse {

uint64_t ReplyBytes(const pb::ReadReply& reply) {
  return reply.zero_blocks() != 0 ? reply.zero_blocks() * common::kBlockSizeBytes : reply.data().size();
}

namespace {

// A message that stands for whole zero blocks (ReadReply.zero_blocks): each
// stored CRC must be a zero block's, as a block of zeros sent would have to.
common::Status CheckZeroBlocks(const pb::ReadReply& reply, bool exact, const PieceSink& take) {
  static const std::string kZeroBlock(common::kBlockSizeBytes, '\0');
  static const uint32_t kZeroBlockCrc = common::Crc32c(kZeroBlock.data(), kZeroBlock.size());
  const uint64_t first_block = reply.offset() / common::kBlockSizeBytes;
  if (exact || !reply.data().empty() || reply.offset() % common::kBlockSizeBytes != 0 ||
      static_cast<uint64_t>(reply.block_crcs_size()) != reply.zero_blocks() ||
      (first_block + reply.zero_blocks()) * common::kBlockSizeBytes > reply.chunk_length()) {
    return common::DataLossError("malformed zero blocks at offset " + std::to_string(reply.offset()));
  }
  for (int i = 0; i < reply.block_crcs_size(); ++i) {
    if (reply.block_crcs(i) != kZeroBlockCrc) {
      return common::DataLossError("block " + std::to_string(first_block + static_cast<uint64_t>(i)) +
                                   " sent as zeros has another CRC");
    }
  }
  for (uint64_t i = 0; i < reply.zero_blocks(); ++i) take((first_block + i) * common::kBlockSizeBytes, kZeroBlock);
  return common::Status::Ok();
}

}  // namespace

common::Status CheckReadReply(const pb::ReadReply& reply, bool exact, const PieceSink& take) {
  if (reply.zero_blocks() != 0) return CheckZeroBlocks(reply, exact, take);
  const std::string& data = reply.data();
  const uint64_t data_end = reply.offset() + data.size();
  const bool has_terms = exact && reply.head_crcs_size() > 0 && reply.head_crcs_size() == reply.block_crcs_size() &&
                         reply.tail_terms_size() == reply.block_crcs_size();
  uint64_t pos = reply.offset();
  const uint64_t first_block = reply.offset() / common::kBlockSizeBytes;
  for (int i = 0; i < reply.block_crcs_size() && pos < data_end; ++i) {
    const uint64_t block = first_block + static_cast<uint64_t>(i);
    const uint64_t block_start = block * common::kBlockSizeBytes;
    const uint64_t block_size = common::BlockLength(reply.chunk_length(), block);
    const uint64_t piece_end = std::min(data_end, block_start + block_size);
    if (piece_end <= pos) break;  // data past the chunk's length: caught below
    const std::string_view piece(data.data() + (pos - reply.offset()), piece_end - pos);
    const auto bytes = std::as_bytes(std::span(piece.data(), piece.size()));
    const bool whole = pos == block_start && piece.size() == block_size;
    const bool good = has_terms ? common::Crc32cPieceMatches(reply.block_crcs(i), block_size, pos - block_start,
                                                             bytes, {reply.head_crcs(i), reply.tail_terms(i)})
                                : whole && common::Crc32c(bytes) == reply.block_crcs(i);
    if (!good) return common::DataLossError("block " + std::to_string(block) + " failed its CRC32C on the client");
    take(pos, piece);
    pos = piece_end;
  }
  if (pos != data_end) {
    return common::DataLossError("reply at offset " + std::to_string(reply.offset()) +
                                 " carries bytes no CRC covers");
  }
  return common::Status::Ok();
}

}  // namespace dfs::fuse
