#include "chunkserver/store/direct_writer.h"

#include <fcntl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <spdlog/spdlog.h>

namespace dfs::chunkserver {

namespace {

constexpr size_t kBounceBytes = 1 << 20;

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};

// An aligned buffer per thread: gRPC's threads serve one stream after
// another, so it is allocated (and its pages faulted in) once per thread, not
// once per write.
std::byte* Bounce() {
  thread_local std::unique_ptr<std::byte, FreeDeleter> buffer(
      static_cast<std::byte*>(std::aligned_alloc(kDirectIoAlignBytes, kBounceBytes)));
  return buffer.get();
}

}  // namespace

DirectWriter::~DirectWriter() {
  if (direct_fd_ >= 0) io_.Close(direct_fd_);
}

int DirectWriter::DirectFd(const std::string& path) {
  if (direct_fd_ >= 0 || tried_) return direct_fd_;
  tried_ = true;
  auto fd = io_.Open(path, O_WRONLY | O_DIRECT, 0);
  if (fd.ok()) {
    direct_fd_ = *fd;
  } else if (fd.status().code() == common::StatusCode::kInvalidArgument) {
    if (enabled_->exchange(false)) {
      spdlog::info("no O_DIRECT writes in this data folder's file system: {}", fd.status().ToString());
    }
  }
  return direct_fd_;
}

common::Status DirectWriter::Write(int fd, const std::string& path, std::span<const std::byte> data, uint64_t offset,
                                   bool* direct) {
  if (direct != nullptr) *direct = false;
  const uint64_t end = offset + data.size();
  const uint64_t begin_aligned = (offset + kDirectIoAlignBytes - 1) / kDirectIoAlignBytes * kDirectIoAlignBytes;
  const uint64_t end_aligned = end / kDirectIoAlignBytes * kDirectIoAlignBytes;
  const bool large = end_aligned > begin_aligned && end_aligned - begin_aligned >= kMinDirectWriteBytes;
  int dfd = large && enabled_->load(std::memory_order_relaxed) ? DirectFd(path) : -1;
  std::byte* bounce = dfd >= 0 ? Bounce() : nullptr;
  if (bounce == nullptr) return io_.PwriteFull(fd, data.data(), data.size(), offset, path);

  for (uint64_t at = begin_aligned; at < end_aligned;) {
    const size_t n = std::min<uint64_t>(end_aligned - at, kBounceBytes);
    std::memcpy(bounce, data.data() + (at - offset), n);
    common::Status s = io_.PwriteDirect(dfd, bounce, n, at, path);
    if (s.code() == common::StatusCode::kInvalidArgument) {
      // The file system took the open but not this alignment: everything
      // through the page cache, now and from now on (rewriting what the
      // direct writes already put there is harmless).
      if (enabled_->exchange(false)) {
        spdlog::info("O_DIRECT writes refused, writing through the page cache: {}", s.ToString());
      }
      return io_.PwriteFull(fd, data.data(), data.size(), offset, path);
    }
    if (!s.ok()) return s;
    direct_bytes_->fetch_add(n, std::memory_order_relaxed);
    at += n;
  }
  if (direct != nullptr) *direct = true;
  if (begin_aligned > offset) {
    if (common::Status s = io_.PwriteFull(fd, data.data(), begin_aligned - offset, offset, path); !s.ok()) return s;
  }
  if (end > end_aligned) {
    return io_.PwriteFull(fd, data.data() + (end_aligned - offset), end - end_aligned, end_aligned, path);
  }
  return common::Status::Ok();
}

}  // namespace dfs::chunkserver
