// Disks filling up under a live mount.
//
// The metadata disk: dfs-meta keeps --min-free-space (plus room for a
// snapshot) free in its data folder: with less, creates and writes fail with
// ENOSPC, deletes go on, nothing written before is lost, and once room is
// made everything goes on without a restart. Before, the first commit that
// met a full disk stopped dfs-meta (sqlite: "database or disk is full") and
// every call through the mount failed with EIO.
//
// A chunkserver's disk, with more chunkservers than copies: writes go on
// with the other copies and the missing ones are made on another node.
// Before, the repair of every chunk the full node missed was sent to that
// node again at every housekeeping pass, failing each time, forever. And
// before it is full: a chunkserver under its --min-free-space is given no
// new chunks or copies while other nodes have room.
//
// A daemon's data folder is moved onto a small tmpfs (needs root), which
// the test fills with a file.
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
#include <optional>
#include <string>
#include <thread>

#include "common/file_util.h"
#include "tests/harness/process.h"
#include "tests/harness/tmpfs.h"
#include "tests/integration/fuse/cluster_fixture.h"

namespace dfs::testing {
namespace {

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

// Stops daemon `name` of `cluster` (SIGTERM), moves its data folder onto
// `tmpfs` (mounted there, `size`) and starts it again.
void MoveOntoTmpfs(LocalCluster& cluster, const std::string& name, std::optional<TmpfsMount>& tmpfs,
                   const std::string& size) {
  const std::string folder = cluster.dir() + "/" + name;
  const int pid = cluster.Pid(name);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  ASSERT_TRUE(Within(std::chrono::seconds(20), [&] { return !Running(pid); }));
  const std::string saved = folder + ".saved";
  std::filesystem::copy(folder, saved, std::filesystem::copy_options::recursive);
  tmpfs.emplace(folder, size);
  ASSERT_TRUE(tmpfs->mounted()) << std::strerror(tmpfs->error());
  std::filesystem::copy(saved, folder, std::filesystem::copy_options::recursive);
  ASSERT_TRUE(cluster.Restart(name).ok());
}

// Fills the file system of `folder` with `folder`/filler, to `leave` bytes short of its end.
void Fill(const std::string& folder, uint64_t leave) {
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs(folder.c_str(), &vfs), 0);
  const uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  ASSERT_GT(avail, leave + (1u << 20)) << folder << " has too little room to fill";
  int fd = ::open((folder + "/filler").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fallocate(fd, 0, 0, static_cast<off_t>(avail - leave)), 0) << std::strerror(errno);
  ::close(fd);
}

TEST(DiskFullTest, MetaDisk_CreatesAndWritesFailWithEnospcDeletesGoOnAndNothingIsLost) {
  if (!FuseAvailable()) GTEST_SKIP() << "no /dev/fuse";
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const std::string ctl = BinaryPath("DFS_CTL_BIN");  // before the cluster: a missing one aborts
  auto cluster = LocalCluster::Up(/*mount=*/true, 3, 1, {.meta = "--min-free-space 16M"});
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  const std::string mnt = (*cluster)->mount_point();
  const std::string folder = (*cluster)->dir() + "/meta-1";
  ASSERT_EQ(::mkdir((mnt + "/d").c_str(), 0755), 0) << std::strerror(errno);
  ASSERT_TRUE(common::WriteFileAtomic(mnt + "/d/old", "written before").ok());

  // meta-1 stops, its folder moves onto the tmpfs, and it starts again there.
  std::optional<TmpfsMount> tmpfs;
  MoveOntoTmpfs(**cluster, "meta-1", tmpfs, "64m");
  if (HasFatalFailure()) return;
  const int meta_pid = (*cluster)->Pid("meta-1");

  // A file open for writing across the fill, with bytes buffered in it.
  int open_fd = ::open((mnt + "/d/open").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(open_fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(open_fd, "before,", 7), 7);
  ASSERT_EQ(::fsync(open_fd), 0) << std::strerror(errno);

  // Fill the tmpfs to 8 MiB short of its end: under the 16 MiB kept.
  Fill(folder, 8ull << 20);
  if (HasFatalFailure()) return;
  const std::string filler = folder + "/filler";

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
  const std::string status_cmd = ctl + " --meta " + (*cluster)->source() + " status";
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

// The number after "under-replicated" in `dfsctl status` (`ctl`), -1 if none.
int UnderReplicated(const std::string& ctl, const LocalCluster& cluster) {
  CommandResult r = RunShell(ctl + " --meta " + cluster.source() + " status");
  size_t at = r.output.find("under-replicated ");
  return r.exit_code == 0 && at != std::string::npos ? std::atoi(r.output.c_str() + at + 17) : -1;
}

// The line of `dfsctl nodes` (`ctl`) for node `id` (16 hex digits), or "".
std::string NodeLine(const std::string& ctl, LocalCluster& cluster, const std::string& id) {
  CommandResult r = RunShell(ctl + " --meta " + cluster.source() + " nodes");
  size_t at = r.exit_code == 0 ? r.output.find(id) : std::string::npos;
  return at == std::string::npos ? std::string() : r.output.substr(at, r.output.find('\n', at) - at);
}

// The chunk count, last on a `dfsctl nodes` line; -1 if none.
long ChunksOf(const std::string& line) {
  size_t at = line.find_last_of(' ');
  return line.empty() || at == std::string::npos ? -1 : std::atol(line.c_str() + at + 1);
}

// Node `name`'s id, from the first line of its log.
std::string NodeIdOf(LocalCluster& cluster, const std::string& name) {
  auto log = common::ReadFileToString(cluster.dir() + "/" + name + ".log");
  size_t at = log.ok() ? log->find("dfs-chunkserver node ") : std::string::npos;
  return at == std::string::npos ? std::string() : log->substr(at + 21, 16);
}

// How many copies onto node `id` failed, by meta-1's log.
int FailedCopiesOnto(LocalCluster& cluster, const std::string& id) {
  auto log = common::ReadFileToString(cluster.dir() + "/meta-1.log");
  int n = 0;
  for (size_t at = 0; log.ok() && (at = log->find("to " + id + " failed", at)) != std::string::npos; ++at) ++n;
  return n;
}


// The disk fills up with no warning (the chunkserver's own reserve is off):
// the missed copies are made elsewhere, each tried on cs-4 once.
TEST(DiskFullTest, ChunkserverDisk_WritesGoOnAndTheMissedCopiesAreMadeElsewhere) {
  if (!FuseAvailable()) GTEST_SKIP() << "no /dev/fuse";
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const std::string ctl = BinaryPath("DFS_CTL_BIN");  // before the cluster: a missing one aborts
  auto cluster = LocalCluster::Up(/*mount=*/true, /*chunkservers=*/4, 1, {.chunkserver = "--min-free-space 0"});
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  const std::string mnt = (*cluster)->mount_point();
  std::optional<TmpfsMount> tmpfs;
  MoveOntoTmpfs(**cluster, "cs-4", tmpfs, "32m");
  if (HasFatalFailure()) return;
  Fill((*cluster)->dir() + "/cs-4", 0);
  if (HasFatalFailure()) return;

  // 16 files of one chunk each: about 3/4 of them are placed on cs-4 too,
  // which takes none of them.
  std::string bytes(1 << 20, '\0');
  for (int i = 0; i < 16; ++i) {
    for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = static_cast<char>((i * 131 + j * 7) >> 3);
    int fd = ::open((mnt + "/f" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size())) << std::strerror(errno);
    ASSERT_EQ(::fsync(fd), 0) << "file " << i << ": " << std::strerror(errno);
    ASSERT_EQ(::close(fd), 0);
  }
  // Meta makes the missing copies on the one node left for each chunk.
  int under = -1;
  EXPECT_TRUE(Within(std::chrono::seconds(60), [&] { return (under = UnderReplicated(ctl, **cluster)) == 0; }))
      << under << " chunks still under-replicated";
  for (int i = 0; i < 16; ++i) {
    for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = static_cast<char>((i * 131 + j * 7) >> 3);
    auto back = common::ReadFileToString(mnt + "/f" + std::to_string(i));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == bytes) << "file " << i;
  }
  // The ring still puts copies on cs-4: meta tries to move them there, and
  // each chunk's move fails once (cs-4's disk is full), not over and over.
  // Before, each failed move was planned onto cs-4 again at the next pass.
  const std::string cs4_id = NodeIdOf(**cluster, "cs-4");
  ASSERT_EQ(cs4_id.size(), 16u) << "no node id in cs-4.log";
  auto failures = [&] { return FailedCopiesOnto(**cluster, cs4_id); };
  EXPECT_TRUE(Within(std::chrono::seconds(20), [&] { return failures() > 0; })) << "no copy onto cs-4 was tried";
  // At most 4 moves at a time, each failing within a heartbeat or two: by
  // then every chunk was tried. Without the memory of failed targets, about
  // two more failed every second.
  std::this_thread::sleep_for(std::chrono::seconds(12));
  const int settled = failures();
  std::this_thread::sleep_for(std::chrono::seconds(6));
  EXPECT_EQ(failures(), settled) << "copies onto the full cs-4 were tried again and again";
  EXPECT_LE(settled, 16);
  EXPECT_EQ(UnderReplicated(ctl, **cluster), 0);
}

// A chunkserver under its --min-free-space (12M here; cs-4 on a nearly full
// 32 MiB tmpfs) says so: new chunks go to the three nodes with room at once,
// nothing is copied onto it or moved off it, and once it has room again the
// ring's chunks move onto it. Before, a third of the writes missed a copy
// there and each chunk's copy onto it was tried and failed.
TEST(DiskFullTest, ChunkserverShortOfRoom_GetsNoNewChunksUntilItHasRoomAgain) {
  if (!FuseAvailable()) GTEST_SKIP() << "no /dev/fuse";
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const std::string ctl = BinaryPath("DFS_CTL_BIN");  // before the cluster: a missing one aborts
  auto cluster = LocalCluster::Up(/*mount=*/true, /*chunkservers=*/4, 1, {.chunkserver = "--min-free-space 12M"});
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  const std::string mnt = (*cluster)->mount_point();
  std::optional<TmpfsMount> tmpfs;
  MoveOntoTmpfs(**cluster, "cs-4", tmpfs, "32m");
  if (HasFatalFailure()) return;
  const std::string cs4_id = NodeIdOf(**cluster, "cs-4");
  ASSERT_EQ(cs4_id.size(), 16u) << "no node id in cs-4.log";
  const std::string filler = (*cluster)->dir() + "/cs-4/filler";
  Fill((*cluster)->dir() + "/cs-4", 4ull << 20);
  if (HasFatalFailure()) return;
  std::string line;
  ASSERT_TRUE(Within(std::chrono::seconds(10), [&] {
    return (line = NodeLine(ctl, **cluster, cs4_id)).find(" up,full ") != std::string::npos;
  })) << "dfsctl nodes: " << line;

  std::string bytes(1 << 20, '\0');
  auto content = [&](int i) {
    for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = static_cast<char>((i * 131 + j * 7) >> 3);
    return bytes;
  };
  for (int i = 0; i < 16; ++i) {
    content(i);
    int fd = ::open((mnt + "/f" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size())) << std::strerror(errno);
    ASSERT_EQ(::fsync(fd), 0) << "file " << i << ": " << std::strerror(errno);
    ASSERT_EQ(::close(fd), 0);
  }
  // Every chunk has its three copies as written: none is waiting for a repair.
  EXPECT_EQ(UnderReplicated(ctl, **cluster), 0);
  // Housekeeping runs every half second: give it a few passes to try.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(FailedCopiesOnto(**cluster, cs4_id), 0) << "copies were planned onto the node short of room";
  EXPECT_EQ(ChunksOf(NodeLine(ctl, **cluster, cs4_id)), 0) << NodeLine(ctl, **cluster, cs4_id);
  EXPECT_EQ(UnderReplicated(ctl, **cluster), 0);

  // Room again: it says so, and the chunks the ring gives it move there.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  EXPECT_TRUE(Within(std::chrono::seconds(30), [&] {
    line = NodeLine(ctl, **cluster, cs4_id);
    return line.find(" up ") != std::string::npos && ChunksOf(line) > 0;
  })) << "dfsctl nodes: " << line;
  EXPECT_TRUE(Within(std::chrono::seconds(30), [&] { return UnderReplicated(ctl, **cluster) == 0; }));
  for (int i = 0; i < 16; ++i) {
    auto back = common::ReadFileToString(mnt + "/f" + std::to_string(i));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == content(i)) << "file " << i;
  }
  EXPECT_EQ(FailedCopiesOnto(**cluster, cs4_id), 0);
}

}  // namespace
}  // namespace dfs::testing
