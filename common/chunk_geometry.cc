#include "common/chunk_geometry.h"

#include <algorithm>

namespace dfs::common {

BlockRange BlocksTouched(uint64_t offset_in_chunk, uint64_t length) {
  if (length == 0) return {offset_in_chunk / kBlockSizeBytes, 0};
  uint64_t first = offset_in_chunk / kBlockSizeBytes;
  uint64_t last = (offset_in_chunk + length - 1) / kBlockSizeBytes;
  return {first, last - first + 1};
}

uint64_t BlockLength(uint64_t chunk_length, uint64_t block_index) {
  uint64_t start = block_index * kBlockSizeBytes;
  if (start >= chunk_length) return 0;
  return std::min(kBlockSizeBytes, chunk_length - start);
}

std::vector<ChunkSlice> SplitByChunk(uint64_t file_offset, uint64_t length) {
  std::vector<ChunkSlice> out;
  uint64_t pos = file_offset;
  uint64_t end = file_offset + length;
  while (pos < end) {
    uint64_t in_chunk = OffsetInChunk(pos);
    uint64_t n = std::min(end - pos, kChunkSizeBytes - in_chunk);
    out.push_back({ChunkIndexOf(pos), in_chunk, n, pos});
    pos += n;
  }
  return out;
}

}  // namespace dfs::common
