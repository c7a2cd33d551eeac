#include "fuse/session_io.h"

#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

namespace dfs::fuse {

namespace {

// One session per process: the INIT exchange happens once, before any
// other request, on the session loop's first thread.
std::atomic<uint32_t> g_flags{0};            // what to add
std::atomic<uint32_t> g_offered{0};          // what the kernel's INIT offered
std::atomic<uint64_t> g_init_unique{0};      // the INIT request's id
std::atomic<bool> g_init_seen{false};
std::atomic<bool> g_done{false};
std::atomic<uint32_t> g_granted{0};          // the INIT reply's flags as sent
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
      g_offered.store(init->flags, std::memory_order_relaxed);
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
        init->flags |= g_flags.load(std::memory_order_relaxed) & g_offered.load(std::memory_order_relaxed);
        g_granted.store(init->flags, std::memory_order_release);
      }
      g_done.store(true, std::memory_order_release);
    }
  }
  return ::writev(fd, iov, count);
}

}  // namespace

bool AddInitReplyFlags(fuse_session* se, uint32_t flags) {
  g_flags.store(flags, std::memory_order_relaxed);
  static const fuse_custom_io kIo = {.writev = Writev, .read = Read, .splice_receive = nullptr,
                                     .splice_send = nullptr};
  return fuse_session_custom_io(se, &kIo, fuse_session_fd(se)) == 0;
}

bool InitReplyHas(uint32_t flag) { return (g_granted.load(std::memory_order_acquire) & flag) == flag; }

bool WriteKillsSuidSgid() { return (t_write_flags & FUSE_WRITE_KILL_SUIDGID) != 0; }

}  // namespace dfs::fuse
