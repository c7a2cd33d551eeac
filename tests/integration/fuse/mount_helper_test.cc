// `mount -t fuse.dfs SOURCE MNT` and an fstab line with `mount -a` reach the
// dfs binary through mount.fuse3 (which runs `dfs SOURCE MNT -o opts` found on
// PATH), and a second `mount -a` does not mount twice (fsname=SOURCE).
// The fstab line lives in a private file (mount -T), so /etc/fstab is never
// touched. mount(8) hands its helpers a clean PATH, so, as after installing
// the package, `dfs` must be in a standard directory: the test links
// /usr/local/bin/dfs to the binary under test for its duration (and skips
// if another dfs is installed there).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/file_util.h"
#include "tests/harness/process.h"
#include "tests/integration/fuse/cluster_fixture.h"

namespace dfs::testing {
namespace {

int CountMounts(const std::string& mnt) {
  CommandResult r = RunShell("findmnt -l -n -o TARGET | grep -c -x '" + mnt + "'");
  return std::atoi(r.output.c_str());
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
      if (std::filesystem::read_symlink(kLink, ec) != BinaryPath("DFS_FUSE_BIN")) {
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
