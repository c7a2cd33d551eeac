#include "fuse/session_io.h"

#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

namespace dfs::fuse {

namespace {

// One session per process: the INIT exchange happens once, before any
// other request, on the session loop's first thread.
std::atomic<uint64_t> g_flags{0};            // what to add (bits 32..63: flags2)
std::atomic<uint64_t> g_offered{0};          // what the kernel's INIT offered
std::atomic<uint64_t> g_init_unique{0};      // the INIT request's id
std::atomic<bool> g_init_seen{false};
std::atomic<bool> g_done{false};
thread_local uint32_t t_write_flags = 0;     // see WriteKillsSuidSgid

ssize_t Read(int fd, void* buf, size_t len, void*) {
  ssize_t n = ::read(fd, buf, len);
  t_write_flags = 0;
  if (n >= static_cast<ssize_t>(sizeof(fuse_in_header) + sizeof(fuse_write_in)) &&
      static_cast<const fuse_in_header*>(buf)->opcode == FUSE_WRITE) {
    const auto* write = reinterpret_cast<const fuse_write_in*>(static_cast<const char*>(buf) + sizeof(fuse_in_header));
    t_write_flags = write->write_flags;
  }
  if (!g_done.load(std::memory_order_acquire) && n >= static_cast<ssize_t>(sizeof(fuse_in_header))) {
    const auto* in = static_cast<const fuse_in_header*>(buf);
    if (in->opcode == FUSE_INIT &&
        n >= static_cast<ssize_t>(sizeof(fuse_in_header) + offsetof(fuse_init_in, flags) + sizeof(uint32_t))) {
      const auto* init = reinterpret_cast<const fuse_init_in*>(static_cast<const char*>(buf) + sizeof(fuse_in_header));
      uint64_t offered = init->flags;
      // flags2 exists when the kernel says so (FUSE_INIT_EXT, 7.36).
      if ((init->flags & FUSE_INIT_EXT) &&
          n >= static_cast<ssize_t>(sizeof(fuse_in_header) + offsetof(fuse_init_in, flags2) + sizeof(uint32_t))) {
        offered |= uint64_t{init->flags2} << 32;
      }
      g_offered.store(offered, std::memory_order_relaxed);
      g_init_unique.store(in->unique, std::memory_order_relaxed);
      g_init_seen.store(true, std::memory_order_release);
    }
  }
  return n;
}

ssize_t Writev(int fd, struct iovec* iov, int count, void*) {
  if (!g_done.load(std::memory_order_acquire) && g_init_seen.load(std::memory_order_acquire) && count >= 2 &&
      iov[0].iov_len >= sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(uint32_t)) {
    const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
    if (out->unique == g_init_unique.load(std::memory_order_relaxed)) {
      if (out->error == 0) {
        auto* init = static_cast<fuse_init_out*>(iov[1].iov_base);
        const uint64_t add = g_flags.load(std::memory_order_relaxed) & g_offered.load(std::memory_order_relaxed);
        init->flags |= static_cast<uint32_t>(add);
        if ((add >> 32) != 0 && iov[1].iov_len >= offsetof(fuse_init_out, flags2) + sizeof(uint32_t)) {
          init->flags |= FUSE_INIT_EXT;  // the kernel reads flags2 only then
          init->flags2 |= static_cast<uint32_t>(add >> 32);
        }
      }
      g_done.store(true, std::memory_order_release);
    }
  }
  return ::writev(fd, iov, count);
}

}  // namespace

bool AddInitReplyFlags(fuse_session* se, uint64_t flags) {
  g_flags.store(flags, std::memory_order_relaxed);
  static const fuse_custom_io kIo = {.writev = Writev, .read = Read, .splice_receive = nullptr,
                                     .splice_send = nullptr};
  return fuse_session_custom_io(se, &kIo, fuse_session_fd(se)) == 0;
}

bool WriteKillsSuidSgid() { return (t_write_flags & FUSE_WRITE_KILL_SUIDGID) != 0; }

}  // namespace dfs::fuse
