// Integration: file locks through two real mounts of one cluster (two
// sessions, as two machines would have): fcntl record locks and flock
// conflict across mounts, a blocked F_SETLKW waits for the unlock and then
// reads what the holder wrote, close(2), process death and signals end
// locks and waits as on a local disk, and SQLite writers on both mounts
// keep one intact database. Also: a name another mount replaced is looked
// up again instead of opening the removed file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "tests/integration/fuse/cluster_fixture.h"

namespace dfs::testing {
namespace {

using Clock = std::chrono::steady_clock;

class LockTest : public MountedClusterTest {
 protected:
  void SetUp() override {
    MountedClusterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    one_ = SuiteCluster()->mount_point() + "/" + name;
    ASSERT_EQ(::mkdir(one_.c_str(), 0755), 0) << std::strerror(errno);
    static std::string second;  // one second mount for the whole suite
    if (second.empty()) {
      const std::string at = SuiteCluster()->dir() + "/locks2";
      ASSERT_EQ(::mkdir(at.c_str(), 0755), 0) << std::strerror(errno);
      ASSERT_TRUE(SuiteCluster()->MountAgain(at).ok());
      second = at;
    }
    two_ = second + "/" + name;
  }

  static int Open(const std::string& path, int flags = O_RDWR) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0) << path << ": " << std::strerror(errno);
    return fd;
  }
  static int Fcntl(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl{};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    return ::fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
  }
  // Runs `body` in a child process; its exit code (-1: killed or hung past 30 s).
  static pid_t Spawn(const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(body());
    return pid;
  }
  static int Join(pid_t pid, int timeout_s = 30) {
    int status = 0;
    for (auto end = Clock::now() + std::chrono::seconds(timeout_s); Clock::now() < end;) {
      if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return -1;
  }

  std::string one_;  // this test's directory on the suite's mount
  std::string two_;  // the same directory on a second mount
};

TEST_F(LockTest, FcntlLocks_ConflictAcrossMountsOnOverlapOnly) {
  int a = Open(one_ + "/f", O_RDWR | O_CREAT);
  int b = Open(two_ + "/f");
  ASSERT_EQ(Fcntl(a, F_SETLK, F_WRLCK, 0, 100), 0);
  EXPECT_EQ(Fcntl(b, F_SETLK, F_WRLCK, 50, 10), EAGAIN);
  EXPECT_EQ(Fcntl(b, F_SETLK, F_RDLCK, 99, 1), EAGAIN);
  EXPECT_EQ(Fcntl(b, F_SETLK, F_WRLCK, 100, 0), 0);  // to the end of file
  struct flock fl{};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 10;
  fl.l_len = 1;
  ASSERT_EQ(::fcntl(b, F_GETLK, &fl), 0) << std::strerror(errno);
  EXPECT_EQ(fl.l_type, F_WRLCK);
  EXPECT_EQ(fl.l_start, 0);
  EXPECT_EQ(fl.l_len, 100);
  EXPECT_EQ(fl.l_pid, 0);  // a process on another mount
  // Another process on the same mount sees the holder's pid.
  const pid_t me = ::getpid();
  pid_t child = Spawn([&] {
    int fd = ::open((one_ + "/f").c_str(), O_RDWR);
    struct flock q{};
    q.l_type = F_RDLCK;
    q.l_whence = SEEK_SET;
    q.l_start = 5;
    q.l_len = 1;
    if (fd < 0 || ::fcntl(fd, F_GETLK, &q) != 0) return 10;
    return q.l_type == F_WRLCK && q.l_pid == me ? 0 : 11;
  });
  EXPECT_EQ(Join(child), 0);
  ASSERT_EQ(Fcntl(a, F_SETLK, F_UNLCK, 0, 0), 0);
  EXPECT_EQ(Fcntl(b, F_SETLK, F_WRLCK, 0, 100), 0);
  ::close(a);
  ::close(b);
}

TEST_F(LockTest, BlockedSetlkwWaitsForTheUnlockThenReadsTheHoldersWrite) {
  {
    int fd = Open(one_ + "/data", O_RDWR | O_CREAT);
    ASSERT_EQ(::pwrite(fd, "old-old-", 8, 0), 8);
    ASSERT_EQ(::close(fd), 0);
  }
  int a = Open(one_ + "/data");
  ASSERT_EQ(Fcntl(a, F_SETLK, F_WRLCK, 0, 0), 0);
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  const auto start = Clock::now();
  pid_t child = Spawn([&] {
    int fd = ::open((two_ + "/data").c_str(), O_RDWR);
    char before[9] = {};
    // Caches the old bytes on the second mount before waiting.
    if (fd < 0 || ::pread(fd, before, 8, 0) != 8 || std::string(before) != "old-old-") return 10;
    if (::write(go[1], "r", 1) != 1) return 11;
    if (Fcntl(fd, F_SETLKW, F_WRLCK, 0, 0) != 0) return 12;
    char after[9] = {};
    if (::pread(fd, after, 8, 0) != 8) return 13;
    return std::string(after) == "new-new-" ? 0 : 14;
  });
  char c = 0;
  ASSERT_EQ(::read(go[0], &c, 1), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the child is waiting now
  EXPECT_EQ(::waitpid(child, nullptr, WNOHANG), 0) << "F_SETLKW did not wait";
  ASSERT_EQ(::pwrite(a, "new-new-", 8, 0), 8);
  ASSERT_EQ(Fcntl(a, F_SETLK, F_UNLCK, 0, 0), 0);  // flushes first
  EXPECT_EQ(Join(child), 0) << "10: open/read, 12: F_SETLKW, 14: the second mount read stale bytes";
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(300));
  ::close(a);
  ::close(go[0]);
  ::close(go[1]);
}

// A mount that wrote a file without a lock keeps the chunk's write lease
// cached; a lock holder on another mount takes the chunk over and writes a
// new version of it. The first mount's next flush finds its version refused
// and must write again under a new lease: fsync succeeds and every write is
// in the file.
TEST_F(LockTest, AWriterWhoseChunkALockHolderTook_WritesOnUnderANewLease) {
  int a = Open(one_ + "/f", O_RDWR | O_CREAT);
  ASSERT_EQ(::pwrite(a, "AAAA", 4, 0), 4);
  ASSERT_EQ(::fsync(a), 0) << std::strerror(errno);
  {
    int b = Open(two_ + "/f");
    ASSERT_EQ(Fcntl(b, F_SETLKW, F_WRLCK, 0, 0), 0);
    ASSERT_EQ(::pwrite(b, "BBBB", 4, 8), 4);
    ASSERT_EQ(::fsync(b), 0) << std::strerror(errno);
    ASSERT_EQ(Fcntl(b, F_SETLK, F_UNLCK, 0, 0), 0);
    ASSERT_EQ(::close(b), 0);
  }
  ASSERT_EQ(::pwrite(a, "CCCC", 4, 16), 4);
  ASSERT_EQ(::fsync(a), 0) << std::strerror(errno);
  ASSERT_EQ(::close(a), 0) << std::strerror(errno);
  int b = Open(two_ + "/f", O_RDONLY);
  char got[21] = {};
  ASSERT_EQ(::pread(b, got, 20, 0), 20) << std::strerror(errno);
  EXPECT_EQ(std::string(got, 20), std::string("AAAA\0\0\0\0BBBB\0\0\0\0CCCC", 20));
  ::close(b);
}

// Two mounts write one file without any lock, taking turns record by
// record (each fsync'd) while both keep the file open. A chunk has one
// writer at a time, so every turn moves its lease: the mount whose turn it
// is waits until the other's lease has stood unused for 2 s, takes it, and
// the other's next flush finds its version gone and writes under a new
// lease. Before, the second mount waited for the first to close, so this
// test's turns never came. Neither mount sees an error; no record is lost.
TEST_F(LockTest, WritersOnTwoMountsWithoutLocks_TakeTurnsAndLoseNothing) {
  constexpr int kRecords = 3;
  constexpr size_t kRecordBytes = 100;
  auto record = [](int writer, int i) { return std::string(kRecordBytes, static_cast<char>('a' + writer * 8 + i)); };
  int to_second[2], to_first[2];
  ASSERT_EQ(::pipe(to_second), 0);
  ASSERT_EQ(::pipe(to_first), 0);
  // Writer 0 writes record i, then hands over; writer 1 waits, writes, hands back.
  auto write_all = [&](const std::string& path, int writer, int wait_fd, int tell_fd) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return 10;
    char token = 0;  // 50: the other writer stopped
    for (int i = 0; i < kRecords; ++i) {
      if (writer == 1 && ::read(wait_fd, &token, 1) != 1) return 50;
      const std::string r = record(writer, i);
      const off_t at = static_cast<off_t>((i * 2 + writer) * kRecordBytes);
      if (::pwrite(fd, r.data(), r.size(), at) != static_cast<ssize_t>(r.size())) return 20 + i;
      if (::fsync(fd) != 0) return 30 + i;
      if (::write(tell_fd, "t", 1) != 1) return 50;
      if (writer == 0 && ::read(wait_fd, &token, 1) != 1) return 50;
    }
    return ::close(fd) == 0 ? 0 : 40;
  };
  {
    int fd = Open(one_ + "/shared", O_RDWR | O_CREAT);
    ASSERT_EQ(::close(fd), 0);
  }
  const auto start = Clock::now();
  pid_t second = Spawn([&] {
    ::close(to_second[1]);  // so that either side's end is the other's EOF
    ::close(to_first[0]);
    return write_all(two_ + "/shared", 1, to_second[0], to_first[1]);
  });
  ::close(to_second[0]);
  ::close(to_first[1]);
  const int first = write_all(one_ + "/shared", 0, to_first[0], to_second[1]);
  ::close(to_second[1]);
  EXPECT_EQ(first, 0) << "10: open, 2x: write, 3x: fsync of record x, 40: close (first mount)";
  EXPECT_EQ(Join(second, 120), 0) << "10: open, 2x: write, 3x: fsync of record x, 40: close (second mount)";
  std::printf("%d turns of two writers of one file on two mounts: %.1f s\n", 2 * kRecords,
              std::chrono::duration<double>(Clock::now() - start).count());
  ::close(to_first[0]);
  for (const std::string& dir : {one_, two_}) {
    int fd = Open(dir + "/shared", O_RDONLY);
    std::string got(2 * kRecords * kRecordBytes, '\0');
    ASSERT_EQ(::pread(fd, got.data(), got.size(), 0), static_cast<ssize_t>(got.size())) << dir;
    for (int i = 0; i < kRecords; ++i) {
      for (int writer = 0; writer < 2; ++writer) {
        EXPECT_EQ(got.substr((i * 2 + writer) * kRecordBytes, kRecordBytes), record(writer, i))
            << dir << ": record " << i << " of writer " << writer;
      }
    }
    ::close(fd);
  }
}

TEST_F(LockTest, CloseOfAnyDescriptorEndsTheProcesssLocks) {
  int a = Open(one_ + "/f", O_RDWR | O_CREAT);
  int a2 = Open(one_ + "/f");
  int b = Open(two_ + "/f");
  ASSERT_EQ(Fcntl(a, F_SETLK, F_WRLCK, 0, 0), 0);
  EXPECT_EQ(Fcntl(b, F_SETLK, F_WRLCK, 0, 0), EAGAIN);
  ASSERT_EQ(::close(a2), 0);  // POSIX: any close by the process drops its locks on the file
  EXPECT_EQ(Fcntl(b, F_SETLK, F_WRLCK, 0, 0), 0);
  ::close(a);
  ::close(b);
}

TEST_F(LockTest, Flock_ExcludesAcrossMountsAndEndsAtClose) {
  int a = Open(one_ + "/f", O_RDWR | O_CREAT);
  int b = Open(two_ + "/f");
  ASSERT_EQ(::flock(a, LOCK_SH), 0) << std::strerror(errno);
  EXPECT_EQ(::flock(b, LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(errno, EWOULDBLOCK);
  EXPECT_EQ(::flock(b, LOCK_SH | LOCK_NB), 0) << std::strerror(errno);
  EXPECT_EQ(Fcntl(b, F_SETLK, F_WRLCK, 0, 0), 0);  // flock and fcntl locks do not meet
  ASSERT_EQ(::flock(b, LOCK_UN), 0);
  EXPECT_EQ(::flock(b, LOCK_EX | LOCK_NB), -1);
  // The last close of a's open file ends its flock - at the release, which
  // the kernel sends just after close(2) returns.
  ASSERT_EQ(::close(a), 0);
  bool taken = false;
  for (auto end = Clock::now() + std::chrono::seconds(5); !taken && Clock::now() < end;) {
    taken = ::flock(b, LOCK_EX | LOCK_NB) == 0;
    if (!taken) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(taken) << std::strerror(errno);
  ::close(b);
}

TEST_F(LockTest, AKilledHoldersLocksGoAndASignalEndsAWait) {
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t holder = Spawn([&] {
    int fd = ::open((one_ + "/f").c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0 || Fcntl(fd, F_SETLK, F_WRLCK, 0, 0) != 0 || ::flock(fd, LOCK_EX) != 0) return 10;
    if (::write(go[1], "h", 1) != 1) return 11;
    ::pause();
    return 12;
  });
  char c = 0;
  ASSERT_EQ(::read(go[0], &c, 1), 1);
  int b = Open(two_ + "/f");
  ASSERT_EQ(Fcntl(b, F_SETLK, F_WRLCK, 0, 0), EAGAIN);
  // A waiter interrupted by a signal gets EINTR.
  pid_t waiter = Spawn([&] {
    struct sigaction sa{};
    sa.sa_handler = [](int) {};
    ::sigaction(SIGALRM, &sa, nullptr);  // no SA_RESTART
    int fd = ::open((two_ + "/f").c_str(), O_RDWR);
    ::alarm(1);
    const int err = Fcntl(fd, F_SETLKW, F_WRLCK, 0, 0);
    return err == EINTR ? 0 : 20 + (err & 0x3f);
  });
  EXPECT_EQ(Join(waiter, 20), 0) << "20+errno: F_SETLKW did not end with EINTR";
  ::kill(holder, SIGKILL);
  EXPECT_EQ(Join(holder), -1);
  // The kernel closes the dead process's files: its locks end.
  EXPECT_EQ(Fcntl(b, F_SETLK, F_WRLCK, 0, 0), 0);
  EXPECT_EQ(::flock(b, LOCK_EX | LOCK_NB), 0) << std::strerror(errno);
  ::close(b);
  ::close(go[0]);
  ::close(go[1]);
}

// locks=local: the kernel keeps this mount's locks, as before meta kept
// them - other mounts do not see them, processes on the same mount do.
TEST_F(LockTest, LocksLocal_StayOnTheirMount) {
  const std::string local = SuiteCluster()->dir() + "/locks-local";
  ASSERT_EQ(::mkdir(local.c_str(), 0755), 0);
  ASSERT_TRUE(SuiteCluster()->MountAgain(local, "locks=local").ok());
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  int a = Open(one_ + "/f", O_RDWR | O_CREAT);
  int l = Open(local + "/" + name + "/f");
  ASSERT_EQ(Fcntl(a, F_SETLK, F_WRLCK, 0, 0), 0);
  ASSERT_EQ(::flock(a, LOCK_EX), 0);
  EXPECT_EQ(Fcntl(l, F_SETLK, F_WRLCK, 0, 0), 0);  // not seen here
  EXPECT_EQ(::flock(l, LOCK_EX | LOCK_NB), 0);
  pid_t child = Spawn([&] {
    int fd = ::open((local + "/" + name + "/f").c_str(), O_RDWR);
    return fd >= 0 && Fcntl(fd, F_SETLK, F_WRLCK, 0, 0) == EAGAIN ? 0 : 10;  // but here
  });
  EXPECT_EQ(Join(child), 0);
  ::close(a);
  ::close(l);
}

// SQLite (rollback journal) writers on both mounts: every committed row is
// there once and the database checks out.
TEST_F(LockTest, SqliteWritersOnTwoMounts_KeepOneIntactDatabase) {
  constexpr int kRows = 40;
  const std::string db1 = one_ + "/app.db", db2 = two_ + "/app.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db1.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, who INTEGER, v TEXT)", nullptr, nullptr,
                           nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto writer = [&](const std::string& path, int who) {
    return Spawn([path, who] {
      sqlite3* db = nullptr;
      if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return 10;
      sqlite3_busy_timeout(db, 30'000);
      for (int i = 0; i < kRows; ++i) {
        std::string sql = "INSERT INTO t(who, v) VALUES(" + std::to_string(who) + ", hex(randomblob(300)))";
        if (int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr); rc != SQLITE_OK) {
          std::fprintf(stderr, "writer %d row %d: %s (%d)\n", who, i, sqlite3_errmsg(db),
                       sqlite3_extended_errcode(db));
          return 11;
        }
      }
      sqlite3_close(db);
      return 0;
    });
  };
  pid_t w[4] = {writer(db1, 0), writer(db2, 1), writer(db1, 2), writer(db2, 3)};
  for (pid_t pid : w) EXPECT_EQ(Join(pid, 120), 0);
  for (const std::string& path : {db1, db2}) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    std::string answer;
    auto collect = [](void* out, int n, char** values, char**) {
      for (int i = 0; i < n; ++i) *static_cast<std::string*>(out) += std::string(values[i] ? values[i] : "") + ";";
      return 0;
    };
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA integrity_check; SELECT count(*), count(DISTINCT id) FROM t;"
                           " SELECT who, count(*) FROM t GROUP BY who ORDER BY who;",
                           collect, &answer, nullptr),
              SQLITE_OK);
    EXPECT_EQ(answer, "ok;160;160;0;40;1;40;2;40;3;40;") << path;
    sqlite3_close(db);
  }
}

// Another mount replaced a name this mount's kernel still has cached (within
// entry_timeout): an open looks the name up again and opens the new file,
// never the removed one.
TEST_F(LockTest, ANameAnotherMountReplaced_OpensTheNewFile) {
  {
    int fd = Open(one_ + "/name", O_RDWR | O_CREAT);
    ASSERT_EQ(::write(fd, "first", 5), 5);
    ASSERT_EQ(::close(fd), 0);
  }
  struct stat st{};
  ASSERT_EQ(::stat((two_ + "/name").c_str(), &st), 0);  // the second mount caches the name
  ASSERT_EQ(::unlink((one_ + "/name").c_str()), 0);
  {
    int fd = Open(one_ + "/name", O_RDWR | O_CREAT);
    ASSERT_EQ(::write(fd, "second", 6), 6);
    ASSERT_EQ(::close(fd), 0);
  }
  int fd = Open(two_ + "/name", O_RDONLY);
  char buf[16] = {};
  EXPECT_EQ(::read(fd, buf, sizeof buf), 6);
  EXPECT_STREQ(buf, "second");
  ::close(fd);
}

}  // namespace
}  // namespace dfs::testing
