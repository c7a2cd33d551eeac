#include "chunkserver/store/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace dfs::chunkserver {

using common::Result;
using common::Status;

Status IoError(int saved_errno, const std::string& context) {
  if (saved_errno == ENOSPC || saved_errno == EDQUOT) {
    return common::ResourceExhaustedError("disk full: " + context);
  }
  return common::ErrnoStatus(saved_errno, context);
}

PosixFileIo& PosixFileIo::Get() {
  static PosixFileIo* io = new PosixFileIo();
  return *io;
}

Result<int> PosixFileIo::Open(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return IoError(errno, "open " + path);
  return fd;
}

void PosixFileIo::Close(int fd) { ::close(fd); }

Status PosixFileIo::PreadFull(int fd, void* buf, size_t size, uint64_t offset,
                              const std::string& path) {
  auto* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError(errno, "pread " + path);
    }
    if (n == 0) return common::DataLossError("short read of " + path + " (file shorter than expected)");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

void PosixFileIo::WillNeed(int fd, uint64_t offset, uint64_t length) {
  (void)::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_WILLNEED);
}

void PosixFileIo::StartWriteback(int fd, uint64_t offset, uint64_t length) {
  (void)::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(length), SYNC_FILE_RANGE_WRITE);
}

namespace {
// pwrite until all of `size` is written; `what` names the call in errors.
Status PwriteLoop(int fd, const void* buf, size_t size, uint64_t offset, const std::string& what) {
  const auto* p = static_cast<const char*>(buf);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError(errno, what);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}
}  // namespace

Status PosixFileIo::PwriteFull(int fd, const void* buf, size_t size, uint64_t offset,
                               const std::string& path) {
  return PwriteLoop(fd, buf, size, offset, "pwrite " + path);
}

Status PosixFileIo::PwriteDirect(int fd, const void* buf, size_t size, uint64_t offset,
                                 const std::string& path) {
  // The same loop: O_DIRECT changes what the kernel accepts, not the call.
  return PwriteLoop(fd, buf, size, offset, "pwrite " + path + " (O_DIRECT)");
}

Status PosixFileIo::Fdatasync(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) return IoError(errno, "fdatasync " + path);
  return Status::Ok();
}

Status PosixFileIo::Reserve(int fd, uint64_t offset, uint64_t length, const std::string& path) {
  if (length == 0) return Status::Ok();
  int rc = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length));
  if (rc != 0) {
    if (errno == EOPNOTSUPP || errno == ENOSYS) return Status::Ok();
    return IoError(errno, "fallocate " + path);
  }
  return Status::Ok();
}

Status PosixFileIo::PunchHole(int fd, uint64_t offset, uint64_t length, const std::string& path) {
  if (length == 0) return Status::Ok();
  if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) != 0) {
    if (errno == EOPNOTSUPP || errno == ENOSYS) {
      return common::Status(common::StatusCode::kUnimplemented, "cannot punch holes in " + path);
    }
    return IoError(errno, "fallocate (punch) " + path);
  }
  return Status::Ok();
}

Status PosixFileIo::Ftruncate(int fd, uint64_t length, const std::string& path) {
  if (::ftruncate(fd, static_cast<off_t>(length)) != 0) return IoError(errno, "ftruncate " + path);
  return Status::Ok();
}

Result<uint64_t> PosixFileIo::FileSize(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return IoError(errno, "fstat " + path);
  return static_cast<uint64_t>(st.st_size);
}

Result<uint64_t> PosixFileIo::AllocatedBytes(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return IoError(errno, "fstat " + path);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

Status PosixFileIo::Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return IoError(errno, "rename " + from + " -> " + to);
  return Status::Ok();
}

Status PosixFileIo::Unlink(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return IoError(errno, "unlink " + path);
  return Status::Ok();
}

Status PosixFileIo::FsyncDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError(errno, "open " + path);
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) return IoError(saved, "fsync " + path);
  return Status::Ok();
}

Status FaultInjectingFileIo::PreadFull(int fd, void* buf, size_t size, uint64_t offset,
                                       const std::string& path) {
  if (int e = fail_reads_errno.load(); e != 0) return IoError(e, "pread " + path + " (injected)");
  return PosixFileIo::PreadFull(fd, buf, size, offset, path);
}

Status FaultInjectingFileIo::PwriteFull(int fd, const void* buf, size_t size, uint64_t offset,
                                        const std::string& path) {
  if (int e = fail_writes_errno.load(); e != 0) return IoError(e, "pwrite " + path + " (injected)");
  return PosixFileIo::PwriteFull(fd, buf, size, offset, path);
}

Status FaultInjectingFileIo::PwriteDirect(int fd, const void* buf, size_t size, uint64_t offset,
                                          const std::string& path) {
  if (int e = fail_writes_errno.load(); e != 0) return IoError(e, "pwrite " + path + " (O_DIRECT, injected)");
  return PosixFileIo::PwriteDirect(fd, buf, size, offset, path);
}

Status FaultInjectingFileIo::Fdatasync(int fd, const std::string& path) {
  if (int e = fail_sync_errno.load(); e != 0) return IoError(e, "fdatasync " + path + " (injected)");
  return PosixFileIo::Fdatasync(fd, path);
}

Status FaultInjectingFileIo::Reserve(int fd, uint64_t offset, uint64_t length,
                                     const std::string& path) {
  int e = fail_writes_errno.load();
  if (e == 0) e = fail_reserve_errno.load();
  if (e != 0) return IoError(e, "fallocate " + path + " (injected)");
  return PosixFileIo::Reserve(fd, offset, length, path);
}

Status FaultInjectingFileIo::PunchHole(int fd, uint64_t offset, uint64_t length, const std::string& path) {
  if (int e = fail_writes_errno.load(); e != 0) return IoError(e, "fallocate (punch) " + path + " (injected)");
  return PosixFileIo::PunchHole(fd, offset, length, path);
}

}  // namespace dfs::chunkserver
