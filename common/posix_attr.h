// POSIX meanings the client and meta must agree on. What root's chmod/chown
// does to a file's mode, as meta's setattr applies it (meta/state_machine/
// ops/set_attr.cc; set_attr_test.cc checks that the two agree): the client
// answers such a change itself (fuse FileSystem::SetAttr) and must answer
// what meta will store. Which opens only read (lazy read opens).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdint>

#include "proto/meta.pb.h"

namespace dfs::common {

// `mode` (type and permission bits) after a setattr by root with `valid`
// (pb::SetAttrBits) and, for SET_MODE, `new_mode`. chmod sets the 07777
// bits (root keeps setgid); chown_common drops setuid from a non-directory
// even for root, and setgid when it is group-executable (a real setgid).
inline uint32_t ModeAfterRootSetAttr(uint32_t mode, uint32_t valid, uint32_t new_mode) {
  if (valid & pb::SET_MODE) mode = (mode & S_IFMT) | (new_mode & 07777);
  if ((valid & (pb::SET_UID | pb::SET_GID)) && !S_ISDIR(mode)) {
    if ((mode & S_ISGID) && (mode & S_IXGRP)) mode &= ~static_cast<uint32_t>(S_ISGID);
    mode &= ~static_cast<uint32_t>(S_ISUID);
  }
  return mode;
}

// File capabilities, which a write drops (file_remove_privs): the mount
// drops them itself before direct I/O, and meta lets anyone who may write
// remove them (the kernel asks for no other removal without CAP_SETFCAP).
inline constexpr char kCapabilityXattr[] = "security.capability";

// An open that changes nothing: read-only access and no O_TRUNC (which
// writes even with O_RDONLY). The client pins such an open itself and meta
// answers it from its state (fuse/client/read_pin_set.h).
inline bool IsReadOnlyOpen(uint32_t flags) { return (flags & O_ACCMODE) == O_RDONLY && !(flags & O_TRUNC); }

}  // namespace dfs::common
