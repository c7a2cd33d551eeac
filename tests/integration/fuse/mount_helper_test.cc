// `mount -t fuse.dfs SOURCE MNT` and an fstab line with `mount -a` reach the
// dfs binary through mount.fuse3 (which runs `dfs SOURCE MNT -o opts` found on
// PATH), and a second `mount -a` does not mount twice (fsname=SOURCE).
// The fstab line lives in a private file (mount -T), so /etc/fstab is never
// touched. mount(8) hands its helpers a clean PATH, so, as after installing
// the package, `dfs` must be in a standard directory: the test links
// /usr/local/bin/dfs to the binary under test for its duration (and skips
// if another dfs is installed there; a link an earlier, killed run of this
// test left is replaced).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "common/file_util.h"
#include "tests/harness/process.h"
#include "tests/integration/fuse/cluster_fixture.h"

namespace dfs::testing {
namespace {

int CountMounts(const std::string& mnt) {
  CommandResult r = RunShell("findmnt -l -n -o TARGET | grep -c -x '" + mnt + "'");
  return std::atoi(r.output.c_str());
}

// A link to another build tree's dfs (BUILD/fuse/dfs beside
// BUILD/meson-private): what this test makes, left by a run that was killed
// (SIGKILL skips TearDown). Anything else is an installed dfs, kept.
bool LeftByATestRun(const std::filesystem::path& target) {
  std::error_code ec;
  return target.filename() == "dfs" && target.parent_path().filename() == "fuse" &&
         std::filesystem::is_directory(target.parent_path().parent_path() / "meson-private", ec);
}

class MountHelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FuseAvailable()) GTEST_SKIP() << "no /dev/fuse";
    if (::geteuid() != 0) GTEST_SKIP() << "mount(8) needs root";
    if (RunShell("command -v mount.fuse3").exit_code != 0) GTEST_SKIP() << "no mount.fuse3 (package fuse3)";
    auto c = LocalCluster::Up(/*mount=*/false);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cluster_ = std::move(*c);
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::symlink_status(kLink, ec))) {
      const std::filesystem::path target = std::filesystem::read_symlink(kLink, ec);
      if (target == BinaryPath("DFS_FUSE_BIN")) {
        // Ours already (a run of this build that was killed): removed at the end.
        linked_ = true;
      } else if (!ec && LeftByATestRun(target)) {
        std::filesystem::remove(kLink, ec);
        std::filesystem::create_symlink(BinaryPath("DFS_FUSE_BIN"), kLink);
        linked_ = true;
      } else {
        GTEST_SKIP() << kLink << " exists (an installed dfs); not replacing it";
      }
    } else {
      std::filesystem::create_symlink(BinaryPath("DFS_FUSE_BIN"), kLink);
      linked_ = true;
    }
    mnt_ = cluster_->dir() + "/m";
    std::filesystem::create_directories(mnt_);
  }
  void TearDown() override {
    if (!mnt_.empty()) {
      for (int i = 0; i < 3 && CountMounts(mnt_) > 0; ++i) RunShell("umount " + mnt_ + " || umount -l " + mnt_);
    }
    if (linked_) std::filesystem::remove(kLink);
  }

  static constexpr const char* kLink = "/usr/local/bin/dfs";
  std::unique_ptr<LocalCluster> cluster_;
  std::string mnt_;
  bool linked_ = false;
};

TEST_F(MountHelperTest, MountTypeFuseDfs_MountsAndUmountEnds) {
  CommandResult r = RunShell("mount -t fuse.dfs " + cluster_->source() + " " + mnt_ + " -o log_file=" +
                             cluster_->dir() + "/helper.log");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CommandResult fm = RunShell("findmnt -n -o SOURCE,FSTYPE " + mnt_);
  EXPECT_NE(fm.output.find(cluster_->source()), std::string::npos) << fm.output;
  EXPECT_NE(fm.output.find("fuse.dfs"), std::string::npos) << fm.output;
  ASSERT_TRUE(common::WriteFileAtomic(mnt_ + "/hello", "through mount(8)").ok());
  EXPECT_EQ(*common::ReadFileToString(mnt_ + "/hello"), "through mount(8)");
  ASSERT_EQ(RunShell("umount " + mnt_).exit_code, 0);
  EXPECT_EQ(CountMounts(mnt_), 0);
}

TEST_F(MountHelperTest, FstabLine_MountAllIsIdempotent) {
  std::string fstab = cluster_->dir() + "/fstab";
  ASSERT_TRUE(common::WriteFileAtomic(fstab, cluster_->source() + " " + mnt_ +
                                                 " fuse.dfs defaults,_netdev,log_file=" + cluster_->dir() +
                                                 "/fstab.log 0 0\n")
                  .ok());
  CommandResult r = RunShell("mount -a -T " + fstab);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(CountMounts(mnt_), 1);
  r = RunShell("mount -a -T " + fstab);  // already mounted: nothing happens
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(CountMounts(mnt_), 1);
  ASSERT_TRUE(common::WriteFileAtomic(mnt_ + "/f", "fstab").ok());
  EXPECT_EQ(*common::ReadFileToString(mnt_ + "/f"), "fstab");
}

// Relative paths mean the caller's folder, although the daemon runs in "/".
// Before, `dfs SOURCE m` tried to mount over /m (and `dfs SOURCE mnt` over
// /mnt), and relative pid and log files were written under /.
TEST_F(MountHelperTest, RelativeMountPoint_MountsInTheCallersFolder) {
  CommandResult r = RunShell("cd " + cluster_->dir() + " && " + BinaryPath("DFS_FUSE_BIN") + " " +
                             cluster_->source() + " m -o pid_file=rel.pid,log_file=rel.log");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(CountMounts(mnt_), 1);
  ASSERT_TRUE(common::WriteFileAtomic(mnt_ + "/f", "relative").ok());
  EXPECT_EQ(*common::ReadFileToString(mnt_ + "/f"), "relative");
  auto pid = common::ReadFileToString(cluster_->dir() + "/rel.pid");
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  EXPECT_GT(std::atoi(pid->c_str()), 0);
  auto log = common::ReadFileToString(cluster_->dir() + "/rel.log");
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_NE(log->find("mounted " + cluster_->source() + " at " + mnt_), std::string::npos) << *log;
  ASSERT_EQ(RunShell("umount " + mnt_).exit_code, 0);
  EXPECT_EQ(CountMounts(mnt_), 0);
}

// With the cluster gone, statfs (df asks it of every mount) answers within
// seconds with the last figures, and an unmount ends the daemon promptly
// (its CloseSession is a courtesy: the session's lease ends it anyway).
// Before, both waited out retry_timeout: df hung for it, and the daemon
// outlived the unmount by as much.
TEST_F(MountHelperTest, UmountWithTheClusterGone_StatfsAnswersAndTheDaemonExitsPromptly) {
  CommandResult r = RunShell(BinaryPath("DFS_FUSE_BIN") + " " + cluster_->source() + " " + mnt_ +
                             " -o retry_timeout=60s,pid_file=" + cluster_->dir() + "/gone.pid,log_file=" +
                             cluster_->dir() + "/gone.log");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto pid_text = common::ReadFileToString(cluster_->dir() + "/gone.pid");
  ASSERT_TRUE(pid_text.ok()) << pid_text.status().ToString();
  const int pid = std::atoi(pid_text->c_str());
  ASSERT_GT(pid, 0);
  struct statvfs before {};
  ASSERT_EQ(::statvfs(mnt_.c_str(), &before), 0) << std::strerror(errno);  // reads only: nothing queued for meta
  const int meta = cluster_->Pid("meta-1");
  ASSERT_GT(meta, 0);
  ASSERT_EQ(::kill(meta, SIGKILL), 0);
  auto start = std::chrono::steady_clock::now();
  struct statvfs after {};
  EXPECT_EQ(::statvfs(mnt_.c_str(), &after), 0) << std::strerror(errno);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  EXPECT_EQ(after.f_blocks, before.f_blocks);
  // umount(2) itself; umount(8) first stats the mount point, and that
  // stat, like any other, waits out retry_timeout before its EIO.
  start = std::chrono::steady_clock::now();
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8)) << "umount hung";
  start = std::chrono::steady_clock::now();
  while (::kill(pid, 0) == 0 && std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  EXPECT_NE(::kill(pid, 0), 0) << "the daemon still runs " << waited.count() << " ms after umount";
  EXPECT_LT(waited.count(), 10'000);
  if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
}

TEST_F(MountHelperTest, UnreachableCluster_FailsWithMessage) {
  int port = PickFreePort();  // nothing listens there
  CommandResult r = RunShell(BinaryPath("DFS_FUSE_BIN") + " 127.0.0.1:" + std::to_string(port) + " " + mnt_ +
                             " -o connect_timeout=2s");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("cannot reach the metadata service"), std::string::npos) << r.output;
  EXPECT_EQ(CountMounts(mnt_), 0);
}

}  // namespace
}  // namespace dfs::testing
