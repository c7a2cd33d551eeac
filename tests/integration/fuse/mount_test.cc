// Integration: a real FUSE mount of a real local cluster, used through
// ordinary syscalls and tools, compared step by step with a local temp dir.
#include <dirent.h>
#include <grp.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/posix_acl.h"
#include "tests/harness/process.h"
#include "tests/integration/fuse/cluster_fixture.h"
#include "tests/integration/fuse/compare_local.h"

namespace dfs::testing {
namespace {

using MountTest = MountAndLocalTest;

void WriteFile(const std::string& path, const std::string& data, size_t piece = 100'003) {
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  for (size_t pos = 0; pos < data.size(); pos += piece) {
    size_t n = std::min(piece, data.size() - pos);
    ASSERT_EQ(::write(fd, data.data() + pos, n), static_cast<ssize_t>(n)) << std::strerror(errno);
  }
  ASSERT_EQ(::close(fd), 0) << std::strerror(errno);
}

int Err(int rc) { return rc < 0 ? errno : 0; }

TEST_F(MountTest, FileData_RoundTripsAtEverySize) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{65536}, size_t{65537}, size_t{(1 << 20) + 3},
                      size_t{3 << 20}}) {
    std::string path = dfs_ + "/f" + std::to_string(size);
    std::string data = RandomBytes(size, size);
    WriteFile(path, data);
    struct stat st{};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), size);
    EXPECT_EQ(ReadFile(path), data) << "size " << size;
  }
}

TEST_F(MountTest, LargeFile_CrossesChunkBoundary) {
  const size_t size = (70u << 20) + 12345;  // past the first 64 MiB chunk
  std::string data = RandomBytes(size, 70);
  WriteFile(dfs_ + "/big", data, 1 << 20);
  std::string back = ReadFile(dfs_ + "/big");
  ASSERT_EQ(back.size(), size);
  EXPECT_TRUE(back == data) << "content differs";
  // A read straddling the boundary, through pread.
  int fd = ::open((dfs_ + "/big").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string piece(1 << 20, '\0');
  off_t at = (64 << 20) - 4096;
  ASSERT_EQ(::pread(fd, piece.data(), piece.size(), at), static_cast<ssize_t>(piece.size()));
  EXPECT_TRUE(piece == data.substr(static_cast<size_t>(at), piece.size()));
  ::close(fd);
}

TEST_F(MountTest, RandomWrites_MatchLocalFileAndReadOwnWrites) {
  std::mt19937_64 rng(5);
  int fd_d = ::open((dfs_ + "/r").c_str(), O_CREAT | O_RDWR, 0644);
  int fd_l = ::open((local_ + "/r").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd_d, 0);
  ASSERT_GE(fd_l, 0);
  for (int i = 0; i < 200; ++i) {
    off_t off = static_cast<off_t>(rng() % (6 << 20));
    std::string data = RandomBytes(1 + rng() % 200'000, rng());
    ASSERT_EQ(::pwrite(fd_d, data.data(), data.size(), off), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(::pwrite(fd_l, data.data(), data.size(), off), static_cast<ssize_t>(data.size()));
    if (i % 20 == 0) {  // read-your-writes while the file is open
      std::string a(100'000, '\0'), b(100'000, '\0');
      off_t r = static_cast<off_t>(rng() % (6 << 20));
      ssize_t na = ::pread(fd_d, a.data(), a.size(), r);
      ssize_t nb = ::pread(fd_l, b.data(), b.size(), r);
      ASSERT_EQ(na, nb);
      EXPECT_TRUE(a == b) << "read at " << r << " after write " << i;
    }
    if (i % 50 == 49) {
      ASSERT_EQ(::fsync(fd_d), 0) << std::strerror(errno);
    }
  }
  ASSERT_EQ(::close(fd_d), 0);
  ::close(fd_l);
  EXPECT_TRUE(ReadFile(dfs_ + "/r") == ReadFile(local_ + "/r"));
}

// Truncate inside a chunk, then write past the new end: the gap must read as
// zeros, never as the bytes that were cut off (meta records the cut as a
// shorter length; the writer cuts the chunk it builds).
TEST_F(MountTest, TruncateThenWritePastEnd_GapReadsZeros) {
  for (const std::string& root : {dfs_, local_}) {
    std::string f = root + "/t";
    WriteFile(f, RandomBytes(10 << 20, 3));
    ASSERT_EQ(::truncate(f.c_str(), 5 << 20), 0) << std::strerror(errno);
    int fd = ::open(f.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "z", 1, 8 << 20), 1);
    ASSERT_EQ(::close(fd), 0);
  }
  std::string a = ReadFile(dfs_ + "/t"), b = ReadFile(local_ + "/t");
  ASSERT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b) << "first difference at " << std::mismatch(a.begin(), a.end(), b.begin()).first - a.begin();
}

// The same namespace steps on both sides; results and errno must agree.
TEST_F(MountTest, NamespaceOps_MatchLocalErrno) {
  for (const std::string& root : {dfs_, local_}) {
    SCOPED_TRACE(root);
    std::vector<int> got;
    auto p = [&](const char* rel) { return root + "/" + rel; };
    got.push_back(Err(::mkdir(p("a").c_str(), 0755)));
    got.push_back(Err(::mkdir(p("a").c_str(), 0755)));                  // EEXIST
    got.push_back(Err(::mkdir(p("nope/x").c_str(), 0755)));             // ENOENT
    int fd = ::open(p("a/f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0640);
    got.push_back(fd >= 0 ? 0 : errno);
    if (fd >= 0) ::close(fd);
    got.push_back(Err(::open(p("a/f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0640)));  // EEXIST
    got.push_back(Err(::rename(p("a/f").c_str(), p("a/g").c_str())));
    got.push_back(Err(::link(p("a/g").c_str(), p("a/h").c_str())));
    struct stat st{};
    got.push_back(Err(::stat(p("a/g").c_str(), &st)));
    got.push_back(static_cast<int>(st.st_nlink));                       // 2
    got.push_back(static_cast<int>(st.st_mode & 07777));
    got.push_back(Err(::symlink("g", p("a/s").c_str())));
    char target[64] = {};
    got.push_back(static_cast<int>(::readlink(p("a/s").c_str(), target, sizeof target)));
    got.push_back(std::string(target) == "g");
    got.push_back(Err(::rmdir(p("a").c_str())));                        // ENOTEMPTY
    got.push_back(Err(::unlink(p("a").c_str())));                       // EISDIR
    got.push_back(Err(::rmdir(p("a/g").c_str())));                      // ENOTDIR
    got.push_back(Err(::renameat2(AT_FDCWD, p("a/g").c_str(), AT_FDCWD, p("a/h").c_str(), RENAME_NOREPLACE)));
    got.push_back(Err(::mkdir(p("a/d").c_str(), 0700)));
    got.push_back(Err(::renameat2(AT_FDCWD, p("a/g").c_str(), AT_FDCWD, p("a/d").c_str(), RENAME_EXCHANGE)));
    got.push_back(Err(::stat(p("a/g").c_str(), &st)));
    got.push_back(S_ISDIR(st.st_mode));                                 // exchanged: g is the directory now
    got.push_back(Err(::rename(p("a").c_str(), p("a/g/inside").c_str())));  // EINVAL
    got.push_back(Err(::chmod(p("a/h").c_str(), 0600)));
    got.push_back(Err(::stat(p("a/h").c_str(), &st)));
    got.push_back(static_cast<int>(st.st_mode & 07777));
    got.push_back(Err(::truncate(p("a/h").c_str(), 12345)));
    got.push_back(Err(::stat(p("a/h").c_str(), &st)));
    got.push_back(static_cast<int>(st.st_size));
    got.push_back(Err(::unlink(p("a/missing").c_str())));               // ENOENT
    got.push_back(Err(::mkdir(p(std::string(256, 'n').c_str()).c_str(), 0755)));  // ENAMETOOLONG
    static std::vector<int> first;
    if (root == dfs_) {
      first = got;
    } else {
      EXPECT_EQ(first, got) << "dfs (first) and local (second) disagree";
    }
  }
}

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// A seeded random sequence of namespace and data operations, each step run
// on one of `dfs_roots` (the same directory through different mounts) and
// on `local`: every result and errno must agree, and so must the final trees
// (names, types, sizes, link counts, contents). With `more_ops`, also
// O_APPEND writes, chmod, stat and sorted listings. Failures print the seed,
// the step and the mount.
void SimpleSequenceMatchesLocal(const std::vector<std::string>& dfs_roots, const std::string& local, uint64_t seed,
                                int steps, bool more_ops) {
  std::mt19937_64 rng(seed);
  const std::vector<std::string> names = {"a", "b", "c", "d/a", "d/b", "e", "d"};
  auto pick = [&] { return names[rng() % names.size()]; };
  int succeeded = 0;
  for (int step = 0; step < steps; ++step) {
    int op = static_cast<int>(rng() % (more_ops ? 13 : 9));
    std::string x = pick(), y = pick();
    uint64_t off = rng() % (3 << 20), len = 1 + rng() % 300'000, data_seed = rng();
    const size_t which = dfs_roots.size() > 1 ? rng() % dfs_roots.size() : 0;
    std::vector<long> results;
    for (const std::string& root : {dfs_roots[which], local}) {
      std::string px = root + "/" + x, py = root + "/" + y;
      long r = 0;
      switch (op) {
        case 0: r = ::mkdir(px.c_str(), 0755); break;
        case 1:
        case 9: {  // a write at `off`, or (9) appended
          int fd = ::open(px.c_str(), O_CREAT | O_WRONLY | (op == 9 ? O_APPEND : 0), 0644);
          if (fd >= 0) {
            std::string data = RandomBytes(op == 9 ? len % 70'000 + 1 : len, data_seed);
            r = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off));
            ::close(fd);
          } else {
            r = -1;
          }
          break;
        }
        case 2: r = ::truncate(px.c_str(), static_cast<off_t>(off)); break;
        case 3: r = ::rename(px.c_str(), py.c_str()); break;
        case 4: r = ::link(px.c_str(), py.c_str()); break;
        case 5: r = ::unlink(px.c_str()); break;
        case 6: r = ::rmdir(px.c_str()); break;
        case 7: r = ::symlink(x.c_str(), py.c_str()); break;
        case 8: {
          int fd = ::open(px.c_str(), O_RDONLY);
          if (fd >= 0) {
            std::string buf(len, '\0');
            r = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
            if (r > 0) r = static_cast<long>(std::hash<std::string>()(buf.substr(0, static_cast<size_t>(r))) % 1000003);
            ::close(fd);
          } else {
            r = -1;
          }
          break;
        }
        case 10: r = ::chmod(px.c_str(), static_cast<mode_t>(0600 + data_seed % 0100)); break;
        case 11: {  // what stat says, files only (a directory's size and links differ by design)
          struct stat st{};
          r = ::lstat(px.c_str(), &st);
          if (r == 0 && S_ISREG(st.st_mode)) {
            r = static_cast<long>((st.st_size * 31 + st.st_nlink) * 0100000 + (st.st_mode & 07777)) % 1000000007;
          }
          break;
        }
        case 12: r = ListingHash(px); break;  // the names in a directory, sorted
      }
      results.push_back(r < 0 ? -errno : r);
    }
    ASSERT_EQ(results[0], results[1]) << "seed " << seed << " step " << step << " op " << op << " " << x << " "
                                      << y << " on " << dfs_roots[which] << " (dfs first, local second)";
    succeeded += results[1] >= 0;
  }
  EXPECT_GT(succeeded, steps / 4) << "the sequence mostly failed: it tests little";
  auto a = Snapshot(dfs_roots[0]), b = Snapshot(local);
  ASSERT_EQ(a.size(), b.size()) << "seed " << seed;
  for (const auto& [path, entry] : b) {
    ASSERT_TRUE(a.contains(path)) << path;
    EXPECT_TRUE(a[path] == entry) << path << ": " << a[path].type << " " << a[path].size << " nlink "
                                  << a[path].nlink << " vs " << entry.type << " " << entry.size << " nlink "
                                  << entry.nlink;
  }
}

TEST_F(MountTest, DifferentialRandomOps_MatchLocal) {
  SimpleSequenceMatchesLocal({dfs_}, local_, 20261128, 400, /*more_ops=*/false);
}

// The same, each step through one of two mounts of the cluster chosen at
// random: what one mount did, the other must see at once (close-to-open:
// every step opens and closes; with attr_timeout=0,entry_timeout=0 neither
// kernel nor mount may answer from what it saw before; with the default 1 s
// this fails within 30 steps). Reads check that each mount's page cache and
// block cache are dropped when the file changed elsewhere, appends that
// each appends at the end the other left.
TEST_F(MountTest, DifferentialRandomOps_ThroughTwoMounts_MatchLocal) {
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::vector<std::string> roots;
  for (const char* m : {"/mnt-two-a", "/mnt-two-b"}) {
    const std::string at = SuiteCluster()->dir() + m;
    ASSERT_TRUE(SuiteCluster()->MountAgain(at, "attr_timeout=0,entry_timeout=0").ok());
    roots.push_back(at + "/" + name);
  }
  SimpleSequenceMatchesLocal(roots, local_, EnvOr("DFS_DIFF_SEED", 20261204),
                             static_cast<int>(EnvOr("DFS_DIFF_STEPS", 600)), /*more_ops=*/true);
}

// Runs `op` in a child process as uid/gid (no supplementary groups); its
// result (an errno, 0 for success) or 200+ when the child could not start.
int ErrnoAs(uint32_t uid, uint32_t gid, const std::function<int()>& op) {
  pid_t pid = ::fork();
  if (pid < 0) return 202;
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0) {
      ::_exit(200);
    }
    ::_exit(op());
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return 201;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 201;
}

// The tree under `root` holds exactly the entries of `want` (a Snapshot of
// the local twin), each alike; failures name the seed that made them.
void ExpectTreeIs(const std::string& root, const std::map<std::string, TreeEntry>& want, uint64_t seed) {
  auto a = Snapshot(root);
  ASSERT_EQ(a.size(), want.size()) << root << " DFS_DIFF_SEED=" << seed;
  for (const auto& [path, entry] : want) {
    ASSERT_TRUE(a.contains(path)) << root << path << " DFS_DIFF_SEED=" << seed;
    EXPECT_TRUE(a[path] == entry) << root << path << ": " << a[path].type << " " << a[path].size << " nlink "
                                  << a[path].nlink << " mode " << std::oct << a[path].mode << " vs " << entry.type
                                  << " " << std::dec << entry.size << " nlink " << entry.nlink << " mode "
                                  << std::oct << entry.mode << std::dec << " DFS_DIFF_SEED=" << seed;
  }
}

// Runs the open-files sequence in `dir` (a directory on a mount, made like
// the local one), then compares the tree with the local one through `dir`
// and through `view`, the same directory seen through another mount.
// With `as_user`, the sequence runs in a child process as that uid and gid
// (no supplementary groups; its failures print from the child).
void OpenFilesSequenceMatchesLocal(const std::string& dir, const std::string& local, const std::string& view,
                                   uint64_t default_seed, std::optional<uint32_t> as_user = std::nullopt) {
  const SequenceOptions options{.seed = EnvOr("DFS_DIFF_SEED", default_seed), .steps = EnvOr("DFS_DIFF_STEPS", 500),
                                .trace = EnvOr("DFS_DIFF_TRACE", 0)};
  SequenceStats stats;
  if (as_user) {
    std::fflush(nullptr);
    const int failed = ErrnoAs(*as_user, *as_user, [&] {
      RunOpenFilesSequence(dir, local, options, &stats);
      std::fflush(nullptr);  // the child leaves with _exit
      return ::testing::Test::HasFailure() ? 1 : 0;
    });
    ASSERT_EQ(failed, 0) << "the sequence as uid " << *as_user << " failed (above)";
  } else {
    RunOpenFilesSequence(dir, local, options, &stats);
  }
  if (::testing::Test::HasFatalFailure()) return;
  // A child's counts stay in the child: the checks on them are the root runs'.
  if (!as_user) std::fprintf(stderr, "steps %d ok, %d through open files\n", stats.succeeded, stats.through_handles);
  if (!as_user && options.steps >= 200) {
    EXPECT_GT(stats.succeeded, static_cast<int>(options.steps / 4)) << "the sequence mostly failed: it tests little";
    EXPECT_GT(stats.through_handles, static_cast<int>(options.steps / 20)) << "few steps went through open files";
  }
  const auto b = Snapshot(local);
  EXPECT_FALSE(b.empty()) << "the sequence left nothing to compare";
  for (const std::string& root : {dir, view}) {
    ExpectTreeIs(root, b, options.seed);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// Another seeded sequence, of what the one above leaves out: files held
// open across steps while other steps rename, link and unlink their names
// (RunOpenFilesSequence says what it does). $DFS_DIFF_SEED and
// $DFS_DIFF_STEPS run another sequence or a longer one, $DFS_DIFF_TRACE=1
// prints each step; a failure prints seed and steps.
TEST_F(MountTest, DifferentialRandomOpsWithOpenFiles_MatchLocal) {
  // The view through a fresh mount: what this mount answered from its own
  // caches (carried chmods, buffered sizes) must be at meta.
  const std::string second = SuiteCluster()->dir() + "/mnt-open-files";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  OpenFilesSequenceMatchesLocal(dfs_, local_, second + "/" + name, 20261201);
}

// The same on a mount whose kernel caches nothing (every lookup and getattr
// reaches the mount, which then answers from its own state) and whose block
// cache is small.
TEST_F(MountTest, DifferentialRandomOpsWithOpenFiles_NoKernelCaches_MatchLocal) {
  const std::string uncached = SuiteCluster()->dir() + "/mnt-uncached";
  ASSERT_TRUE(SuiteCluster()->MountAgain(uncached, "attr_timeout=0,entry_timeout=0,cache_size=1M").ok());
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  OpenFilesSequenceMatchesLocal(uncached + "/" + name, local_, dfs_, 20261202);
}

// The same as an ordinary user: every permission check (the kernel's and
// meta's) must give what the local file system gives, chmod 0444 included.
TEST_F(MountTest, DifferentialRandomOpsWithOpenFiles_AsAUser_MatchLocal) {
  ASSERT_EQ(::chmod(SuiteCluster()->dir().c_str(), 0755), 0);  // mkdtemp folders: 0700
  ASSERT_EQ(::chmod(local_root_.path().c_str(), 0755), 0);
  for (const std::string& d : {dfs_, local_}) ASSERT_EQ(::chown(d.c_str(), 1000, 1000), 0) << d;
  const std::string second = SuiteCluster()->dir() + "/mnt-as-user";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  OpenFilesSequenceMatchesLocal(dfs_, local_, second + "/" + name, 20261203, /*as_user=*/1000);
}

// Four sequences at once on one mount, each in its own directory with its
// own seed: each must still match its local twin step by step. The mount's
// shared state (the name-change and data stamps, listings, held attributes,
// the block cache) serves all four threads, so a stamp taken by one thread
// that another's change should void, or a cache keyed too coarsely, shows
// here where single-threaded sequences cannot see it. The trees are then
// compared through a second mount, which must see what meta holds.
TEST_F(MountTest, DifferentialRandomOpsWithOpenFiles_FourAtOnce_MatchLocal) {
  const std::string second = SuiteCluster()->dir() + "/mnt-four";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const uint64_t base = EnvOr("DFS_DIFF_SEED", 20261205);
  const uint64_t steps = EnvOr("DFS_DIFF_STEPS", 300);
  std::vector<std::thread> threads;
  std::vector<SequenceStats> stats(4);
  for (int t = 0; t < 4; ++t) {
    const std::string sub = "/t" + std::to_string(t);
    ASSERT_EQ(::mkdir((dfs_ + sub).c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((local_ + sub).c_str(), 0755), 0);
    threads.emplace_back([&, t, sub] {
      RunOpenFilesSequence(dfs_ + sub, local_ + sub, {.seed = base + t, .steps = steps}, &stats[t]);
    });
  }
  for (auto& th : threads) th.join();
  if (HasFatalFailure()) return;
  for (int t = 0; t < 4; ++t) {
    EXPECT_GT(stats[t].succeeded, static_cast<int>(steps / 4)) << "thread " << t << " mostly failed";
  }
  const auto b = Snapshot(local_);
  for (const std::string& root : {dfs_, second + "/" + name}) {
    ExpectTreeIs(root, b, base);
    if (HasFatalFailure()) return;
  }
}

// Threads sharing one file and one directory, the way a database's
// processes share theirs. Each owns every fourth stripe of the file (stripes
// meet inside pages and 64 KiB blocks, and the file grows as they add
// stripes) and a prefix of names. Each changes its own by pwrite, by a shared
// writable mapping, under fcntl locks, with fsyncs, while the others do the
// same next door, and checks after every step that it reads back what it
// wrote (through its handle, a fresh open after dropping the kernel's pages,
// and the mapping), that fstat and stat never show less than it wrote, and
// that the directory lists exactly its names. A second mount then reads the
// whole file and directory. Where a reply learned for one thread's call
// overwrote what another thread's write made newer, or a flush lost a
// neighbour's bytes in a shared page or block, this fails (the stale-size bug
// of the SQLite WAL writers was of that kind).
TEST_F(MountTest, ThreadsSharingAFileAndADirectory_EachReadsItsOwnWrites) {
  constexpr uint64_t kThreads = 4;
  constexpr uint64_t kStripe = 20'001;  // odd: stripes share pages and blocks
  const uint64_t seed = EnvOr("DFS_DIFF_SEED", 20261206);
  const int steps = static_cast<int>(EnvOr("DFS_DIFF_STEPS", 400));
  const std::string dir = dfs_ + "/shared", path = dir + "/data";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  {
    int fd = ::open(path.c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ::close(fd);
  }
  // Where byte `pos` of thread t's stripes lies in the file.
  auto at = [](uint64_t t, uint64_t pos) { return ((pos / kStripe) * kThreads + t) * kStripe + pos % kStripe; };
  std::vector<std::string> models(kThreads);       // each thread's stripes, end to end
  std::vector<uint64_t> written_end(kThreads, 0);  // past the last byte each wrote, in the file
  std::vector<std::set<std::string>> names(kThreads);
  std::mutex mu;
  std::string failure;  // guarded by mu
  std::atomic<bool> stop{false};
  auto worker = [&](uint64_t t) {
    std::mt19937_64 rng(seed + t);
    std::string& model = models[t];
    uint64_t& end = written_end[t];
    const std::string prefix = "t" + std::to_string(t) + "-";
    int step = 0, op = -1;
    auto fail = [&](const std::string& what) {
      std::lock_guard<std::mutex> lock(mu);
      if (failure.empty()) {
        failure = "thread " + std::to_string(t) + " step " + std::to_string(step) + " op " + std::to_string(op) +
                  ": " + what + " (DFS_DIFF_SEED=" + std::to_string(seed) + ")";
      }
      stop = true;
    };
    // Writes `data` at `pos` of its stripes (within one stripe).
    auto write = [&](int fd, uint64_t pos, const std::string& data) {
      if (::pwrite(fd, data.data(), data.size(), static_cast<off_t>(at(t, pos))) !=
          static_cast<ssize_t>(data.size())) {
        return fail(std::string("pwrite: ") + std::strerror(errno)), false;
      }
      if (model.size() < pos + data.size()) model.resize(pos + data.size(), '\0');
      model.replace(pos, data.size(), data);
      end = std::max(end, at(t, pos) + data.size());
      return true;
    };
    // [pos, pos + n) of its stripes (within one stripe) as read through `fd`
    // must hold every byte it wrote there; the rest reads as zeros or not at
    // all (past the end of the file).
    auto check_read = [&](int fd, uint64_t pos, uint64_t n, const char* how) {
      std::string buf(n, '\x7f');
      const uint64_t from = at(t, pos);
      const ssize_t got = ::pread(fd, buf.data(), n, static_cast<off_t>(from));
      if (got < 0) return fail(std::string(how) + " pread: " + std::strerror(errno)), false;
      const uint64_t want = end > from ? std::min<uint64_t>(n, end - from) : 0;
      if (static_cast<uint64_t>(got) < want) {
        return fail(std::string(how) + " read " + std::to_string(got) + " of " + std::to_string(want) +
                    " written bytes at " + std::to_string(from)), false;
      }
      for (uint64_t i = 0; i < static_cast<uint64_t>(got); ++i) {
        const char expect = pos + i < model.size() ? model[pos + i] : '\0';
        if (buf[i] != expect) return fail(std::string(how) + " byte " + std::to_string(from + i) + " differs"), false;
      }
      return true;
    };
    int fd = ::open(path.c_str(), O_RDWR);
    if (fd < 0) return fail("open");
    for (step = 0; step < steps && !stop; ++step) {
      op = static_cast<int>(rng() % 11);
      // Mostly within the stripes it has, sometimes the next one (the file grows).
      const uint64_t stripes = model.size() / kStripe + 1;
      const uint64_t stripe = rng() % 4 == 0 ? stripes : rng() % stripes;
      const uint64_t in = rng() % kStripe;
      const uint64_t pos = stripe * kStripe + in;
      const uint64_t n = 1 + rng() % (kStripe - in);
      switch (op) {
        case 0:
        case 1:
          if (!write(fd, pos, RandomBytes(n, rng()))) return;
          break;
        case 2: {  // under an fcntl lock of the range, then fsync
          struct flock lock{};
          lock.l_type = F_WRLCK;
          lock.l_whence = SEEK_SET;
          lock.l_start = static_cast<off_t>(at(t, pos));
          lock.l_len = static_cast<off_t>(n);
          if (::fcntl(fd, F_SETLKW, &lock) != 0) return fail(std::string("lock: ") + std::strerror(errno));
          if (!write(fd, pos, RandomBytes(n, rng()))) return;
          if (::fsync(fd) != 0) return fail(std::string("fsync: ") + std::strerror(errno));
          lock.l_type = F_UNLCK;
          if (::fcntl(fd, F_SETLK, &lock) != 0) return fail(std::string("unlock: ") + std::strerror(errno));
          break;
        }
        case 3: {  // through a shared writable mapping, within what the file holds
          struct stat st{};
          if (::fstat(fd, &st) != 0) return fail("fstat before mmap");
          const uint64_t size = st.st_size, from = at(t, pos);
          if (size <= from || pos >= model.size()) break;
          const uint64_t len = std::min({n, size - from, model.size() - pos});
          void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
          if (m == MAP_FAILED) return fail(std::string("mmap: ") + std::strerror(errno));
          char* bytes = static_cast<char*>(m) + from;
          if (std::memcmp(bytes, model.data() + pos, len) != 0) {
            ::munmap(m, size);
            return fail("mapped bytes at " + std::to_string(from) + " differ before the write");
          }
          const std::string data = RandomBytes(len, rng());
          std::memcpy(bytes, data.data(), len);
          model.replace(pos, len, data);
          const bool synced = rng() % 2 == 0 ? ::msync(m, size, MS_SYNC) == 0 : true;
          ::munmap(m, size);
          if (!synced) return fail(std::string("msync: ") + std::strerror(errno));
          break;
        }
        case 4:
          if (!check_read(fd, pos, n, "through the handle")) return;
          break;
        case 5: {  // a fresh open, the kernel's pages dropped: close-to-open within the mount
          int rfd = ::open(path.c_str(), O_RDONLY);
          if (rfd < 0) return fail("open for reading");
          ::posix_fadvise(rfd, 0, 0, POSIX_FADV_DONTNEED);
          const bool ok = check_read(rfd, pos, n, "through a fresh open");
          ::close(rfd);
          if (!ok) return;
          break;
        }
        case 6: {  // fstat and stat never show less than this thread wrote
          struct stat st{}, st2{};
          if (::fstat(fd, &st) != 0 || ::stat(path.c_str(), &st2) != 0) return fail("stat");
          if (static_cast<uint64_t>(std::min(st.st_size, st2.st_size)) < end) {
            return fail("size " + std::to_string(st.st_size) + "/" + std::to_string(st2.st_size) + " after " +
                        std::to_string(end) + " was written");
          }
          break;
        }
        case 7: {  // a lock and unlock alone, as SQLite takes hundreds a second
          struct flock lock{};
          lock.l_type = rng() % 2 ? F_WRLCK : F_RDLCK;
          lock.l_whence = SEEK_SET;
          lock.l_start = static_cast<off_t>(at(t, pos));
          lock.l_len = 1;
          if (::fcntl(fd, F_SETLKW, &lock) != 0) return fail(std::string("lock: ") + std::strerror(errno));
          lock.l_type = F_UNLCK;
          if (::fcntl(fd, F_SETLK, &lock) != 0) return fail(std::string("unlock: ") + std::strerror(errno));
          break;
        }
        case 8: {  // a name of its own: created with content, renamed, or unlinked
          const std::string name = prefix + std::to_string(rng() % 6);
          const std::string p = dir + "/" + name;
          if (names[t].contains(name)) {
            if (rng() % 2) {
              if (::unlink(p.c_str()) != 0) return fail("unlink " + name + ": " + std::strerror(errno));
              names[t].erase(name);
            } else {
              const std::string to = prefix + std::to_string(rng() % 6);
              if (::rename(p.c_str(), (dir + "/" + to).c_str()) != 0) return fail("rename " + name);
              names[t].erase(name);
              names[t].insert(to);
            }
          } else {
            int nfd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
            if (nfd < 0) return fail("create " + name + ": " + std::strerror(errno));
            const bool ok = ::write(nfd, name.data(), name.size()) == static_cast<ssize_t>(name.size());
            if (::close(nfd) != 0 || !ok) return fail("write " + name);
            names[t].insert(name);
          }
          break;
        }
        case 9: {  // the directory lists exactly its names
          std::set<std::string> listed;
          DIR* d = ::opendir(dir.c_str());
          if (d == nullptr) return fail("opendir");
          while (dirent* e = ::readdir(d)) {
            if (std::string(e->d_name).starts_with(prefix)) listed.insert(e->d_name);
          }
          ::closedir(d);
          if (listed != names[t]) {
            return fail("listing has " + std::to_string(listed.size()) + " of its names, not " +
                        std::to_string(names[t].size()));
          }
          break;
        }
        case 10: {  // a renamed name still holds what it was created with
          if (names[t].empty()) break;
          const std::string name = *names[t].begin();
          const std::string got = ReadFile(dir + "/" + name);
          if (!got.starts_with(prefix) || got.size() > prefix.size() + 1) return fail(name + " holds '" + got + "'");
          break;
        }
      }
    }
    if (::close(fd) != 0) fail(std::string("close: ") + std::strerror(errno));
  };
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  ASSERT_TRUE(failure.empty()) << failure;
  // Through another mount: the whole file, its size, and every name.
  const std::string second = SuiteCluster()->dir() + "/mnt-shared";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::string other = ReadFile(second + "/" + name + "/shared/data");
  ASSERT_EQ(other.size(), *std::max_element(written_end.begin(), written_end.end()));
  std::string expect(other.size(), '\0');
  for (uint64_t t = 0; t < kThreads; ++t) {
    for (uint64_t pos = 0; pos < models[t].size(); pos += kStripe) {
      const uint64_t from = at(t, pos);
      if (from >= expect.size()) break;
      const uint64_t n = std::min({kStripe, models[t].size() - pos, expect.size() - from});
      expect.replace(from, n, models[t], pos, n);
    }
  }
  EXPECT_TRUE(other == expect) << "the file read through another mount differs";
  std::set<std::string> want = {"data"}, listed;
  for (const auto& set : names) want.insert(set.begin(), set.end());
  for (const auto& entry : std::filesystem::directory_iterator(second + "/" + name + "/shared")) {
    listed.insert(entry.path().filename().string());
  }
  EXPECT_EQ(listed, want);
}

TEST_F(MountTest, ReadDir_ListsEveryEntryOnce) {
  std::set<std::string> want = {".", ".."};
  for (int i = 0; i < 1500; ++i) {
    std::string name = "entry-" + std::to_string(i);
    int fd = ::open((dfs_ + "/" + name).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ::close(fd);
    want.insert(name);
  }
  DIR* d = ::opendir(dfs_.c_str());
  ASSERT_NE(d, nullptr);
  std::multiset<std::string> got;
  while (dirent* e = ::readdir(d)) got.insert(e->d_name);
  ::closedir(d);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), want);
}

// A listing that reached the end is not asked of meta again (the kernel
// asks once more from there): a second readdir at the end finds nothing,
// and a rewind lists what was made since.
TEST_F(MountTest, ReadDir_AtTheEndAndAfterARewind) {
  const std::string dir = dfs_ + "/listed";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  std::set<std::string> want = {".", ".."};
  for (int i = 0; i < 5; ++i) {
    WriteFile(dir + "/f" + std::to_string(i), "x");
    want.insert("f" + std::to_string(i));
  }
  auto list = [](DIR* d) {
    std::set<std::string> names;
    while (dirent* e = ::readdir(d)) names.insert(e->d_name);
    return names;
  };
  DIR* d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << std::strerror(errno);
  EXPECT_EQ(list(d), want);
  errno = 0;
  EXPECT_EQ(::readdir(d), nullptr);  // at the end, again
  EXPECT_EQ(errno, 0);
  WriteFile(dir + "/later", "x");
  want.insert("later");
  ::rewinddir(d);
  EXPECT_EQ(list(d), want);
  DIR* other = ::opendir(dir.c_str());  // a handle of its own
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(list(other), want);
  ::closedir(other);
  ::closedir(d);
  // An empty directory: "." and ".." only, then the end.
  ASSERT_EQ(::mkdir((dir + "/empty").c_str(), 0755), 0);
  d = ::opendir((dir + "/empty").c_str());
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(list(d), (std::set<std::string>{".", ".."}));
  EXPECT_EQ(::readdir(d), nullptr);
  ::closedir(d);
}

TEST_F(MountTest, Xattrs_BehaveLikeLocal) {
  std::string f = dfs_ + "/x";
  WriteFile(f, "x");
  ASSERT_EQ(::setxattr(f.c_str(), "user.color", "blue", 4, 0), 0) << std::strerror(errno);
  char buf[64] = {};
  EXPECT_EQ(::getxattr(f.c_str(), "user.color", buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "blue");
  EXPECT_EQ(::getxattr(f.c_str(), "user.color", buf, 2), -1);
  EXPECT_EQ(errno, ERANGE);
  EXPECT_EQ(::getxattr(f.c_str(), "user.none", buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENODATA);
  EXPECT_EQ(::setxattr(f.c_str(), "user.color", "red", 3, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  char list[256] = {};
  ssize_t n = ::listxattr(f.c_str(), list, sizeof list);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(list, static_cast<size_t>(n)).find("user.color"), std::string::npos);
  EXPECT_EQ(::removexattr(f.c_str(), "user.color"), 0);
  EXPECT_EQ(::removexattr(f.c_str(), "user.color"), -1);
  EXPECT_EQ(errno, ENODATA);
}

// An O_APPEND open is direct I/O on dfs (each mount appends at the end it
// knows). A MAP_SHARED mapping of it works as on ext4 where the kernel can
// allow it (FUSE_DIRECT_IO_ALLOW_MMAP, 6.6+; before, ENODEV): bytes stored
// through the mapping land at their offsets, even though the kernel writes
// them back through the O_APPEND handle, and a later write(2) appends.
TEST_F(MountTest, SharedMappingOfAnAppendHandle_WritesInPlace) {
  std::vector<std::string> contents;
  for (const std::string& dir : {dfs_, local_}) {
    const std::string path = dir + "/log";
    WriteFile(path, std::string(10000, 'a'));
    const int fd = ::open(path.c_str(), O_RDWR | O_APPEND);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    void* map = ::mmap(nullptr, 10000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      ASSERT_FALSE(KernelMapsDirectIo()) << path << ": " << std::strerror(err);
      EXPECT_EQ(err, ENODEV);
      GTEST_SKIP() << "this kernel refuses shared mappings of direct I/O files";
    }
    std::memcpy(static_cast<char*>(map) + 5000, "mapped", 6);
    ASSERT_EQ(::msync(map, 10000, MS_SYNC), 0) << std::strerror(errno);
    ASSERT_EQ(::write(fd, "appended", 8), 8) << std::strerror(errno);
    EXPECT_EQ(std::string(static_cast<const char*>(map) + 4998, 10), "aamappedaa");
    ::munmap(map, 10000);
    ASSERT_EQ(::close(fd), 0);
    contents.push_back(ReadFile(path));
  }
  EXPECT_EQ(contents[0].size(), 10008u);
  EXPECT_TRUE(contents[0] == contents[1]) << "dfs and local differ";
}

TEST_F(MountTest, PunchHoleAndSeek) {
  std::string f = dfs_ + "/holes";
  std::string data = RandomBytes(1 << 20, 9);
  WriteFile(f, data);
  int fd = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536, 131072), 0) << std::strerror(errno);
  std::fill(data.begin() + 65536, data.begin() + 65536 + 131072, '\0');
  ::close(fd);
  EXPECT_TRUE(ReadFile(f) == data);

  // Through an O_APPEND handle: the edges of the hole are zeroed where they
  // are, not appended (found by DifferentialRandomOpsWithOpenFiles: the
  // file grew by the punched length).
  const std::string appended = dfs_ + "/appended";
  std::string tail = RandomBytes(17'581, 10);
  fd = ::open(appended.c_str(), O_CREAT | O_RDWR | O_APPEND, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, tail.data(), tail.size()), static_cast<ssize_t>(tail.size()));
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1'730, 86'890), 0) << std::strerror(errno);
  struct stat st{};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 17'581);
  ASSERT_EQ(::close(fd), 0);
  std::fill(tail.begin() + 1'730, tail.end(), '\0');
  EXPECT_TRUE(ReadFile(appended) == tail);

  // A sparse file: data at 0 and past a whole unwritten chunk.
  std::string sparse = dfs_ + "/sparse";
  fd = ::open(sparse.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "a", 1, 0), 1);
  off_t far = (200ll << 20);
  ASSERT_EQ(::pwrite(fd, "b", 1, far), 1);
  ASSERT_EQ(::fsync(fd), 0);
  EXPECT_EQ(::lseek(fd, 0, SEEK_DATA), 0);
  off_t hole = ::lseek(fd, 0, SEEK_HOLE);
  EXPECT_GT(hole, 0);
  EXPECT_LE(hole, far);
  off_t next = ::lseek(fd, 2, SEEK_DATA);
  EXPECT_GT(next, 64ll << 20);  // the unwritten chunks are skipped
  EXPECT_LE(next, far);
  EXPECT_EQ(::lseek(fd, far + 1, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  char c = 0;
  EXPECT_EQ(::pread(fd, &c, 1, 100 << 20), 1);  // a hole reads as zeros
  EXPECT_EQ(c, 0);
  ::close(fd);

  // A punch over what a chunk does not store (past its stored length, or a
  // chunk never written) takes no space: it zeroed that range through the
  // write path, so cp --sparse=always, which punches each copy's tail,
  // made copies larger than their source.
  const std::string tailed = dfs_ + "/tailed";
  const std::string middle = RandomBytes(1 << 20, 11);
  fd = ::open(tailed.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 100 << 20), 0);
  ASSERT_EQ(::pwrite(fd, middle.data(), middle.size(), 50 << 20), static_cast<ssize_t>(middle.size()));
  ASSERT_EQ(::fsync(fd), 0);
  struct stat before{}, after{};
  ASSERT_EQ(::fstat(fd, &before), 0);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 51 << 20, 49 << 20), 0)
      << std::strerror(errno);
  ASSERT_EQ(::fstat(fd, &after), 0);
  EXPECT_EQ(after.st_size, 100 << 20);
  EXPECT_LE(after.st_blocks, before.st_blocks) << "a punch took space";
  std::string got(middle.size(), '\0');
  EXPECT_EQ(::pread(fd, got.data(), got.size(), 50 << 20), static_cast<ssize_t>(got.size()));
  EXPECT_TRUE(got == middle);
  ASSERT_EQ(::close(fd), 0);
  CommandResult copied = RunShell("cp --sparse=always " + tailed + " " + tailed + ".copy && cmp " + tailed + " " +
                                  tailed + ".copy");
  ASSERT_EQ(copied.exit_code, 0) << copied.output;
  struct stat copy{};
  ASSERT_EQ(::stat((tailed + ".copy").c_str(), &copy), 0);
  EXPECT_LE(copy.st_blocks, after.st_blocks) << "cp --sparse=always made a denser copy";
}

TEST_F(MountTest, CopyFileRange_CopiesBytes) {
  std::string data = RandomBytes(3 << 20, 4);
  WriteFile(dfs_ + "/src", data);
  int in = ::open((dfs_ + "/src").c_str(), O_RDONLY);
  int out = ::open((dfs_ + "/dst").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(in, 0);
  ASSERT_GE(out, 0);
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, left, 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    left -= static_cast<size_t>(n);
  }
  ::close(in);
  ASSERT_EQ(::close(out), 0);
  EXPECT_TRUE(ReadFile(dfs_ + "/dst") == data);
}

TEST_F(MountTest, SharedWritableMmap_Persists) {
  std::string f = dfs_ + "/mapped";
  WriteFile(f, std::string(1 << 20, 'a'));
  int fd = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* m = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(m, MAP_FAILED) << std::strerror(errno);
  std::memcpy(static_cast<char*>(m) + 4096, "written through mmap", 20);
  ASSERT_EQ(::msync(m, 1 << 20, MS_SYNC), 0) << std::strerror(errno);
  ::munmap(m, 1 << 20);
  ASSERT_EQ(::close(fd), 0);
  std::string back = ReadFile(f);
  ASSERT_EQ(back.size(), 1u << 20);
  EXPECT_EQ(back.substr(4096, 20), "written through mmap");
  EXPECT_EQ(back[0], 'a');
}

TEST_F(MountTest, Tools_CpTarSqliteGit) {
  // cp -a and tar of a real tree, compared with diff -r.
  CommandResult r = RunShell("cp -a /usr/include/linux " + dfs_ + "/linux && diff -r /usr/include/linux " + dfs_ +
                             "/linux && cd " + dfs_ + " && tar cf t.tar linux && mkdir x && tar xf t.tar -C x && " +
                             "diff -r linux x/linux");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // And what they keep besides the bytes: type, mode, owner, and size and
  // mtime of files (cp -a sets modes through an ACL xattr: it left 0600).
  const std::string list = "find . -printf '%P %y %m %u %g\\n' | sort; find . -type f -printf '%P %s %T@\\n' | sort";
  const std::string out = SuiteCluster()->dir() + "/tree-";
  r = RunShell("(cd /usr/include/linux && " + list + ") > " + out + "src && (cd " + dfs_ + "/linux && " + list +
               ") > " + out + "cp && (cd " + dfs_ + "/x/linux && " + list + ") > " + out + "tar && diff " + out +
               "src " + out + "cp && diff " + out + "src " + out + "tar");
  EXPECT_EQ(r.exit_code, 0) << r.output.substr(0, 2000);

  r = RunShell("cd " + dfs_ + " && sqlite3 db.sqlite 'create table t(a,b); " +
               "with recursive c(x) as (select 1 union all select x+1 from c where x<5000) " +
               "insert into t select x, randomblob(100) from c;' && sqlite3 db.sqlite 'pragma integrity_check; " +
               "select count(*) from t;'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ok\n5000"), std::string::npos) << r.output;

  r = RunShell("command -v git >/dev/null || exit 0; cd " + dfs_ + " && git init -q repo && cd repo && "
               "echo hello > a && git add a && git -c user.name=t -c user.email=t@example.com commit -qm first && "
               "git status --porcelain && git log --oneline | grep -q first");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(MountTest, CloseToOpen_AcrossTwoMounts) {
  std::string second = SuiteCluster()->dir() + "/mnt2";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  std::string name = std::string("/") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string data = RandomBytes(300'000, 1);
  WriteFile(dfs_ + "/shared", data);
  EXPECT_TRUE(ReadFile(second + name + "/shared") == data);
  // Rewrite it longer on the second mount; the first sees it whole at its next open.
  std::string longer = RandomBytes(700'000, 2);
  WriteFile(second + name + "/shared", longer);
  EXPECT_TRUE(ReadFile(dfs_ + "/shared") == longer);
}

// A mount's release reaches meta with its next mutation or up to 20 ms after
// the close, so its write lease outlives the close that long: a writer on
// another mount right after the close waits it out instead of failing. And
// O_APPEND goes to the end of file as it is (close-to-open), not where this
// mount's kernel last saw it: piece 2 was overwritten by piece 3 before.
TEST_F(MountTest, WriterRightAfterAnotherMountsClose_Succeeds) {
  std::string second = SuiteCluster()->dir() + "/mnt4";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  std::string name = std::string("/") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::string model;
  for (int i = 0; i < 10; ++i) {
    const std::string& mount = i % 2 == 0 ? dfs_ : second + name;
    std::string piece = RandomBytes(5000, 100 + i);
    int fd = ::open((mount + "/handoff").c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
    ASSERT_GE(fd, 0) << i << ": " << std::strerror(errno);
    ASSERT_EQ(::write(fd, piece.data(), piece.size()), static_cast<ssize_t>(piece.size())) << i;
    ASSERT_EQ(::close(fd), 0) << i << ": " << std::strerror(errno);  // the write-out takes the lease
    model += piece;
  }
  EXPECT_TRUE(ReadFile(dfs_ + "/handoff") == model);
  EXPECT_TRUE(ReadFile(second + name + "/handoff") == model);
}

// O_APPEND writers on two mounts of one file at once, as servers sharing a
// log: every record lands whole, once, and nothing lands on another. Each
// mount used to put its appends where it last saw the end of file, and the
// later flush overwrote the other mount's records there (half of them went
// in a run like this). Once from an empty file (meta keeps its first bytes)
// and once across the end of the first 64 MiB chunk.
TEST_F(MountTest, AppendsFromTwoMountsAtOnce_EveryRecordLandsWholeOnce) {
  const std::string second = SuiteCluster()->dir() + "/mnt_appends";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string name = std::string("/") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  constexpr int kWriters = 4;  // two on each mount
  constexpr int kRecords = 150;
  auto record = [](int writer, int i) {
    std::mt19937 rng(static_cast<uint32_t>(writer * 100'003 + i));
    return std::to_string(writer) + "-" + std::to_string(i) + "-" +
           std::string(10 + rng() % 3000, static_cast<char>('a' + writer)) + "\n";
  };
  for (const uint64_t start : {uint64_t{0}, uint64_t{64} * 1024 * 1024 - 300'000}) {
    SCOPED_TRACE("file starting at " + std::to_string(start));
    const std::string file = "/log-" + std::to_string(start);
    {
      int fd = ::open((dfs_ + file).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
      ASSERT_GE(fd, 0) << std::strerror(errno);
      ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(start)), 0) << std::strerror(errno);
      ASSERT_EQ(::close(fd), 0);
    }
    std::vector<std::string> failures(kWriters);
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        const std::string path = (w % 2 == 0 ? dfs_ : second + name) + file;
        int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
        if (fd < 0) {
          failures[w] = std::string("open: ") + std::strerror(errno);
          return;
        }
        std::mt19937 rng(static_cast<uint32_t>(w));
        for (int i = 0; i < kRecords && failures[w].empty(); ++i) {
          const std::string r = record(w, i);
          if (::write(fd, r.data(), r.size()) != static_cast<ssize_t>(r.size())) {
            failures[w] = std::string("write: ") + std::strerror(errno);
          } else if (rng() % 10 == 0 && ::fsync(fd) != 0) {
            failures[w] = std::string("fsync: ") + std::strerror(errno);
          } else if (rng() % 4 == 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        }
        if (::close(fd) != 0 && failures[w].empty()) failures[w] = std::string("close: ") + std::strerror(errno);
      });
    }
    for (std::thread& t : writers) t.join();
    for (int w = 0; w < kWriters; ++w) EXPECT_EQ(failures[w], "") << "writer " << w;

    const std::string got = ReadFile(second + name + file);
    ASSERT_GE(got.size(), start);
    EXPECT_EQ(got.find_first_not_of('\0'), start) << "the records do not start where the file ended";
    std::set<std::string> expected;
    uint64_t expected_bytes = 0;
    for (int w = 0; w < kWriters; ++w) {
      for (int i = 0; i < kRecords; ++i) {
        expected.insert(record(w, i));
        expected_bytes += record(w, i).size();
      }
    }
    std::set<std::string> seen;
    int wrong = 0, twice = 0;
    std::string first_wrong;
    for (size_t pos = start; pos < got.size();) {
      size_t nl = got.find('\n', pos);
      const std::string line = got.substr(pos, nl == std::string::npos ? std::string::npos : nl + 1 - pos);
      pos = nl == std::string::npos ? got.size() : nl + 1;
      if (!expected.contains(line)) {
        if (wrong++ == 0) first_wrong = line.substr(0, 60);
      } else if (!seen.insert(line).second) {
        ++twice;
      }
    }
    EXPECT_EQ(seen.size(), expected.size()) << "records lost";
    EXPECT_EQ(wrong, 0) << "garbled records, the first: " << first_wrong;
    EXPECT_EQ(twice, 0);
    EXPECT_EQ(got.size(), start + expected_bytes);
  }
}

// logrotate's copytruncate from another machine: the file is cut to 0 on
// one mount while a writer on another holds it open with O_APPEND. The
// writer's next line goes to the new end, as on a local disk, not past a
// hole as long as the old file. (No change notices on the writer's mount:
// it must not depend on hearing of the cut.)
TEST_F(MountTest, AppendAfterAnotherMountCutTheFile_GoesToTheNewEnd) {
  const std::string writer_mount = SuiteCluster()->dir() + "/mnt_rotated";
  ASSERT_TRUE(SuiteCluster()->MountAgain(writer_mount, "notices=off").ok());
  const std::string name = std::string("/") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  int fd = ::open((writer_mount + name + "/app.log").c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  for (int i = 0; i < 100; ++i) {
    const std::string line = "before " + std::to_string(1000 + i) + "\n";
    ASSERT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  }
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  ASSERT_EQ(::truncate((dfs_ + "/app.log").c_str(), 0), 0) << std::strerror(errno);
  std::string after;
  for (int i = 0; i < 5; ++i) {
    const std::string line = "after " + std::to_string(i) + "\n";
    ASSERT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    after += line;
  }
  ASSERT_EQ(::close(fd), 0) << std::strerror(errno);
  const std::string got = ReadFile(dfs_ + "/app.log");
  EXPECT_EQ(got.size(), after.size()) << "the new lines went past a hole where the old ones were";
  EXPECT_TRUE(got == after) << got.substr(0, 80);
}

// Read-your-writes while one thread appends and fsyncs, another takes and
// drops a lock on the file, and a third stats and reads it back past the
// kernel's page cache. A lock's reply carries the file's attributes as meta
// had them; one made before a flush of this mount ended once set the
// mount's size back (and the kernel's with it): fstat and read came up
// short within a second or two (SQLite's WAL writers died of SIGBUS).
TEST_F(MountTest, ReadYourWrites_WhileLocksAndFlushesOfTheFileRunAtOnce) {
  const std::string path = dfs_ + "/appended";
  int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::atomic<uint64_t> written{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::string failure;  // guarded by mu
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    if (failure.empty()) failure = what;
    stop = true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  auto running = [&] { return !stop && std::chrono::steady_clock::now() < deadline; };
  std::thread writer([&] {
    const std::string block(4096, 'w');
    while (running()) {
      const uint64_t at = written.load();
      if (::pwrite(fd, block.data(), block.size(), static_cast<off_t>(at)) != 4096) return fail("pwrite");
      written = at + 4096;
      if (::fsync(fd) != 0) return fail(std::string("fsync: ") + std::strerror(errno));
    }
  });
  std::thread locker([&] {
    struct flock lock{};
    lock.l_whence = SEEK_SET;
    lock.l_start = 100;
    lock.l_len = 1;
    while (running()) {
      lock.l_type = F_WRLCK;
      if (::fcntl(fd, F_SETLK, &lock) != 0) return fail(std::string("lock: ") + std::strerror(errno));
      lock.l_type = F_UNLCK;
      if (::fcntl(fd, F_SETLK, &lock) != 0) return fail(std::string("unlock: ") + std::strerror(errno));
    }
  });
  std::thread reader([&] {
    int rfd = ::open(path.c_str(), O_RDONLY);
    if (rfd < 0) return fail("open for reading");
    std::string buf;
    while (running()) {
      const uint64_t want = written.load();
      struct stat st{};
      if (::fstat(rfd, &st) != 0 || static_cast<uint64_t>(st.st_size) < want) {
        fail("fstat said " + std::to_string(st.st_size) + " after " + std::to_string(want) + " bytes were written");
        break;
      }
      ::posix_fadvise(rfd, 0, 0, POSIX_FADV_DONTNEED);
      buf.resize(want + 4096);
      const ssize_t got = ::pread(rfd, buf.data(), buf.size(), 0);
      if (got < static_cast<ssize_t>(want)) {
        fail("read " + std::to_string(got) + " of " + std::to_string(want) + " written bytes");
        break;
      }
    }
    ::close(rfd);
  });
  writer.join();
  locker.join();
  reader.join();
  EXPECT_EQ(::close(fd), 0);
  EXPECT_EQ(failure, "");
  EXPECT_GT(written.load(), 4096u * 20) << "too few rounds to mean anything";
}

// One mount, one file, several writable handles: the chunk's write lease
// is this mount's, whichever handle took it. Closing a third handle makes
// the mount ask meta again (it forgets its cached leases), and the next
// flush, through another handle than the one the lease went to, must get
// it, not wait out the lease and fail with EAGAIN.
TEST_F(MountTest, TwoWritableHandlesOfOneFile_ShareTheWriteLease) {
  const std::string path = dfs_ + "/shared";
  int a = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(a, 0) << std::strerror(errno);
  int b = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(b, 0) << std::strerror(errno);
  const std::string first = RandomBytes(100'000, 21), second = RandomBytes(50'000, 22);
  ASSERT_EQ(::pwrite(a, first.data(), first.size(), 0), static_cast<ssize_t>(first.size()));
  ASSERT_EQ(::fsync(a), 0) << std::strerror(errno);  // the lease goes to a's handle
  int c = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(c, 0) << std::strerror(errno);
  ASSERT_EQ(::close(c), 0) << std::strerror(errno);
  ASSERT_EQ(::pwrite(b, second.data(), second.size(), 30'000), static_cast<ssize_t>(second.size()));
  EXPECT_EQ(Err(::fsync(b)), 0) << std::strerror(errno);
  ASSERT_EQ(::pwrite(a, "tail", 4, first.size()), 4);
  EXPECT_EQ(Err(::fsync(a)), 0) << std::strerror(errno);
  EXPECT_EQ(::close(b), 0) << std::strerror(errno);
  EXPECT_EQ(::close(a), 0) << std::strerror(errno);
  std::string model = first;
  model.replace(30'000, second.size(), second);
  model += "tail";
  EXPECT_TRUE(ReadFile(path) == model);
}

// A file held open and written slowly, as a service writes its log, shows
// on another mount within about flush_after (1 s) plus a notice, without a
// close or fsync; before, its bytes stayed in the writing mount's buffer
// (and only there) for as long as the file stayed open. A mount with
// flush_after=0 keeps the old way: the other mount sees nothing.
TEST_F(MountTest, AFileWrittenSlowlyAndHeldOpen_ShowsElsewhereWithinSeconds) {
  const std::string name = "/" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
  const std::string reader = SuiteCluster()->dir() + "/mnt-aged-reader";
  const std::string lazy = SuiteCluster()->dir() + "/mnt-aged-lazy";
  ASSERT_TRUE(SuiteCluster()->MountAgain(reader).ok());
  ASSERT_TRUE(SuiteCluster()->MountAgain(lazy, "flush_after=0").ok());
  for (const bool aged : {true, false}) {
    const std::string file = aged ? "/log" : "/lazy-log";
    const std::string writer_path = aged ? dfs_ + file : lazy + name + file;
    const int fd = ::open(writer_path.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::string line = "service started\n";
    ASSERT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    const auto start = std::chrono::steady_clock::now();
    std::string seen;
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(aged ? 10 : 3)) {
      seen = ReadFile(reader + name + file);
      if (seen == line) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (aged) {
      EXPECT_EQ(seen, line) << "after " << waited << " s";
      EXPECT_LT(waited, 5.0);
    } else {
      EXPECT_TRUE(seen.empty() || seen.starts_with("<open failed")) << "flush_after=0 flushed by age: " << seen;
    }
    ASSERT_EQ(::close(fd), 0);
    EXPECT_EQ(ReadFile(reader + name + file), line) << "close-to-open";
  }
}

// A reader holding a file open while another mount appends to it, as
// `tail -f` does: once the new size shows (within the attribute timeout, at
// once with notices), the bytes past the old end are the ones appended,
// never zeros. Before, the mount read them from where it last knew the
// chunk to end (or from the small file's bytes its open got from meta) and
// filled the rest with zeros; tail -f printed NULs. A small file (kept in
// meta) and one of several blocks, each read through the kernel's page
// cache and past it.
TEST_F(MountTest, AReaderHoldingAFileSeesAnotherMountsAppendNotZeros) {
  std::string second = SuiteCluster()->dir() + "/mnt-tail";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string other = second + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  int round = 0;
  for (const size_t first : {size_t{6}, size_t{200'000}}) {
    for (const bool past_page_cache : {false, true}) {
      const std::string name = "/log" + std::to_string(round);
      const std::string head = RandomBytes(first, 100 + round), tail = RandomBytes(7'000, 200 + round);
      WriteFile(other + name, head);
      const int fd = ::open((dfs_ + name).c_str(), O_RDONLY);
      ASSERT_GE(fd, 0) << std::strerror(errno);
      std::string got(first, '\0');
      ASSERT_EQ(::pread(fd, got.data(), first, 0), static_cast<ssize_t>(first));
      ASSERT_TRUE(got == head);
      {
        const int wfd = ::open((other + name).c_str(), O_WRONLY | O_APPEND);
        ASSERT_GE(wfd, 0);
        ASSERT_EQ(::write(wfd, tail.data(), tail.size()), static_cast<ssize_t>(tail.size()));
        ASSERT_EQ(::close(wfd), 0);
      }
      struct stat st{};
      for (int i = 0; i < 300 && ::fstat(fd, &st) == 0 && st.st_size == static_cast<off_t>(first); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_EQ(st.st_size, static_cast<off_t>(first + tail.size())) << "round " << round;
      if (past_page_cache) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      got.assign(tail.size(), '\x7f');
      ASSERT_EQ(::pread(fd, got.data(), tail.size(), static_cast<off_t>(first)), static_cast<ssize_t>(tail.size()));
      EXPECT_TRUE(got == tail) << "round " << round << ": the appended bytes read as "
                               << (got.find_first_not_of('\0') == std::string::npos ? "zeros" : "other bytes");
      ::close(fd);
      ++round;
    }
  }
}

// Close-to-open for data a writer rewrites in place while it holds the file
// open (a database, a log rewritten at an offset): each fsync commits the
// same chunk version again, since the writer keeps its lease's version. An
// open on another mount after such a commit reads the new bytes. Before,
// that mount read the version's blocks from its page cache as it first read
// them, open after open, even past the kernel's cache.
TEST_F(MountTest, AFileRewrittenInPlaceByAWriterHoldingItOpen_ReadsNewAtEachOpenElsewhere) {
  std::string second = SuiteCluster()->dir() + "/mnt-inplace";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string other = second + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  WriteFile(other + "/db", RandomBytes(3 << 20, 7));
  const int wfd = ::open((other + "/db").c_str(), O_RDWR);
  ASSERT_GE(wfd, 0) << std::strerror(errno);
  for (int round = 0; round < 5; ++round) {
    const std::string page(4096, static_cast<char>('a' + round));
    const off_t at = 1 << 20;
    ASSERT_EQ(::pwrite(wfd, page.data(), page.size(), at), static_cast<ssize_t>(page.size()));
    ASSERT_EQ(::fsync(wfd), 0);
    const int fd = ::open((dfs_ + "/db").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    std::string got(page.size(), '\0');
    EXPECT_EQ(::pread(fd, got.data(), got.size(), at), static_cast<ssize_t>(got.size()));
    ::close(fd);
    EXPECT_EQ(got.substr(0, 8), page.substr(0, 8)) << "round " << round;
  }
  ::close(wfd);
}

// Close-to-open for attributes: an open that finds the file changed by
// another mount makes the kernel ask again, and that first fstat is answered
// with what the open got from meta (FileSystem::GetAttr), not a cached view.
TEST_F(MountTest, FstatAfterOpen_SeesAnotherMountsChanges) {
  std::string second = SuiteCluster()->dir() + "/mnt6";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string other = second + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  WriteFile(dfs_ + "/f", "12345");
  int fd = ::open((dfs_ + "/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  struct stat st{};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 5);
  ::close(fd);
  for (int round = 0; round < 3; ++round) {
    WriteFile(other + "/f", std::string(100 + round, 'x'));
    ASSERT_EQ(::chmod((other + "/f").c_str(), 0600 + round), 0);
    fd = ::open((dfs_ + "/f").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 100 + round) << round;
    EXPECT_EQ(st.st_mode & 07777, static_cast<mode_t>(0600 + round)) << round;
    ::close(fd);
    EXPECT_EQ(ReadFile(dfs_ + "/f"), std::string(100 + round, 'x')) << round;
  }
  // This mount's own change right after an open is not hidden by what the
  // open learned: a hard link made and removed, a chmod.
  fd = ::open((dfs_ + "/f").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::link((dfs_ + "/f").c_str(), (dfs_ + "/g").c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(::unlink((dfs_ + "/g").c_str()), 0);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  ::close(fd);
}

// What meta (not the kernel's attribute cache) says now, as this mount
// answers a getattr: AT_STATX_FORCE_SYNC sends one.
struct stat FreshStat(const std::string& path) {
  struct statx sx{};
  struct stat st{};
  if (::statx(AT_FDCWD, path.c_str(), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &sx) != 0) return st;
  st.st_mode = sx.stx_mode;
  st.st_uid = sx.stx_uid;
  st.st_gid = sx.stx_gid;
  return st;
}

// Root's chmod/chown of a file it holds open is answered by the mount and
// carried to meta later (FileSystem::SetAttr): this mount shows it at once,
// even when it asks meta again; after an fsync another mount sees it at
// once; without one, within moments; an unmount right after sends it.
// The carried chmod answers from what the mount knows of the file: that
// must include its own unlink, rename over, or link of another name of it
// (found by DifferentialRandomOpsWithOpenFiles: a link count one too high).
TEST_F(MountTest, RootChmodOfAnOpenFile_AfterItsOtherNameWent_HasTheLinkCount) {
  const std::string f = dfs_ + "/f", g = dfs_ + "/g", h = dfs_ + "/h";
  int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(fd, "x", 1), 1);
  ASSERT_EQ(::link(f.c_str(), g.c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::link(f.c_str(), h.c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::fchmod(fd, 0600), 0) << std::strerror(errno);
  struct stat st{};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 3u) << "after two links";
  ASSERT_EQ(::unlink(g.c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::fchmod(fd, 0640), 0) << std::strerror(errno);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 2u) << "after unlinking one";
  ASSERT_EQ(::close(::open((dfs_ + "/other").c_str(), O_CREAT | O_WRONLY, 0644)), 0);
  ASSERT_EQ(::rename((dfs_ + "/other").c_str(), h.c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::fchmod(fd, 0604), 0) << std::strerror(errno);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 1u) << "after a rename over another";
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFREG | 0604));
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(FreshStat(f).st_mode, static_cast<mode_t>(S_IFREG | 0604));
}

TEST_F(MountTest, RootChmodChownOfAnOpenFile_IsCarriedToMeta) {
  std::string second = SuiteCluster()->dir() + "/mnt5";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string other = second + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();

  int fd = ::open((dfs_ + "/synced").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(fd, "x", 1), 1);
  ASSERT_EQ(::fchown(fd, 1234, 4321), 0) << std::strerror(errno);
  ASSERT_EQ(::fchmod(fd, 0600), 0) << std::strerror(errno);
  struct stat here = FreshStat(dfs_ + "/synced");  // before meta has it, as a rule (20 ms)
  EXPECT_EQ(here.st_mode, static_cast<mode_t>(S_IFREG | 0600));
  EXPECT_EQ(here.st_uid, 1234u);
  EXPECT_EQ(here.st_gid, 4321u);
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  struct stat there = FreshStat(other + "/synced");
  EXPECT_EQ(there.st_mode, static_cast<mode_t>(S_IFREG | 0600));
  EXPECT_EQ(there.st_uid, 1234u);
  EXPECT_EQ(there.st_gid, 4321u);
  ASSERT_EQ(::close(fd), 0);

  // No fsync, the file still open: the change reaches meta on its own.
  fd = ::open((dfs_ + "/later").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::fchmod(fd, 04750), 0) << std::strerror(errno);
  ASSERT_EQ(::fchown(fd, 7, 8), 0) << std::strerror(errno);  // chown drops setuid, as meta will
  EXPECT_EQ(FreshStat(dfs_ + "/later").st_mode, static_cast<mode_t>(S_IFREG | 0750));
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    struct stat st = FreshStat(other + "/later");
    seen = st.st_mode == (S_IFREG | 0750) && st.st_uid == 7 && st.st_gid == 8;
    if (!seen) ::usleep(50'000);
  }
  EXPECT_TRUE(seen) << "another mount never saw the chmod/chown";
  ASSERT_EQ(::close(fd), 0);

  // Made on the second mount, which unmounts right away.
  fd = ::open((other + "/unmounted").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::fchmod(fd, 0604), 0) << std::strerror(errno);
  ASSERT_EQ(::close(fd), 0);
  ASSERT_EQ(RunShell("fusermount3 -u " + second).exit_code, 0);
  seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    seen = FreshStat(dfs_ + "/unmounted").st_mode == (S_IFREG | 0604);
    if (!seen) ::usleep(50'000);
  }
  EXPECT_TRUE(seen) << "the chmod made before the unmount was lost";
}

// tar x's futimens + fchown + fchmod of a file it holds open costs one meta
// round trip, not two: here the chown must finish with meta stopped. (The
// kernel asked for the attributes before every chown until dfs took on
// dropping setuid itself, FUSE_HANDLE_KILLPRIV_V2; the client answers such a
// getattr from the utimens's reply, FileSystem::GetAttr.)
TEST_F(MountTest, ChownRightAfterUtimens_AsksMetaNothing) {
  const int meta = SuiteCluster()->Pid("meta-1");
  ASSERT_GT(meta, 0);
  int fd = ::open((dfs_ + "/f").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(fd, "data", 4), 4);
  struct timespec times[2] = {{1'000'000, 0}, {2'000'000, 0}};
  ASSERT_EQ(::futimens(fd, times), 0) << std::strerror(errno);
  ASSERT_EQ(::kill(meta, SIGSTOP), 0);
  auto chown = std::async(std::launch::async, [&] { return ::fchown(fd, 55, 66) == 0 ? 0 : errno; });
  const bool finished = chown.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
  ::kill(meta, SIGCONT);
  EXPECT_TRUE(finished) << "the chown waited for meta";
  EXPECT_EQ(chown.get(), 0);
  ASSERT_EQ(::close(fd), 0);
  struct stat st = FreshStat(dfs_ + "/f");
  EXPECT_EQ(st.st_uid, 55u);
  EXPECT_EQ(st.st_gid, 66u);
  ASSERT_EQ(::stat((dfs_ + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 2'000'000);
  EXPECT_EQ(st.st_size, 4);
}

// security.capability granting CAP_NET_RAW (VFS_CAP_REVISION_2, effective),
// as setcap writes it; the kernel checks the format.
std::string NetRawCapability() {
  const uint32_t words[5] = {0x02000001, 1u << 13, 0, 0, 0};
  std::string v;
  for (uint32_t w : words) {
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<char>((w >> (8 * i)) & 0xff));
  }
  return v;
}

// A write changes a file's privileges as on ext4: setuid goes, setgid when
// group-executable or the writer is not in the file's group, unless the
// writer is root; file capabilities go whoever writes. Through the page
// cache, an O_APPEND handle (direct I/O), ftruncate, open(O_TRUNC),
// fallocate and copy_file_range. The kernel leaves setuid/setgid to dfs
// (FUSE_HANDLE_KILLPRIV_V2, fuse/session_io.h); before, a user's write or
// truncate of a setuid file it could write failed with EPERM, or (O_APPEND)
// kept setuid, and no O_APPEND write dropped capabilities.
TEST_F(MountTest, WritesDropSetuidSetgidAndCapabilitiesAsLocally) {
  enum Op { kPwrite, kAppend, kTruncate, kOpenTrunc, kFallocate, kCopy };
  const char* const kOpNames[] = {"pwrite", "append", "ftruncate", "open(O_TRUNC)", "fallocate", "copy_file_range"};
  struct Case {
    uint32_t mode;
    uint32_t uid;    // the file's owner
    uint32_t gid;    // the file's group (the writer's is its uid, no others)
    bool caps;       // security.capability set first
    uint32_t as;     // the writer's uid
  };
  const Case cases[] = {
      {06777, 0, 0, false, 1000},    {02666, 0, 0, false, 1000}, {02666, 0, 1000, false, 1000},
      {02676, 0, 1000, false, 1000}, {06755, 0, 0, false, 1000}, {06755, 1000, 1000, false, 1000},
      {06777, 0, 0, false, 0},       {0666, 0, 0, true, 1000},   {0644, 0, 0, true, 0},
  };
  ASSERT_EQ(::chmod(SuiteCluster()->dir().c_str(), 0755), 0);  // mkdtemp folders: 0700
  ASSERT_EQ(::chmod(local_root_.path().c_str(), 0755), 0);
  const std::string src_name = "/src";
  for (const std::string& dir : {dfs_, local_}) WriteFile(dir + src_name, "0123456789");
  int changed = 0;  // cases where the local file lost a bit: the test tests something
  int n = 0;
  for (const Case& c : cases) {
    for (Op op : {kPwrite, kAppend, kTruncate, kOpenTrunc, kFallocate, kCopy}) {
      const std::string name = "/f" + std::to_string(n++);
      struct Outcome {
        int err;
        uint32_t mode;
        bool caps;
        bool operator==(const Outcome&) const = default;
      };
      std::vector<Outcome> outcomes;
      for (const std::string& dir : {dfs_, local_}) {
        const std::string path = dir + name;
        WriteFile(path, "old contents");
        ASSERT_EQ(::chown(path.c_str(), c.uid, c.gid), 0) << std::strerror(errno);
        ASSERT_EQ(::chmod(path.c_str(), c.mode), 0) << std::strerror(errno);
        if (c.caps) {
          const std::string v = NetRawCapability();
          ASSERT_EQ(::setxattr(path.c_str(), "security.capability", v.data(), v.size(), 0), 0) << std::strerror(errno);
        }
        const std::string src = dir + src_name;
        const int err = ErrnoAs(c.as, c.as, [&] {
          const int flags = O_WRONLY | (op == kAppend ? O_APPEND : 0) | (op == kOpenTrunc ? O_TRUNC : 0);
          const int fd = ::open(path.c_str(), flags);
          if (fd < 0) return errno;
          int rc = 0;
          switch (op) {
            case kPwrite: rc = ::pwrite(fd, "new", 3, 2) == 3 ? 0 : -1; break;
            case kAppend: rc = ::write(fd, "new", 3) == 3 ? 0 : -1; break;
            case kTruncate: rc = ::ftruncate(fd, 4); break;
            case kOpenTrunc: break;
            case kFallocate: rc = ::fallocate(fd, 0, 0, 100); break;
            case kCopy: {
              const int in = ::open(src.c_str(), O_RDONLY);
              loff_t from = 0, to = 1;
              rc = in >= 0 && ::copy_file_range(in, &from, fd, &to, 5, 0) == 5 ? 0 : -1;
              break;
            }
          }
          return rc == 0 ? 0 : errno;
        });
        struct stat st = FreshStat(path);
        outcomes.push_back({err, st.st_mode & 07777u,
                            ::getxattr(path.c_str(), "security.capability", nullptr, 0) > 0});
      }
      if (outcomes[1].err == 0 && (outcomes[1].mode != c.mode || outcomes[1].caps != c.caps)) ++changed;
      EXPECT_TRUE(outcomes[0] == outcomes[1])
          << kOpNames[op] << " as uid " << c.as << " of a file of mode 0" << std::oct << c.mode << std::dec
          << ", owner " << c.uid << ", group " << c.gid << (c.caps ? ", with capabilities" : "") << ": dfs errno "
          << outcomes[0].err << " mode 0" << std::oct << outcomes[0].mode << std::dec << " caps "
          << outcomes[0].caps << "; local errno " << outcomes[1].err << " mode 0" << std::oct
          << outcomes[1].mode << std::dec << " caps " << outcomes[1].caps;
    }
  }
  EXPECT_EQ(changed, 36);
}

// cp -a keeps a file's mode by setting an access ACL equal to it on the
// file it just made and holds open; as root that is answered by the mount
// (a chmod, carried to meta like tar's): it finishes with meta stopped, the
// mode shows at once and reaches another mount. An ACL saying more than the
// mode goes to meta and is kept.
TEST_F(MountTest, CpStyleAclOnANewFile_IsAnsweredByTheMount) {
  std::string second = SuiteCluster()->dir() + "/mnt8";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string other = second + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const int meta = SuiteCluster()->Pid("meta-1");
  ASSERT_GT(meta, 0);
  int fd = ::open((dfs_ + "/f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(fd, "data", 4), 4);
  // u::rw- g::r-- o::r--, as cp -a sends for mode 0644.
  const char acl[] = "\x02\0\0\0" "\x01\0\x06\0\xff\xff\xff\xff" "\x04\0\x04\0\xff\xff\xff\xff" "\x20\0\x04\0\xff\xff\xff\xff";
  ASSERT_EQ(::kill(meta, SIGSTOP), 0);
  auto set = std::async(std::launch::async, [&] {
    return ::fsetxattr(fd, "system.posix_acl_access", acl, sizeof acl - 1, 0) == 0 ? 0 : errno;
  });
  const bool finished = set.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
  ::kill(meta, SIGCONT);
  EXPECT_TRUE(finished) << "the ACL waited for meta";
  EXPECT_EQ(set.get(), 0);
  // A stat asking for the mode alone (stat -c %a, ls) may be answered from
  // the kernel's cache: the setxattr must have dropped it.
  auto cached_mode = [](const std::string& path) {
    struct statx sx{};
    return ::statx(AT_FDCWD, path.c_str(), 0, STATX_MODE, &sx) == 0 ? sx.stx_mode : 0;
  };
  EXPECT_EQ(cached_mode(dfs_ + "/f"), S_IFREG | 0644);
  EXPECT_EQ(FreshStat(dfs_ + "/f").st_mode, static_cast<mode_t>(S_IFREG | 0644));
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(FreshStat(other + "/f").st_mode, static_cast<mode_t>(S_IFREG | 0644));
  EXPECT_EQ(::getxattr((other + "/f").c_str(), "system.posix_acl_access", nullptr, 0), -1);
  EXPECT_EQ(errno, ENODATA) << "an ACL equal to the mode is not kept";

  // A named user and a mask: meta keeps it, the group bits are the mask's.
  const char rich[] = "\x02\0\0\0" "\x01\0\x07\0\xff\xff\xff\xff" "\x02\0\x05\0\xe8\x03\0\0"
                      "\x04\0\x04\0\xff\xff\xff\xff" "\x10\0\x05\0\xff\xff\xff\xff" "\x20\0\x00\0\xff\xff\xff\xff";
  fd = ::open((dfs_ + "/g").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::fsetxattr(fd, "system.posix_acl_access", rich, sizeof rich - 1, 0), 0) << std::strerror(errno);
  EXPECT_EQ(cached_mode(dfs_ + "/g"), S_IFREG | 0750);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(FreshStat(other + "/g").st_mode, static_cast<mode_t>(S_IFREG | 0750));
  EXPECT_EQ(::getxattr((other + "/g").c_str(), "system.posix_acl_access", nullptr, 0),
            static_cast<ssize_t>(sizeof rich - 1));
}

int OpenErrno(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

// POSIX ACLs as on ext4: a directory's default ACL replaces the umask for
// what is made in it and is inherited (the access ACL of a new file, the
// default of a new directory), and an access ACL grants a named user what
// the mode bits alone would not - checked by the kernel and by meta.
TEST_F(MountTest, PosixAcls_AreInheritedAndEnforced) {
  ASSERT_EQ(::chmod(SuiteCluster()->dir().c_str(), 0755), 0);  // a mkdtemp folder: 0700
  ASSERT_EQ(::chmod(dfs_.c_str(), 0755), 0);
  const std::string dir = dfs_ + "/shared";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  constexpr uint32_t kAny = 0xffffffff;  // the id the kernel writes for owner, group, mask and other entries
  // u::rwx u:1000:rwx g::r-x m::rwx o::---
  const std::string dflt =
      common::EncodeAcl({{1, 7, kAny}, {2, 7, 1000}, {4, 5, kAny}, {0x10, 7, kAny}, {0x20, 0, kAny}});
  ASSERT_EQ(::setxattr(dir.c_str(), "system.posix_acl_default", dflt.data(), dflt.size(), 0), 0)
      << std::strerror(errno);
  const mode_t old_umask = ::umask(077);
  int fd = ::open((dir + "/f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0666);
  const int create_errno = errno;
  const int mkdir_rc = ::mkdir((dir + "/sub").c_str(), 0777);
  const int plain_fd = ::open((dfs_ + "/plain").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0666);
  ::umask(old_umask);
  ASSERT_GE(fd, 0) << std::strerror(create_errno);
  ASSERT_EQ(::write(fd, "acl", 3), 3);
  ASSERT_EQ(::close(fd), 0);
  ASSERT_EQ(mkdir_rc, 0);
  ASSERT_GE(plain_fd, 0);
  ASSERT_EQ(::close(plain_fd), 0);

  EXPECT_EQ(FreshStat(dir + "/f").st_mode, static_cast<mode_t>(S_IFREG | 0660)) << "the umask applied";
  char value[256];
  ssize_t n = ::getxattr((dir + "/f").c_str(), "system.posix_acl_access", value, sizeof value);
  ASSERT_GT(n, 0) << std::strerror(errno);
  EXPECT_EQ(std::string(value, static_cast<size_t>(n)),
            common::EncodeAcl({{1, 6, kAny}, {2, 7, 1000}, {4, 5, kAny}, {0x10, 6, kAny}, {0x20, 0, kAny}}));
  EXPECT_EQ(FreshStat(dir + "/sub").st_mode, static_cast<mode_t>(S_IFDIR | 0770));
  n = ::getxattr((dir + "/sub").c_str(), "system.posix_acl_default", value, sizeof value);
  ASSERT_GT(n, 0) << std::strerror(errno);
  EXPECT_EQ(std::string(value, static_cast<size_t>(n)), dflt);
  EXPECT_EQ(FreshStat(dfs_ + "/plain").st_mode, static_cast<mode_t>(S_IFREG | 0600)) << "no default ACL: the umask";

  // uid 1000 is "other" to the mode bits (---) but named in the ACL (rw-
  // within the mask); uid 1001 is other everywhere.
  EXPECT_EQ(ErrnoAs(1000, 1000, [&] { return OpenErrno(dir + "/f", O_RDWR); }), 0);
  EXPECT_EQ(ErrnoAs(1000, 1000, [&] { return OpenErrno(dir + "/sub/new", O_CREAT | O_EXCL | O_WRONLY); }), 0);
  EXPECT_EQ(ErrnoAs(1001, 1001, [&] { return OpenErrno(dir + "/f", O_RDONLY); }), EACCES);
  EXPECT_EQ(ErrnoAs(1001, 1001, [&] { return OpenErrno(dir + "/sub/other", O_CREAT | O_EXCL | O_WRONLY); }),
            EACCES);

  // cp -a's ACL equal to the mode, on a file that inherited one: the
  // inherited ACL goes (the mount must not answer it as a mere chmod).
  fd = ::open((dir + "/copied").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string plain_acl = common::EncodeAcl({{1, 6, kAny}, {4, 4, kAny}, {0x20, 4, kAny}});
  ASSERT_EQ(::fsetxattr(fd, "system.posix_acl_access", plain_acl.data(), plain_acl.size(), 0), 0)
      << std::strerror(errno);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(FreshStat(dir + "/copied").st_mode, static_cast<mode_t>(S_IFREG | 0644));
  EXPECT_EQ(::getxattr((dir + "/copied").c_str(), "system.posix_acl_access", value, sizeof value), -1);
  EXPECT_EQ(errno, ENODATA) << "the inherited ACL was kept";
}

// With ACLs on, the kernel reads a file's (and each directory's) access ACL
// before it judges a caller other than the owner. Meta's lookup and getattr
// replies say there is none, so the mount answers that itself: with meta
// stopped, another user's access() right after root's stat still answers.
TEST_F(MountTest, AclFetchAfterALookup_IsAnsweredByTheMount) {
  ASSERT_EQ(::chmod(SuiteCluster()->dir().c_str(), 0755), 0);  // a mkdtemp folder: 0700
  ASSERT_EQ(::mkdir((dfs_ + "/d").c_str(), 0755), 0);
  WriteFile(dfs_ + "/d/f", "x");
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));  // every cached attribute expires
  ASSERT_EQ(FreshStat(dfs_ + "/d/f").st_mode, static_cast<mode_t>(S_IFREG | 0644));
  const int meta = SuiteCluster()->Pid("meta-1");
  ASSERT_GT(meta, 0);
  ASSERT_EQ(::kill(meta, SIGSTOP), 0);
  auto access = std::async(std::launch::async, [&] {
    return ErrnoAs(1001, 1001, [&] { return ::access((dfs_ + "/d/f").c_str(), R_OK) == 0 ? 0 : errno; });
  });
  const bool finished = access.wait_for(std::chrono::milliseconds(700)) == std::future_status::ready;
  ::kill(meta, SIGCONT);
  EXPECT_TRUE(finished) << "the ACL fetch waited for meta";
  EXPECT_EQ(access.get(), 0);
}

// Lookups in one directory reach the daemon side by side
// (FUSE_PARALLEL_DIROPS, which libfuse 3.14 leaves out of its INIT reply:
// fuse/session_io.h). With meta stopped, stats of two names in one
// directory must both wait in the daemon (the fuse control filesystem's
// `waiting`); serialized, the second waits in the kernel instead.
TEST_F(MountTest, LookupsInOneDirectory_ReachTheDaemonInParallel) {
  ASSERT_EQ(::mkdir((dfs_ + "/par").c_str(), 0755), 0);
  struct stat mst{};
  ASSERT_EQ(::stat(SuiteCluster()->mount_point().c_str(), &mst), 0);
  if (!std::filesystem::exists("/sys/fs/fuse/connections/" + std::to_string(minor(mst.st_dev)))) {
    RunShell("mount -t fusectl none /sys/fs/fuse/connections");
  }
  const std::string waiting_file = "/sys/fs/fuse/connections/" + std::to_string(minor(mst.st_dev)) + "/waiting";
  ASSERT_TRUE(std::filesystem::exists(waiting_file)) << "no fuse control filesystem";
  auto waiting = [&] {
    std::ifstream in(waiting_file);
    int n = -1;
    in >> n;
    return n;
  };
  const int meta = SuiteCluster()->Pid("meta-1");
  ASSERT_GT(meta, 0);
  ASSERT_EQ(::kill(meta, SIGSTOP), 0);
  auto stat_of = [](std::string path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 ? 0 : errno;
  };
  auto a = std::async(std::launch::async, stat_of, dfs_ + "/par/a");
  auto b = std::async(std::launch::async, stat_of, dfs_ + "/par/b");
  int most = 0;
  for (int i = 0; i < 100 && most < 2; ++i) {
    most = std::max(most, waiting());
    ::usleep(20'000);
  }
  ::kill(meta, SIGCONT);
  EXPECT_EQ(a.get(), ENOENT);
  EXPECT_EQ(b.get(), ENOENT);
  EXPECT_GE(most, 2) << "the second lookup never reached the daemon";
}

// The live chunk count meta reports (dfsctl status --json), -1 if unknown.
long LiveChunks() {
  std::string ctl = std::string(std::getenv("DFS_BUILD_DIR") ? std::getenv("DFS_BUILD_DIR") : "build") + "/ctl/dfsctl";
  CommandResult r = RunShell(ctl + " --meta " + SuiteCluster()->source() +
                             " status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"chunks\"])'");
  if (r.exit_code != 0) return -1;
  return std::strtol(r.output.c_str(), nullptr, 10);
}

// A number from `dfsctl status --json`, -1 if unknown.
long StatusField(const std::string& field) {
  std::string ctl = std::string(std::getenv("DFS_BUILD_DIR") ? std::getenv("DFS_BUILD_DIR") : "build") + "/ctl/dfsctl";
  CommandResult r = RunShell(ctl + " --meta " + SuiteCluster()->source() +
                             " status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"" + field +
                             "\"])'");
  if (r.exit_code != 0) return -1;
  return std::strtol(r.output.c_str(), nullptr, 10);
}

// Read-only opens are pinned by the mount (reported in its KeepAlives), not
// written to meta's log; a file such an open holds keeps its data after
// another mount removes its last name, for as long as it is open, and is
// freed after the close.
TEST_F(MountTest, ReadOnlyOpens_WriteNoLogEntryYetKeepAnUnlinkedFile) {
  for (int i = 0; i < 50; ++i) WriteFile(dfs_ + "/small" + std::to_string(i), RandomBytes(1000, 300 + i));
  const long applied_before = StatusField("applied_index");
  ASSERT_GT(applied_before, 0);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(ReadFile(dfs_ + "/small" + std::to_string(i)) == RandomBytes(1000, 300 + i)) << i;
    }
  }
  const long applied_after = StatusField("applied_index");
  // One entry per open before (200); now only the leader's own upkeep.
  EXPECT_LT(applied_after - applied_before, 100) << "read-only opens went through the log";

  std::string second = SuiteCluster()->dir() + "/mnt7";
  ASSERT_TRUE(SuiteCluster()->MountAgain(second).ok());
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::string data = RandomBytes(300'000, 77);
  WriteFile(dfs_ + "/pinned", data);
  const long files_before = StatusField("files");
  int fd = ::open((second + "/" + name + "/pinned").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::unlink((dfs_ + "/pinned").c_str()), 0);
  // Several KeepAlive rounds and orphan passes of the leader.
  ::sleep(4);
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0) << "the open file was freed: " << std::strerror(errno);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size()));
  std::string back(data.size(), '\0');
  EXPECT_EQ(::pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(data.size()));
  EXPECT_TRUE(back == data);
  ASSERT_EQ(::close(fd), 0);
  long files = files_before;
  for (int i = 0; i < 150 && files >= files_before; ++i) {
    ::usleep(100'000);
    files = StatusField("files");
  }
  EXPECT_LT(files, files_before) << "not freed after the last close";
}

// Small files take their first write lease with Create; the file handle's
// lease must behave as a LeaseChunk one: data durable and readable at close,
// tar's futimens/fchown/fchmod before close kept, another writer free to
// write after close, and an empty file left without a chunk.
TEST_F(MountTest, SmallFiles_CreateCarriesTheFirstLease) {
  long chunks_before = LiveChunks();
  ASSERT_GE(chunks_before, 0);
  for (int i = 0; i < 10; ++i) {
    std::string path = dfs_ + "/empty" + std::to_string(i);
    int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::close(fd), 0);
  }
  for (int i = 0; i < 10; ++i) {
    std::string path = dfs_ + "/small" + std::to_string(i);
    std::string data = RandomBytes(4096 + i, i);
    int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    // What tar does before close.
    struct timespec times[2] = {{0, UTIME_OMIT}, {1'000'000'000, 5}};
    ASSERT_EQ(::futimens(fd, times), 0) << std::strerror(errno);
    ASSERT_EQ(::fchown(fd, 1, 1), 0) << std::strerror(errno);
    ASSERT_EQ(::fchmod(fd, 0640), 0) << std::strerror(errno);
    ASSERT_EQ(::close(fd), 0) << std::strerror(errno);
    struct stat st{};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_size, static_cast<off_t>(data.size()));
    EXPECT_EQ(st.st_mtim.tv_sec, 1'000'000'000);
    EXPECT_EQ(st.st_mtim.tv_nsec, 5);
    EXPECT_EQ(st.st_uid, 1u);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_TRUE(ReadFile(path) == data) << path;
  }
  // Released leases: a second open appends at once.
  std::string path = dfs_ + "/small0";
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "tail", 4), 4);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(ReadFile(path), RandomBytes(4096, 0) + "tail");
  // One chunk per written file, none for the empty ones.
  EXPECT_EQ(LiveChunks(), chunks_before + 10);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ReadFile(dfs_ + "/empty" + std::to_string(i)), "");
}

// `dfsctl fsck PATH --json` of a path inside dfs: how many of its chunks
// meta keeps, and how many copies chunkservers hold.
struct Kept {
  long in_meta = -1;
  long copies = -1;
};
Kept FsckOf(const std::string& dfs_path) {
  std::string ctl = std::string(std::getenv("DFS_BUILD_DIR") ? std::getenv("DFS_BUILD_DIR") : "build") + "/ctl/dfsctl";
  CommandResult r = RunShell(ctl + " --meta " + SuiteCluster()->source() + " fsck --json " + dfs_path +
                             " | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j[\"in_meta\"], "
                             "j[\"copies\"])'");
  Kept k;
  if (r.exit_code != 0 || std::sscanf(r.output.c_str(), "%ld %ld", &k.in_meta, &k.copies) != 2) {
    ADD_FAILURE() << "fsck of " << dfs_path << ": " << r.output;
  }
  return k;
}

// Files up to dfs-meta's --inline-max (16K by default) keep their bytes in
// meta: no chunkserver copy. Rewritten in place, cut, grown past the
// limit (then on chunkservers, with the bytes meta kept), each state reads
// back the same on this mount and another.
TEST_F(MountTest, SmallFiles_KeptInMetaUntilTheyGrow) {
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::string other = SuiteCluster()->dir() + "/mnt-inline";
  ASSERT_TRUE(SuiteCluster()->MountAgain(other).ok());
  auto both_read = [&](const std::string& file, const std::string& want) {
    EXPECT_TRUE(ReadFile(dfs_ + "/" + file) == want) << file << " on this mount";
    EXPECT_TRUE(ReadFile(other + "/" + name + "/" + file) == want) << file << " on another mount";
  };
  auto kept = [&](const std::string& file) { return FsckOf("/" + name + "/" + file); };
  const long in_meta_before = StatusField("chunks_in_meta"), bytes_before = StatusField("bytes_in_meta");
  ASSERT_GE(in_meta_before, 0);

  std::string a = RandomBytes(5000, 1);
  ASSERT_NO_FATAL_FAILURE(WriteFile(dfs_ + "/a", a));
  EXPECT_EQ(kept("a").in_meta, 1);
  EXPECT_EQ(kept("a").copies, 0);
  EXPECT_EQ(StatusField("chunks_in_meta"), in_meta_before + 1);  // dfsctl status counts them
  EXPECT_EQ(StatusField("bytes_in_meta"), bytes_before + 5000);
  both_read("a", a);

  // A write in the middle keeps the rest.
  int fd = ::open((dfs_ + "/a").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::pwrite(fd, "XXXXX", 5, 100), 5);
  ASSERT_EQ(::close(fd), 0) << std::strerror(errno);
  a.replace(100, 5, "XXXXX");
  EXPECT_EQ(kept("a").in_meta, 1);
  both_read("a", a);

  // Appended past the limit: to the chunkservers, old bytes and new.
  std::string tail = RandomBytes(15'000, 2);
  fd = ::open((dfs_ + "/a").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(fd, tail.data(), tail.size()), static_cast<ssize_t>(tail.size()));
  ASSERT_EQ(::close(fd), 0) << std::strerror(errno);
  a += tail;
  EXPECT_EQ(kept("a").in_meta, 0);
  EXPECT_EQ(kept("a").copies, 3);
  EXPECT_EQ(StatusField("chunks_in_meta"), in_meta_before);
  both_read("a", a);
  ASSERT_EQ(::truncate((dfs_ + "/a").c_str(), 10), 0);
  both_read("a", a.substr(0, 10));

  // The limit itself, and one byte more.
  const std::string at = RandomBytes(16 << 10, 3), over = RandomBytes((16 << 10) + 1, 4);
  ASSERT_NO_FATAL_FAILURE(WriteFile(dfs_ + "/at", at, 4096));
  ASSERT_NO_FATAL_FAILURE(WriteFile(dfs_ + "/over", over, 4096));
  EXPECT_EQ(kept("at").in_meta, 1);
  EXPECT_EQ(kept("over").in_meta, 0);
  EXPECT_EQ(kept("over").copies, 3);
  both_read("at", at);
  both_read("over", over);

  // Rewritten (O_TRUNC) small, then cut: still in meta, cut for real.
  ASSERT_NO_FATAL_FAILURE(WriteFile(dfs_ + "/over", "small now"));
  EXPECT_EQ(kept("over").in_meta, 1);
  ASSERT_EQ(::truncate((dfs_ + "/over").c_str(), 5), 0);
  both_read("over", "small");
  // Grown by truncate (a sparse tail), then written at the start.
  ASSERT_EQ(::truncate((dfs_ + "/over").c_str(), 1000), 0);
  fd = ::open((dfs_ + "/over").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "S", 1, 0), 1);
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  ASSERT_EQ(::close(fd), 0);
  both_read("over", "Small" + std::string(995, '\0'));
  EXPECT_EQ(kept("over").in_meta, 1);
}

// A utimens after writes carries their commit; when meta refuses the
// utimens (here: the owner changed on another mount, so this mount's kernel
// allowed it on a stale owner), the writes must still be committed: the
// caller gets EPERM and the bytes are there.
TEST_F(MountTest, RefusedSetattrAfterWrites_KeepsTheData) {
  std::string other = SuiteCluster()->dir() + "/mnt3";
  ASSERT_TRUE(SuiteCluster()->MountAgain(other).ok());
  ASSERT_EQ(::chmod(dfs_.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(SuiteCluster()->dir().c_str(), 0755), 0);  // a mkdtemp folder: 0700
  const std::string path = dfs_ + "/owned";
  const std::string other_path = other + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/owned";
  const std::string data = RandomBytes(70'000, 7);
  int to_child[2], to_parent[2];
  ASSERT_EQ(::pipe(to_child), 0);
  ASSERT_EQ(::pipe(to_parent), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // uid 1000 writes through this mount and keeps the file open.
    char go = 0;
    int code = 10;
    if (::setresgid(1000, 1000, 1000) == 0 && ::setresuid(1000, 1000, 1000) == 0) {
      int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      code = 11;
      if (fd >= 0 && ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size())) {
        code = 12;
        if (::write(to_parent[1], "w", 1) == 1 && ::read(to_child[0], &go, 1) == 1) {
          struct timespec times[2] = {{0, UTIME_OMIT}, {1'000'000'000, 0}};
          code = ::futimens(fd, times) == -1 && errno == EPERM ? 0 : 13;
          if (::close(fd) != 0) code = 14;
        }
      }
    }
    (void)::write(to_parent[1], "x", 1);
    ::_exit(code);
  }
  char c = 0;
  ASSERT_EQ(::read(to_parent[0], &c, 1), 1);
  if (c != 'w') {
    int status = 0;
    ::waitpid(pid, &status, 0);
    FAIL() << "the child could not create and write as uid 1000: exit " << WEXITSTATUS(status);
  }
  // Root takes the file over on the other mount.
  ASSERT_EQ(::chown(other_path.c_str(), 2000, 2000), 0) << std::strerror(errno);
  ASSERT_EQ(::write(to_child[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) ::close(fd);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setuid, 11: create, 12: write, 13: futimens not EPERM, 14: close";
  // The bytes were committed (the other mount has no buffered copy of them).
  EXPECT_TRUE(ReadFile(other_path) == data);
  struct stat st{};
  ASSERT_EQ(::stat(other_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size()));
  EXPECT_NE(st.st_mtim.tv_sec, 1'000'000'000);
  EXPECT_EQ(st.st_uid, 2000u);
}

// A mount sends its metadata calls on call streams; a meta that refuses
// them (--max-call-streams 0: all open, or an operator's choice) gets the
// same calls as unary ones, and everything works as before. A second
// mount with meta_streams=off sees what the first wrote.
TEST(CallStreamsMountTest, AMetaThatRefusesStreams_GetsUnaryCallsAndEverythingWorks) {
  if (!FuseAvailable()) GTEST_SKIP() << "no /dev/fuse";
  auto cluster = LocalCluster::Up(/*mount=*/true, 3, 1, {.meta = "--max-call-streams 0"});
  ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
  const std::string mnt = (*cluster)->mount_point();
  const std::string small = RandomBytes(5'000, 1), big = RandomBytes(300'000, 2);
  ASSERT_EQ(::mkdir((mnt + "/d").c_str(), 0755), 0) << std::strerror(errno);
  WriteFile(mnt + "/d/small", small);
  WriteFile(mnt + "/d/big", big);
  ASSERT_EQ(::rename((mnt + "/d/big").c_str(), (mnt + "/d/large").c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::symlink("large", (mnt + "/d/link").c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::link((mnt + "/d/small").c_str(), (mnt + "/d/hard").c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::chmod((mnt + "/d/small").c_str(), 0600), 0) << std::strerror(errno);
  EXPECT_EQ(::rmdir((mnt + "/d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  struct stat st {};
  ASSERT_EQ(::stat((mnt + "/d/hard").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 5'000);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(ReadFile(mnt + "/d/link"), big);
  EXPECT_EQ(ReadFile(mnt + "/d/small"), small);

  const std::string other = (*cluster)->dir() + "/unary";
  ASSERT_EQ(::mkdir(other.c_str(), 0755), 0);
  ASSERT_TRUE((*cluster)->MountAgain(other, "meta_streams=off").ok());
  EXPECT_EQ(ReadFile(other + "/d/large"), big);
  EXPECT_EQ(ReadFile(other + "/d/hard"), small);
  WriteFile(other + "/d/from-unary", "written by the unary mount");
  EXPECT_EQ(ReadFile(mnt + "/d/from-unary"), "written by the unary mount");

  for (const char* name : {"small", "hard", "large", "link", "from-unary"}) {
    EXPECT_EQ(::unlink((mnt + "/d/" + name).c_str()), 0) << name << ": " << std::strerror(errno);
  }
  EXPECT_EQ(::rmdir((mnt + "/d").c_str()), 0) << std::strerror(errno);
  // The other mount's kernel may keep the name for its entry timeout (1 s).
  bool gone = false;
  for (int i = 0; i < 60 && !gone; ++i) {
    gone = ::access((other + "/d").c_str(), F_OK) != 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(gone);
}

}  // namespace
}  // namespace dfs::testing
