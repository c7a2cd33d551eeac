// Test harness: real daemons as child processes, owned by the test.
//
// A Process is started with fork/exec, its stdout and stderr appended to a
// log file, in its own process group. The destructor kills the whole group
// with SIGKILL and reaps it, so a failing test (an ASSERT that returns early)
// never leaks a daemon. Daemons announce readiness by writing a ready file
// (`--ready-file PATH`, content "address=host:port\n", written atomically once
// the server is serving): WaitForReadyFile polls for it with a bounded timeout.
//
// Thread-safety: a Process is owned by one test thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace dfs::testing {

class Process {
 public:
  // Starts argv[0] (a path) with the arguments that follow. Errors: the exec
  // failing is reported when the child exits 127; fork/open failures here.
  static common::Result<std::unique_ptr<Process>> Start(const std::vector<std::string>& argv,
                                                        const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // Sends `signal` to the process (not its group).
  void Signal(int signal);
  // SIGKILL and reap. Idempotent.
  void Kill();
  // True while the child has not exited (reaps it if it has).
  bool Running();
  // Waits up to timeout_ms for exit; returns the wait status (as waitpid),
  // DeadlineExceeded if still running.
  common::Result<int> Wait(int timeout_ms);

 private:
  Process(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
  bool reaped_ = false;
  int wait_status_ = 0;
};

// Polls for `path` (written by a daemon's --ready-file) until it exists and
// holds "address=...", or `process` exits, or timeout_ms passes. Returns the
// address. The error names the log file to read.
common::Result<std::string> WaitForReadyFile(const std::string& path, Process& process, int timeout_ms);

// A fresh directory under $TMPDIR (or /tmp), removed with its content by the
// destructor unless DFS_KEEP_TEST_DIRS is set (for post-mortems).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "dfs-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The path of a binary under test, from the environment variable meson sets
// (e.g. DFS_META_BIN). Aborts the test program with a message if unset.
std::string BinaryPath(const char* env_var);

// A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close).
// Prefer --listen 127.0.0.1:0 plus the ready file; use this only where an
// address must be known before the process starts (a Raft member list).
int PickFreePort();

}  // namespace dfs::testing
