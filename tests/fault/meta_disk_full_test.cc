// The metadata disk fills up under a live mount. dfs-meta keeps
// --min-free-space (plus room for a snapshot) free in its data folder: with
// less, creates and writes fail with ENOSPC, deletes go on, nothing written
// before is lost, and once room is made everything goes on without a
// restart. Before, the first commit that met a full disk stopped dfs-meta
// (sqlite: "database or disk is full") and every call through the mount
// failed with EIO.
//
// meta-1's data folder is moved onto a 64 MiB tmpfs (needs root), which the
// test fills with a file.
#include <fcntl.h>
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
#include <functional>
#include <string>
#include <thread>

#include "common/file_util.h"
#include "tests/harness/process.h"
#include "tests/integration/fuse/cluster_fixture.h"

namespace dfs::testing {
namespace {

// A tmpfs mounted at `path` for the test's span; lazily unmounted at the end
// (a daemon may still hold files in it until the cluster is down).
class Tmpfs {
 public:
  Tmpfs() = default;
  ~Tmpfs() {
    if (!path_.empty()) ::umount2(path_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;
  bool Mount(const std::string& path, const std::string& size) {
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) return false;
    path_ = path;
    return true;
  }

 private:
  std::string path_;
};

// Whether process `pid` is still running (not gone, not a zombie).
bool Running(int pid) {
  auto stat = common::ReadFileToString("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return false;
  size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] != 'Z';
}

// Calls `step` until it returns true, for at most `limit`.
bool Within(std::chrono::milliseconds limit, const std::function<bool()>& step) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
    if (step()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return step();
}

TEST(MetaDiskFullTest, CreatesAndWritesFailWithEnospcDeletesGoOnAndNothingIsLost) {
  if (!FuseAvailable()) GTEST_SKIP() << "no /dev/fuse";
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  auto cluster = LocalCluster::Up(/*mount=*/true, 3, 1, {.meta = "--min-free-space 16M"});
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  const std::string mnt = (*cluster)->mount_point();
  const std::string folder = (*cluster)->dir() + "/meta-1";
  ASSERT_EQ(::mkdir((mnt + "/d").c_str(), 0755), 0) << std::strerror(errno);
  ASSERT_TRUE(common::WriteFileAtomic(mnt + "/d/old", "written before").ok());

  // meta-1 stops, its folder moves onto the tmpfs, and it starts again there.
  int meta_pid = (*cluster)->Pid("meta-1");
  ASSERT_GT(meta_pid, 0);
  ASSERT_EQ(::kill(meta_pid, SIGTERM), 0);
  ASSERT_TRUE(Within(std::chrono::seconds(20), [&] { return !Running(meta_pid); }));
  const std::string saved = (*cluster)->dir() + "/meta-1.saved";
  std::filesystem::copy(folder, saved, std::filesystem::copy_options::recursive);
  Tmpfs tmpfs;
  ASSERT_TRUE(tmpfs.Mount(folder, "64m")) << std::strerror(errno);
  std::filesystem::copy(saved, folder, std::filesystem::copy_options::recursive);
  ASSERT_TRUE((*cluster)->Restart("meta-1").ok());
  meta_pid = (*cluster)->Pid("meta-1");

  // A file open for writing across the fill, with bytes buffered in it.
  int open_fd = ::open((mnt + "/d/open").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(open_fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(open_fd, "before,", 7), 7);
  ASSERT_EQ(::fsync(open_fd), 0) << std::strerror(errno);

  // Fill the tmpfs to 8 MiB short of its end: under the 16 MiB kept.
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs(folder.c_str(), &vfs), 0);
  const uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  ASSERT_GT(avail, 24ull << 20) << "the moved meta-1 left too little of 64 MiB";
  const std::string filler = folder + "/filler";
  int fill_fd = ::open(filler.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fill_fd, 0);
  ASSERT_EQ(::fallocate(fill_fd, 0, 0, static_cast<off_t>(avail - (8ull << 20))), 0) << std::strerror(errno);
  ::close(fill_fd);

  // Meta measures its folder every half second: soon a mkdir is refused.
  int probe = 0, mkdir_errno = 0;
  EXPECT_TRUE(Within(std::chrono::seconds(10), [&] {
    if (::mkdir((mnt + "/d/probe" + std::to_string(probe++)).c_str(), 0755) == 0) return false;
    mkdir_errno = errno;
    return true;
  }));
  EXPECT_EQ(mkdir_errno, ENOSPC) << std::strerror(mkdir_errno);
  errno = 0;
  EXPECT_LT(::open((mnt + "/d/new").c_str(), O_CREAT | O_WRONLY, 0644), 0);
  EXPECT_EQ(errno, ENOSPC) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::symlink("old", (mnt + "/d/link").c_str()), -1);
  EXPECT_EQ(errno, ENOSPC) << std::strerror(errno);
  // A chmod root makes of a file it holds open is carried by the mount's
  // next request: a refused one must not take it along.
  ASSERT_EQ(::fchmod(open_fd, 0600), 0) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::mkdir((mnt + "/d/carrier").c_str(), 0755), -1);
  EXPECT_EQ(errno, ENOSPC) << std::strerror(errno);
  // A write is buffered; making it durable needs meta to commit: ENOSPC.
  ASSERT_EQ(::write(open_fd, "during,", 7), 7) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::fsync(open_fd), -1);
  EXPECT_EQ(errno, ENOSPC) << std::strerror(errno);
  // What was there reads, and deletes make room.
  auto old = common::ReadFileToString(mnt + "/d/old");
  EXPECT_TRUE(old.ok() && *old == "written before");
  EXPECT_EQ(::unlink((mnt + "/d/old").c_str()), 0) << std::strerror(errno);
  EXPECT_TRUE(Running(meta_pid)) << "dfs-meta stopped on a nearly full disk";
  const std::string status_cmd = BinaryPath("DFS_CTL_BIN") + " --meta " + (*cluster)->source() + " status";
  CommandResult status = RunShell(status_cmd);
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("SHORT OF ROOM"), std::string::npos) << status.output;

  // Room again: creates go on, and the buffered bytes reach the file.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  EXPECT_TRUE(Within(std::chrono::seconds(10), [&] { return ::mkdir((mnt + "/d/after").c_str(), 0755) == 0; }))
      << std::strerror(errno);
  EXPECT_EQ(RunShell(status_cmd).output.find("SHORT OF ROOM"), std::string::npos);
  EXPECT_EQ(::write(open_fd, "after", 5), 5);
  EXPECT_EQ(::close(open_fd), 0) << std::strerror(errno);
  auto whole = common::ReadFileToString(mnt + "/d/open");
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(*whole, "before,during,after");
  // Another mount sees the chmod.
  const std::string other = (*cluster)->dir() + "/mnt-other";
  ASSERT_TRUE((*cluster)->MountAgain(other).ok());
  struct stat st {};
  ASSERT_EQ(::stat((other + "/d/open").c_str(), &st), 0) << std::strerror(errno);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto log = common::ReadFileToString((*cluster)->dir() + "/meta-1.log");
  EXPECT_TRUE(log.ok() && log->find("refusing creates and writes with ENOSPC") != std::string::npos);
  // The mount says why, where its operator looks (df shows room).
  auto mount_log = common::ReadFileToString((*cluster)->dir() + "/dfs.log");
  EXPECT_TRUE(mount_log.ok() && mount_log->find("the metadata disk is nearly full") != std::string::npos);
  EXPECT_TRUE(Running(meta_pid));
}

}  // namespace
}  // namespace dfs::testing
