// CRC32C (Castagnoli, iSCSI polynomial 0x1EDC6F41, reflected, init and final
// xor 0xFFFFFFFF): the checksum of every 64 KiB chunk block, on disk, on the
// wire and in the client's page cache.
//
// Computed by ISA-L's crc32_iscsi, which picks a PCLMUL / AVX-512 kernel at run
// time (measured by common_bench next to memcpy). All functions are pure and
// thread-safe; none allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace dfs::common {

// CRC32C of `data`. Crc32c("123456789") == 0xE3069283.
uint32_t Crc32c(std::span<const std::byte> data);
uint32_t Crc32c(const void* data, size_t size_bytes);

// Continues a CRC: Crc32cExtend(Crc32c(a), b) == Crc32c(a ++ b).
uint32_t Crc32cExtend(uint32_t crc, std::span<const std::byte> data);

// CRC32C of `block` as it reads after overwriting the bytes at
// [patch_offset, patch_offset + patch.size()) with `patch`; the block may grow
// when the patch runs past its end (a write that extends the last block).
// Neither input is modified and nothing is copied: the result is the CRC of
// old-prefix ++ patch ++ old-suffix. Used for partial-block writes, after the
// old block's own CRC has been verified (never bless unverified bytes).
// Requires patch_offset <= block.size().
uint32_t Crc32cPatched(std::span<const std::byte> block, size_t patch_offset,
                       std::span<const std::byte> patch);

// Checking a piece of a stored block without the rest of its bytes (exact
// reads): the sender, who holds the whole verified block, computes a
// PieceCheck of the bytes around the piece; the receiver combines it with
// the piece and compares the result with the block's stored CRC. CRC32C is
// affine, so for block = head ++ piece ++ tail,
//   crc(block) = crc(head ++ piece ++ zeros) ^ crc(zeros ++ tail) ^ crc(zeros(n)),
// and only head's CRC and the last two terms travel. A flipped bit in the
// piece, anywhere between the writer and the reader, fails the check just as
// it would fail the whole block's.
struct PieceCheck {
  uint32_t head_crc = 0;   // Crc32c(block[0, piece_offset))
  uint32_t tail_term = 0;  // Crc32c(zeros ++ tail) ^ Crc32c(zeros(block size)); 0 when tail is empty
};
// Requires piece_offset + piece_size <= block.size().
PieceCheck Crc32cPieceCheck(std::span<const std::byte> block, size_t piece_offset, size_t piece_size);
// Whether `piece`, found at `piece_offset` in a block of `block_size` bytes
// whose stored CRC is `block_crc`, matches it under `check`.
bool Crc32cPieceMatches(uint32_t block_crc, size_t block_size, size_t piece_offset,
                        std::span<const std::byte> piece, const PieceCheck& check);

// Per-piece CRCs of a byte range [offset, offset + data.size()) of a chunk,
// cut at `block_size_bytes` boundaries of the chunk: piece i is the part of
// `data` that falls into one block. This is how write and read messages carry
// their checksums. `out` must hold PieceCount(...) entries.
size_t PieceCount(uint64_t offset, size_t size_bytes, size_t block_size_bytes);
void PieceCrcs(uint64_t offset, std::span<const std::byte> data, size_t block_size_bytes,
               std::span<uint32_t> out);

}  // namespace dfs::common
