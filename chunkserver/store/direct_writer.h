// DirectWriter: how a ChunkWriter puts data bytes into its chunk file.
//
// The 4 KiB-aligned middle of a write of at least kMinDirectWriteBytes goes
// to the disk with O_DIRECT, through a second descriptor of the same file
// and an aligned copy of the bytes; the unaligned ends, and smaller writes,
// go through the page cache. Why: a chunkserver streams large writes it will
// not read back soon (the client caches what it wrote), and a buffered
// stream made the kernel copy every byte into fresh page-cache pages, then
// write them back and evict them under memory pressure. On this 2-core VM
// that copy was ~45% of the CPU of a 1 GiB write through a mount with three
// replicas (perf), and the second GiB in a row ran at half the first's rate.
//
// Both descriptors are coherent (a direct write first writes back and drops
// cached pages it overlaps) and one fdatasync makes both durable, so the
// store's atomicity and durability rules (chunk_store.h) are unchanged.
// When the file system refuses O_DIRECT (tmpfs: EINVAL at open; or EINVAL
// for the alignment), the write goes through the page cache instead and the
// store's switch is cleared, so later writers do not try again.
//
// Thread-safety: belongs to one ChunkWriter; not shared.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "chunkserver/store/file_io.h"
#include "common/result.h"

namespace dfs::chunkserver {

// Smaller writes are not worth a synchronous device write each.
inline constexpr uint64_t kMinDirectWriteBytes = 256 << 10;

class DirectWriter {
 public:
  // `enabled` and `direct_bytes` are the store's: the switch, and the count
  // of bytes written with O_DIRECT.
  DirectWriter(FileIo& io, std::atomic<bool>* enabled, std::atomic<uint64_t>* direct_bytes)
      : io_(io), enabled_(enabled), direct_bytes_(direct_bytes) {}
  ~DirectWriter();
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;

  // Writes `data` at byte `offset` of the file open as `fd` (at `path`).
  // Sets *direct (when given) when its middle went with O_DIRECT (what is
  // left in the page cache is then under 8 KiB: no writeback hint is worth
  // making). Errors as FileIo::PwriteFull's.
  common::Status Write(int fd, const std::string& path, std::span<const std::byte> data, uint64_t offset,
                       bool* direct = nullptr);

 private:
  // The direct descriptor of `path`, opened on first use; -1 when direct
  // writes are off.
  int DirectFd(const std::string& path);

  FileIo& io_;
  std::atomic<bool>* enabled_;
  std::atomic<uint64_t>* direct_bytes_;
  int direct_fd_ = -1;
  bool tried_ = false;
};

}  // namespace dfs::chunkserver
