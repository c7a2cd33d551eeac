// CHECK: crash loudly on a broken invariant (a bug), never on an environment
// fault. Environment faults (EIO, a CRC mismatch, a peer down) are Statuses.
//
// CHECK(cond) << nothing: the message names the file, line and condition, and
// the process aborts so that a core dump or the supervisor's restart follows.
// Always compiled in, also in release builds: the checks guard data.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace dfs::common::internal {
[[noreturn]] inline void CheckFailed(const char* file, int line, const char* what) {
  std::fprintf(stderr, "dfs: CHECK failed at %s:%d: %s\n", file, line, what);
  std::fflush(stderr);
  std::abort();
}
}  // namespace dfs::common::internal

#define CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::dfs::common::internal::CheckFailed(__FILE__, __LINE__, #cond))

#define PANIC(what) ::dfs::common::internal::CheckFailed(__FILE__, __LINE__, what)
