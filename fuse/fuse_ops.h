// The FUSE low-level adapter: fills a fuse_lowlevel_ops table whose
// callbacks turn kernel requests into FileSystem / MetaClient calls and
// Status results into errno (Status::ToErrno, the one mapping table).
//
// Callbacks run on libfuse's worker threads (fuse_session_loop_mt) and block
// on network calls; they keep no locks of their own.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "fuse/client/file_system.h"
#include "fuse/client/lock_waiters.h"
#include "fuse/client_metrics.h"

namespace dfs::fuse {

struct AdapterOptions {
  double attr_timeout_s = 1.0;   // kernel attribute cache (attr_timeout=)
  double entry_timeout_s = 1.0;  // kernel name cache (entry_timeout=)
  bool read_only = false;
  bool root_squash = false;      // root's calls go to meta as uid/gid kNobody
  uint64_t root_ino = 1;         // meta's inode of the mount root (SOURCE:/subdir)
  // FUSE_POSIX_ACL and FUSE_DONT_MASK (noacl: off): the kernel checks ACLs
  // too, and hands the umask over so that meta can apply a directory's
  // default ACL instead.
  bool posix_acl = true;
  // fcntl/flock locks kept by meta (locks=cluster); false: the kernel keeps
  // them for this mount only (locks=local).
  bool cluster_locks = true;
};

inline constexpr uint32_t kNobody = 65534;

// The userdata passed to fuse_session_new.
struct Adapter {
  FileSystem* fs;
  AdapterOptions options;
  fuse_session* session = nullptr;  // set once the session exists; for cache invalidation
  ClientMetrics* metrics = nullptr;  // -o metrics=: per-operation counts and times
  LockWaiters* lock_waiters = nullptr;  // blocked F_SETLKW / flock calls; none: they fail with EAGAIN
};

// The operation table; the session's userdata must be an Adapter*.
const fuse_lowlevel_ops& Operations();

// Another client changed these (ChangeWatcher's handler): drops what the
// mount and the kernel hold of those names and inodes. Never call it from
// a FUSE request (the kernel may hold a lock that request's caller waits on).
void ForgetChanged(Adapter& adapter, const pb::ChangeNotices& notices);

}  // namespace dfs::fuse
