// A real local cluster with a real FUSE mount, for tests that use the
// filesystem through syscalls and tools. Brought up once per test program by
// packaging/local-cluster (the same tool the quickstart uses): 1 dfs-meta,
// 3 dfs-chunkservers, R=3, mounted at DIR/mnt. Torn down (unmounted, every
// process stopped by pid) at the end even when tests fail.
//
// Without /dev/fuse the tests are skipped (meson reports them skipped).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "tests/harness/process.h"

namespace dfs::testing {

// Extra flags for every dfs-meta / dfs-chunkserver (local-cluster's
// DFS_META_ARGS / DFS_CHUNKSERVER_ARGS; kept by LocalCluster::Restart).
struct DaemonArgs {
  std::string meta = {};
  std::string chunkserver = {};
};

class LocalCluster {
 public:
  // Starts the cluster in a fresh temp dir; mounts at <dir>/mnt if `mount`.
  // `metas` > 1 makes the metadata a Raft group (3 or 5).
  static common::Result<std::unique_ptr<LocalCluster>> Up(bool mount, int chunkservers = 3, int metas = 1,
                                                          const DaemonArgs& args = {});
  ~LocalCluster();  // down
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& source() const { return source_; }
  const std::string& mount_point() const { return mount_point_; }

  // Mounts the cluster a second time at `path` (a separate dfs process,
  // with -o `options` too); unmounted by the destructor.
  common::Status MountAgain(const std::string& path, const std::string& options = "");
  // The pid of process `name` (meta-K, cs-K, dfs), 0 if unknown.
  int Pid(const std::string& name) const;
  // local-cluster restart: starts `name` again after it was killed.
  common::Status Restart(const std::string& name);
  // local-cluster add-chunkserver: one more chunkserver; its name (cs-K).
  common::Result<std::string> AddChunkserver();

 private:
  LocalCluster() = default;
  std::string dir_;
  std::string source_;
  std::string mount_point_;
  std::vector<std::string> extra_mounts_;
};

// A test suite whose tests share one mounted cluster (1 meta, 3
// chunkservers, SuiteCluster()), up before its first test and down after
// its last. SetUp skips a test without /dev/fuse and fails it when the
// cluster did not start: a derived SetUp returns if IsSkipped() or
// HasFatalFailure() after calling it.
class MountedClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
};
// A MountedClusterTest with a directory of its own on the mount and one on
// local disk, both named after the test, made by SetUp: for doing the same
// steps in both and comparing.
class MountAndLocalTest : public MountedClusterTest {
 protected:
  void SetUp() override;
  TempDir local_root_{"dfs-local-ref"};
  std::string dfs_;    // this test's directory on the mount
  std::string local_;  // the same on local disk
};

// The running suite's cluster; null outside one or when it did not start.
LocalCluster* SuiteCluster();

// Runs a shell command line, returns its exit status and output (stdout+stderr).
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunShell(const std::string& command);

bool FuseAvailable();

}  // namespace dfs::testing
