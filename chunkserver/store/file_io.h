// FileIo: the seam between the chunk store and the disk.
//
// Every syscall the store makes on chunk files goes through a FileIo, so a
// test can inject EIO, ENOSPC or short writes on any call (FaultInjectingFileIo
// below) without a real broken disk. Errors are Statuses built from errno
// (common::ErrnoStatus) naming the operation and path; ENOSPC/EDQUOT become
// RESOURCE_EXHAUSTED.
//
// Thread-safety: PosixFileIo is stateless and safe from any thread.
// FaultInjectingFileIo is safe too (its switches are atomics).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace dfs::chunkserver {

// What O_DIRECT I/O is aligned to: the page size, which covers 512-byte and
// 4 KiB logical blocks.
inline constexpr size_t kDirectIoAlignBytes = 4096;

class FileIo {
 public:
  virtual ~FileIo() = default;

  // open(2). Returns the fd.
  virtual common::Result<int> Open(const std::string& path, int flags, mode_t mode) = 0;
  virtual void Close(int fd) = 0;
  // Reads exactly `size` bytes at `offset` (retrying short reads); a read past
  // EOF is DATA_LOSS ("short read").
  virtual common::Status PreadFull(int fd, void* buf, size_t size, uint64_t offset,
                                   const std::string& path) = 0;
  // Writes exactly `size` bytes at `offset`, retrying short writes.
  virtual common::Status PwriteFull(int fd, const void* buf, size_t size, uint64_t offset,
                                    const std::string& path) = 0;
  // PwriteFull through a descriptor opened with O_DIRECT: `buf`, `size` and
  // `offset` are multiples of kDirectIoAlignBytes. INVALID_ARGUMENT (EINVAL)
  // when the file system refuses that alignment.
  virtual common::Status PwriteDirect(int fd, const void* buf, size_t size, uint64_t offset,
                                      const std::string& path) = 0;
  virtual common::Status Fdatasync(int fd, const std::string& path) = 0;
  // fallocate(fd, FALLOC_FL_KEEP_SIZE, ...): reserves space without changing
  // the size. OK (doing nothing) when the filesystem does not support it.
  virtual common::Status Reserve(int fd, uint64_t offset, uint64_t length,
                                 const std::string& path) = 0;
  virtual common::Status Ftruncate(int fd, uint64_t length, const std::string& path) = 0;
  // fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, ...): the range
  // reads as zeros and its space is freed. UNIMPLEMENTED when the file
  // system cannot (the caller writes zeros instead).
  virtual common::Status PunchHole(int fd, uint64_t offset, uint64_t length, const std::string& path) = 0;
  // Size of the open file.
  virtual common::Result<uint64_t> FileSize(int fd, const std::string& path) = 0;
  // Bytes the file system allocated to the open file (st_blocks * 512).
  virtual common::Result<uint64_t> AllocatedBytes(int fd, const std::string& path) = 0;
  virtual common::Status Rename(const std::string& from, const std::string& to) = 0;
  // NotFound if it does not exist.
  virtual common::Status Unlink(const std::string& path) = 0;
  // fsync of a directory (makes renames and unlinks in it durable).
  virtual common::Status FsyncDir(const std::string& path) = 0;
  // posix_fadvise(WILLNEED): the kernel starts reading the range in the
  // background. Only a hint: nothing to report when it cannot.
  virtual void WillNeed(int fd, uint64_t offset, uint64_t length) = 0;
  // sync_file_range(SYNC_FILE_RANGE_WRITE): starts writing the range's dirty
  // pages back without waiting, so a later fdatasync has less left to do.
  // A hint as well.
  virtual void StartWriteback(int fd, uint64_t offset, uint64_t length) = 0;
};

// The real thing: POSIX syscalls.
class PosixFileIo : public FileIo {
 public:
  // A process-wide instance.
  static PosixFileIo& Get();

  common::Result<int> Open(const std::string& path, int flags, mode_t mode) override;
  void Close(int fd) override;
  common::Status PreadFull(int fd, void* buf, size_t size, uint64_t offset,
                           const std::string& path) override;
  common::Status PwriteFull(int fd, const void* buf, size_t size, uint64_t offset,
                            const std::string& path) override;
  common::Status PwriteDirect(int fd, const void* buf, size_t size, uint64_t offset,
                              const std::string& path) override;
  common::Status Fdatasync(int fd, const std::string& path) override;
  common::Status Reserve(int fd, uint64_t offset, uint64_t length, const std::string& path) override;
  common::Status Ftruncate(int fd, uint64_t length, const std::string& path) override;
  common::Status PunchHole(int fd, uint64_t offset, uint64_t length, const std::string& path) override;
  common::Result<uint64_t> FileSize(int fd, const std::string& path) override;
  common::Result<uint64_t> AllocatedBytes(int fd, const std::string& path) override;
  common::Status Rename(const std::string& from, const std::string& to) override;
  common::Status Unlink(const std::string& path) override;
  common::Status FsyncDir(const std::string& path) override;
  void WillNeed(int fd, uint64_t offset, uint64_t length) override;
  void StartWriteback(int fd, uint64_t offset, uint64_t length) override;
};

// PosixFileIo with switches for tests: when `fail_writes_errno` is non-zero,
// every PwriteFull, PwriteDirect, Reserve and PunchHole fails with that errno (ENOSPC, EIO) without
// touching the disk; `fail_reserve_errno` fails only Reserve (a disk that is
// full: space already allocated can still be overwritten);
// `fail_sync_errno` does the same for Fdatasync; and `fail_reads_errno` for
// PreadFull.
class FaultInjectingFileIo : public PosixFileIo {
 public:
  std::atomic<int> fail_writes_errno{0};
  std::atomic<int> fail_reserve_errno{0};
  std::atomic<int> fail_sync_errno{0};
  std::atomic<int> fail_reads_errno{0};

  common::Status PreadFull(int fd, void* buf, size_t size, uint64_t offset,
                           const std::string& path) override;
  common::Status PwriteFull(int fd, const void* buf, size_t size, uint64_t offset,
                            const std::string& path) override;
  common::Status PwriteDirect(int fd, const void* buf, size_t size, uint64_t offset,
                              const std::string& path) override;
  common::Status Fdatasync(int fd, const std::string& path) override;
  common::Status Reserve(int fd, uint64_t offset, uint64_t length, const std::string& path) override;
  common::Status PunchHole(int fd, uint64_t offset, uint64_t length, const std::string& path) override;
};

// errno -> Status, with ENOSPC and EDQUOT mapped to RESOURCE_EXHAUSTED
// ("disk full") and everything else as common::ErrnoStatus.
common::Status IoError(int saved_errno, const std::string& context);

}  // namespace dfs::chunkserver
