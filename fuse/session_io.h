// The session's I/O with the kernel: what libfuse 3.14 drops on the way.
//
// A custom I/O for the session (fuse_session_custom_io, in 3.14) reads
// requests and writes replies unchanged, except that:
//  - it adds flags to the INIT reply when the kernel's INIT offered them.
//    libfuse before 3.16 never passes FUSE_PARALLEL_DIROPS to the kernel
//    although a filesystem asks for it (libfuse PR #861), so the kernel
//    serialized every lookup and readdir in one directory (two threads
//    stat'ing files of one directory: 3,355 vs 4,049 lookups/s; two
//    directories: 7,104); and 3.14 cannot ask for FUSE_HANDLE_KILLPRIV_V2
//    or FUSE_DIRECT_IO_ALLOW_MMAP (a flags2 bit);
//  - it keeps the write_flags of the WRITE request a worker thread is
//    handling, which 3.14's fuse_file_info has no field for: with
//    KILLPRIV_V2, FUSE_WRITE_KILL_SUIDGID there says the writer lacks
//    CAP_FSETID and the file must lose setuid/setgid (file_remove_privs).
//
// libfuse's workers read a request and handle it on the same thread (no
// splice: dfs has no write_buf), so a thread-local carries the flags.
#pragma once

#define FUSE_USE_VERSION 314  // as fuse_ops.h
#include <fuse_lowlevel.h>

#include <cstdint>

namespace dfs::fuse {

// Call after fuse_session_mount and before the session loop. `flags` as the
// kernel numbers them: bits 32..63 go to the reply's flags2. False if
// libfuse refused the custom I/O (the session then works as before, and
// the kernel gets none of `flags`).
bool AddInitReplyFlags(fuse_session* se, uint64_t flags);

// Whether the WRITE request this thread is handling carries
// FUSE_WRITE_KILL_SUIDGID (false for any other request, or without the
// custom I/O).
bool WriteKillsSuidSgid();

}  // namespace dfs::fuse
