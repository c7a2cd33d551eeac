// Flags libfuse 3.14 leaves out of its INIT reply.
//
// Why: libfuse before 3.16 never passes FUSE_PARALLEL_DIROPS to the kernel
// although a filesystem asks for it (FUSE_CAP_PARALLEL_DIROPS is even on by
// default; libfuse PR #861), so the kernel serializes every lookup and
// readdir in one directory: two threads stat'ing files of one directory got
// no more done than one (measured: 3,355 vs 4,049 lookups/s; two
// directories: 7,104). Debian 12 ships 3.14.
//
// How: a custom I/O for the session (fuse_session_custom_io, in 3.14) that
// reads requests and writes replies unchanged, except that it adds `flags`
// to the INIT reply when the kernel's INIT offered them.
#pragma once

#define FUSE_USE_VERSION 314  // as fuse_ops.h
#include <fuse_lowlevel.h>

#include <cstdint>

namespace dfs::fuse {

// Call after fuse_session_mount and before the session loop. False if
// libfuse refused the custom I/O (the session then works as before).
bool AddInitReplyFlags(fuse_session* se, uint32_t flags);

}  // namespace dfs::fuse
