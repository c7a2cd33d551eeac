// Chunk geometry: how a file's bytes map onto chunks and checksum blocks.
//
// A file is a sequence of chunks of at most kChunkSizeBytes (64 MiB); chunk i
// holds file bytes [i * 64 MiB, (i + 1) * 64 MiB). A chunk is checksummed in
// blocks of kBlockSizeBytes (64 KiB), CRC32C each; a chunk is stored only as
// long as its data, so its last block may be short. These constants are part
// of the on-disk and wire formats: changing them is a format change.
//
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace dfs::common {

inline constexpr uint64_t kChunkSizeBytes = uint64_t{64} << 20;
inline constexpr uint64_t kBlockSizeBytes = uint64_t{64} << 10;
inline constexpr uint64_t kBlocksPerChunk = kChunkSizeBytes / kBlockSizeBytes;
// Largest file size dfs accepts: what ext4 allows with 4 KiB blocks (16 TiB).
inline constexpr uint64_t kMaxFileSizeBytes = uint64_t{16} << 40;
// Largest file whose bytes meta may keep in its own database instead of on
// chunkservers (dfs-meta --inline-max is at most this): one block.
inline constexpr uint64_t kMaxInlineBytes = kBlockSizeBytes;

constexpr uint64_t ChunkIndexOf(uint64_t file_offset) { return file_offset / kChunkSizeBytes; }
constexpr uint64_t OffsetInChunk(uint64_t file_offset) { return file_offset % kChunkSizeBytes; }
constexpr uint64_t ChunkStartOffset(uint64_t chunk_index) { return chunk_index * kChunkSizeBytes; }

// Number of chunks a file of `file_size_bytes` has (0 for an empty file).
constexpr uint64_t ChunkCount(uint64_t file_size_bytes) {
  return (file_size_bytes + kChunkSizeBytes - 1) / kChunkSizeBytes;
}

// Blocks [first, first + count) of a chunk touched by the byte range
// [offset, offset + length) of that chunk; count is 0 for an empty range.
struct BlockRange {
  uint64_t first = 0;
  uint64_t count = 0;
  friend bool operator==(const BlockRange&, const BlockRange&) = default;
};
BlockRange BlocksTouched(uint64_t offset_in_chunk, uint64_t length);

// Number of blocks, and size of the last one, of a chunk of `chunk_length` bytes.
constexpr uint64_t BlockCount(uint64_t chunk_length) {
  return (chunk_length + kBlockSizeBytes - 1) / kBlockSizeBytes;
}
// Size of block `block_index` of a chunk of `chunk_length` bytes (0 past the end).
uint64_t BlockLength(uint64_t chunk_length, uint64_t block_index);

// The part of a file byte range that falls into one chunk.
struct ChunkSlice {
  uint64_t chunk_index = 0;
  uint64_t offset_in_chunk = 0;
  uint64_t length = 0;
  uint64_t file_offset = 0;  // where the slice starts in the file
  friend bool operator==(const ChunkSlice&, const ChunkSlice&) = default;
};
// Splits [file_offset, file_offset + length) at chunk boundaries, in order.
std::vector<ChunkSlice> SplitByChunk(uint64_t file_offset, uint64_t length);

}  // namespace dfs::common
