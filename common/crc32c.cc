#include "common/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <cstdlib>

namespace dfs::common {
namespace {

// ISA-L's crc32_iscsi neither pre- nor post-inverts: passing the running CRC
// complemented in and complementing the result gives the standard CRC32C and
// makes chaining trivial.
uint32_t Raw(uint32_t crc, const std::byte* data, size_t size) {
  if (size == 0) return crc;
  // ISA-L takes int lengths; feed large buffers in pieces.
  constexpr size_t kMaxPiece = size_t{1} << 30;
  uint32_t state = ~crc;
  while (size > 0) {
    size_t n = std::min(size, kMaxPiece);
    state = crc32_iscsi(reinterpret_cast<unsigned char*>(const_cast<std::byte*>(data)),
                        static_cast<int>(n), state);
    data += n;
    size -= n;
  }
  return ~state;
}

// Continues `crc` over `size` zero bytes.
uint32_t ExtendZeros(uint32_t crc, size_t size) {
  static constexpr std::byte kZeros[4096] = {};
  while (size > 0) {
    size_t n = std::min(size, sizeof kZeros);
    crc = Raw(crc, kZeros, n);
    size -= n;
  }
  return crc;
}

}  // namespace

uint32_t Crc32c(std::span<const std::byte> data) { return Raw(0, data.data(), data.size()); }

uint32_t Crc32c(const void* data, size_t size_bytes) {
  return Raw(0, static_cast<const std::byte*>(data), size_bytes);
}

uint32_t Crc32cExtend(uint32_t crc, std::span<const std::byte> data) {
  return Raw(crc, data.data(), data.size());
}

uint32_t Crc32cPatched(std::span<const std::byte> block, size_t patch_offset,
                       std::span<const std::byte> patch) {
  if (patch_offset > block.size()) std::abort();  // contract: no gap before the patch
  uint32_t crc = Raw(0, block.data(), patch_offset);
  crc = Raw(crc, patch.data(), patch.size());
  size_t patch_end = patch_offset + patch.size();
  if (patch_end < block.size()) crc = Raw(crc, block.data() + patch_end, block.size() - patch_end);
  return crc;
}

PieceCheck Crc32cPieceCheck(std::span<const std::byte> block, size_t piece_offset, size_t piece_size) {
  if (piece_offset > block.size() || piece_size > block.size() - piece_offset) std::abort();  // contract
  PieceCheck check;
  check.head_crc = Raw(0, block.data(), piece_offset);
  const size_t tail_from = piece_offset + piece_size;
  if (tail_from < block.size()) {
    check.tail_term = Raw(ExtendZeros(0, tail_from), block.data() + tail_from, block.size() - tail_from) ^
                      ExtendZeros(0, block.size());
  }
  return check;
}

bool Crc32cPieceMatches(uint32_t block_crc, size_t block_size, size_t piece_offset,
                        std::span<const std::byte> piece, const PieceCheck& check) {
  if (piece_offset > block_size || piece.size() > block_size - piece_offset) return false;
  uint32_t crc = Raw(check.head_crc, piece.data(), piece.size());
  crc = ExtendZeros(crc, block_size - piece_offset - piece.size());
  return (crc ^ check.tail_term) == block_crc;
}

size_t PieceCount(uint64_t offset, size_t size_bytes, size_t block_size_bytes) {
  if (size_bytes == 0) return 0;
  uint64_t first = offset / block_size_bytes;
  uint64_t last = (offset + size_bytes - 1) / block_size_bytes;
  return static_cast<size_t>(last - first + 1);
}

void PieceCrcs(uint64_t offset, std::span<const std::byte> data, size_t block_size_bytes,
               std::span<uint32_t> out) {
  size_t pos = 0;
  size_t i = 0;
  while (pos < data.size()) {
    uint64_t in_block = (offset + pos) % block_size_bytes;
    size_t n = std::min(data.size() - pos, static_cast<size_t>(block_size_bytes - in_block));
    out[i++] = Raw(0, data.data() + pos, n);
    pos += n;
  }
}

}  // namespace dfs::common
