// AclHints: inodes meta recently said have no access ACL, or no extended
// attribute at all, so the kernel's ACL fetch, and getxattr and listxattr
// of such inodes, are answered without a round trip.
//
// Why: with FUSE_POSIX_ACL the kernel reads system.posix_acl_access before
// it judges any caller other than the owner (root reading other users'
// files included), once per inode each time its attributes go stale: one
// more round trip per such file (cat of 500 files of another user: 0.39 s
// vs 0.20 s for one's own). And `ls -l` asks for security.selinux of every
// file it lists: 2,000 files were 2,000 round trips, 0.5 s of its 0.63 s.
// Meta's lookup, getattr, readdirplus and open replies say whether an ACL
// exists (Attr.access_acl) and whether any xattr does (Attr.no_xattrs); a
// "none" answers for the attribute timeout. Staleness is what the kernel's
// attribute and ACL caches allow already: an xattr set by another client
// shows within the timeout; one set through this mount at once (Forget).
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "common/clock.h"
#include "common/thread_annotations.h"
#include "proto/meta.pb.h"

namespace dfs::fuse {

class AclHints {
 public:
  // ttl_ms 0 turns the hints off. Ages are counted on `clock`'s monotonic time.
  AclHints(int64_t ttl_ms, const common::Clock& clock);

  // Remembers meta's word on `attr`'s inode: ACL_NONE starts a hint (of
  // no xattr at all when no_xattrs says so too), ACL_PRESENT ends one, and
  // an attr that says neither leaves it.
  void Learn(const pb::Attr& attr);
  // This mount changed the inode's xattrs or ACL (or asked meta to).
  void Forget(uint64_t ino);
  // True while a "no access ACL" from meta is younger than the timeout.
  bool KnownNone(uint64_t ino) const;
  // True while a "no extended attribute at all" is.
  bool KnownNoXattrs(uint64_t ino) const;

 private:
  static constexpr size_t kMaxEntries = 65536;  // beyond it, expired hints are swept
  int64_t NowMs() const { return clock_.MonotonicNs() / 1'000'000; }

  const int64_t ttl_ms_;
  const common::Clock& clock_;
  mutable std::mutex mu_;
  struct Hint {
    int64_t expires_ms = 0;
    bool no_xattrs = false;  // none at all, not only no access ACL
  };
  std::unordered_map<uint64_t, Hint> hints_ GUARDED_BY(mu_);
};

}  // namespace dfs::fuse
