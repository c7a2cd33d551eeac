// Integration: change notices (MetaService.Watch). Another mount's creates,
// writes, renames, unlinks and chmods show on a mount whose kernel caches
// names and attributes for 60 s within moments, because meta tells it and
// it drops those entries; a third mount with notices=off, same timeouts,
// still shows what it cached, which is what proves the caches were in the
// way. And git used from two mounts in turn, 100 ms apart (a tenth of the
// default timeouts), sees each other's commits every time.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <thread>

#include "tests/integration/fuse/cluster_fixture.h"

namespace dfs::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

class NoticesTest : public MountedClusterTest {
 protected:
  void SetUp() override {
    MountedClusterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    static std::string watching, deaf;  // mounted once for the whole suite
    if (watching.empty()) {
      watching = SuiteCluster()->dir() + "/watching";
      deaf = SuiteCluster()->dir() + "/deaf";
      ASSERT_TRUE(SuiteCluster()->MountAgain(watching, "attr_timeout=60,entry_timeout=60").ok());
      ASSERT_TRUE(SuiteCluster()->MountAgain(deaf, "attr_timeout=60,entry_timeout=60,notices=off").ok());
    }
    one_ = SuiteCluster()->mount_point() + "/" + name;
    ASSERT_EQ(::mkdir(one_.c_str(), 0755), 0) << std::strerror(errno);
    watching_ = watching + "/" + name;
    deaf_ = deaf + "/" + name;
    // Both long-timeout mounts learn the new directory by name: wait until
    // each sees it (the deaf one may have cached the root's lookup of it
    // as missing in an earlier test: such names are new here).
    ASSERT_TRUE(Eventually([&] { return Exists(watching_); }, 65'000)) << watching_;
    ASSERT_TRUE(Eventually([&] { return Exists(deaf_); }, 65'000)) << deaf_;
  }

  static bool Exists(const std::string& path) {
    struct stat st{};
    return ::lstat(path.c_str(), &st) == 0;
  }
  static struct stat Stat(const std::string& path) {
    struct stat st{};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
    return st;
  }
  // Whether `done` holds within `ms`, asked every 10 ms.
  static bool Eventually(const std::function<bool()>& done, int ms = 5'000) {
    for (auto end = steady_clock::now() + milliseconds(ms); steady_clock::now() < end;) {
      if (done()) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return done();
  }
  static void Write(const std::string& path, const std::string& text, std::ios::openmode mode = std::ios::trunc) {
    std::ofstream out(path, mode);
    out << text;
    out.close();
    ASSERT_TRUE(out.good()) << path;
  }

  std::string one_;       // this test's directory on the suite's mount (1 s timeouts)
  std::string watching_;  // the same on a mount with 60 s timeouts
  std::string deaf_;      // the same on a mount with 60 s timeouts and notices=off
};

TEST_F(NoticesTest, AnotherMountsCreate_EndsANegativeEntryAtOnce) {
  ASSERT_FALSE(Exists(watching_ + "/new"));  // both kernels now cache "missing"
  ASSERT_FALSE(Exists(deaf_ + "/new"));
  Write(one_ + "/new", "hello");
  EXPECT_TRUE(Eventually([&] { return Exists(watching_ + "/new"); }));
  EXPECT_FALSE(Exists(deaf_ + "/new")) << "the deaf mount's kernel did not cache the miss: this test proves nothing";
}

TEST_F(NoticesTest, AnotherMountsAppendAndChmod_ShowInStatAtOnce) {
  Write(one_ + "/log", "12345");
  ASSERT_TRUE(Eventually([&] { return Exists(watching_ + "/log") && Exists(deaf_ + "/log"); }, 65'000));
  ASSERT_EQ(Stat(watching_ + "/log").st_size, 5);
  ASSERT_EQ(Stat(deaf_ + "/log").st_size, 5);
  Write(one_ + "/log", "67890", std::ios::app);
  EXPECT_TRUE(Eventually([&] { return Stat(watching_ + "/log").st_size == 10; }));
  ASSERT_EQ(::chmod((one_ + "/log").c_str(), 0600), 0);
  EXPECT_TRUE(Eventually([&] { return (Stat(watching_ + "/log").st_mode & 0777) == 0600; }));
  EXPECT_EQ(Stat(deaf_ + "/log").st_size, 5) << "the deaf mount's kernel did not cache the size";
}

TEST_F(NoticesTest, AnotherMountsRenameOverAndUnlink_ShowAtOnce) {
  Write(one_ + "/target", "old");
  Write(one_ + "/gone", "x");
  ASSERT_TRUE(Eventually([&] { return Exists(watching_ + "/gone") && Exists(deaf_ + "/gone"); }, 65'000));
  const ino_t old_ino = Stat(watching_ + "/target").st_ino;
  ASSERT_EQ(Stat(deaf_ + "/target").st_ino, old_ino);
  Write(one_ + "/tmp", "new");
  ASSERT_EQ(::rename((one_ + "/tmp").c_str(), (one_ + "/target").c_str()), 0);
  const ino_t new_ino = Stat(one_ + "/target").st_ino;
  ASSERT_NE(new_ino, old_ino);
  ASSERT_EQ(::unlink((one_ + "/gone").c_str()), 0);
  EXPECT_TRUE(Eventually([&] { return Stat(watching_ + "/target").st_ino == new_ino; }));
  EXPECT_TRUE(Eventually([&] { return !Exists(watching_ + "/gone"); }));
  EXPECT_EQ(Stat(deaf_ + "/target").st_ino, old_ino) << "the deaf mount's kernel did not cache the name";
  EXPECT_TRUE(Exists(deaf_ + "/gone"));
}

// A file held open on the watching mount: its attributes there come from
// the open's reply for the attribute timeout (FileSystem::GetAttr), so a
// notice of the inode must end that too, not only the kernel's copy.
TEST_F(NoticesTest, AnotherMountsChmod_ShowsInStatOfAFileHeldOpen) {
  Write(one_ + "/held", "abc");
  ASSERT_TRUE(Eventually([&] { return Exists(watching_ + "/held"); }, 65'000));
  const int fd = ::open((watching_ + "/held").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(Stat(watching_ + "/held").st_mode & 0777, 0644u);
  ASSERT_EQ(::chmod((one_ + "/held").c_str(), 0600), 0);
  EXPECT_TRUE(Eventually([&] { return (Stat(watching_ + "/held").st_mode & 0777) == 0600; }));
  struct stat st{};
  EXPECT_TRUE(Eventually([&] { return ::fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0600; }));
  ::close(fd);
}

// Names listed in a directory: what `ls` would show.
std::set<std::string> Listed(const std::string& dir) {
  std::set<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) out.insert(e->d_name);
  ::closedir(d);
  return out;
}

// The mount's own caches of listings live as long as the attribute timeout,
// 60 s here: DirPrefetch's pages of the directories a walk is about to
// visit, and DirListings, which answer lookups and getattrs after a run of
// them. Another mount's create and chmod must end them, or the watching
// mount lists a directory without the new name, or stats a file with its
// old mode (the kernel asks again after a notice, but the mount would
// answer from what it held). The deaf mount shows that a held page would
// have answered.
TEST_F(NoticesTest, AnotherMountsChanges_EndTheListingsTheMountHolds) {
  ASSERT_EQ(::mkdir((one_ + "/walked").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((one_ + "/looked").c_str(), 0755), 0);
  for (int d = 0; d < 8; ++d) {
    const std::string dir = one_ + "/walked/d" + std::to_string(d);
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    for (int i = 0; i < 5; ++i) Write(dir + "/f" + std::to_string(i), "x");
  }
  for (int i = 0; i < 40; ++i) Write(one_ + "/looked/f" + std::to_string(i), "x");
  ASSERT_TRUE(Eventually([&] { return Listed(watching_ + "/walked").size() == 10; }, 65'000));
  ASSERT_TRUE(Eventually([&] { return Listed(deaf_ + "/walked").size() == 10; }, 65'000));
  // A walk: listing d0 (going down) makes the mount fetch its siblings'
  // pages ahead. It stops before d7.
  for (const std::string& root : {watching_, deaf_}) {
    for (int d = 0; d < 7; ++d) ASSERT_EQ(Listed(root + "/walked/d" + std::to_string(d)).size(), 7u) << root;
  }
  // Lookups one by one: after a few, the mount fetches the whole listing
  // and answers the rest (and later getattrs) from it.
  for (int i = 0; i < 40; ++i) Stat(watching_ + "/looked/f" + std::to_string(i));
  Write(one_ + "/walked/d7/new", "y");
  ASSERT_EQ(::chmod((one_ + "/looked/f20").c_str(), 0600), 0);
  EXPECT_TRUE(Eventually([&] { return Listed(watching_ + "/walked/d7").contains("new"); }));
  EXPECT_TRUE(Eventually([&] { return (Stat(watching_ + "/looked/f20").st_mode & 0777) == 0600; }));
  EXPECT_FALSE(Listed(deaf_ + "/walked/d7").contains("new")) << "the deaf mount held no page: this proves nothing";
}

// A lock file (git's index.lock, a dotlock) removed by another mount, then
// made again with O_EXCL here; and the same for mkdir. The kernel holding
// the old name asks the mount again before such a create, and the mount
// must ask meta then, not answer from a listing it fetched before the
// removal; and when meta says the name is gone, the kernel looks it up once
// more (after dropping its entry), which the listing must not answer
// either. Either answer from the listing is EEXIST until a notice or the
// timeout ends it. The deaf mount hears no notice, and holds the listing
// and the kernel's entry for 60 s. Eight directories, each listed anew:
// the second lookup meets the listing only when the kernel's forget of the
// old entry came first, which is most of the time but not always.
TEST_F(NoticesTest, ExclusiveCreateOfANameAnotherMountRemoved_Succeeds) {
  constexpr int kRounds = 8;
  for (int r = 0; r < kRounds; ++r) {
    const std::string dir = "/d" + std::to_string(r);
    ASSERT_EQ(::mkdir((one_ + dir).c_str(), 0755), 0);
    for (int i = 0; i < 10; ++i) Write(one_ + dir + "/f" + std::to_string(i), "x");
    Write(one_ + dir + "/index.lock", "old");
  }
  ASSERT_EQ(::mkdir((one_ + "/d0/sub").c_str(), 0755), 0);
  ASSERT_TRUE(Eventually([&] { return Exists(deaf_ + "/d0/sub"); }, 65'000));
  int refused = 0;
  for (int r = 0; r < kRounds; ++r) {
    const std::string dir = "/d" + std::to_string(r);
    ASSERT_TRUE(Eventually([&] { return Exists(deaf_ + dir + "/index.lock"); }, 65'000));
    // Lookups one by one make the mount fetch the directory's listing.
    for (int i = 0; i < 10; ++i) Stat(deaf_ + dir + "/f" + std::to_string(i));
    Stat(deaf_ + dir + "/index.lock");
    if (r == 0) Stat(deaf_ + dir + "/sub");
    ASSERT_EQ(::unlink((one_ + dir + "/index.lock").c_str()), 0);
    ASSERT_TRUE(Exists(deaf_ + dir + "/index.lock")) << "the deaf mount's kernel did not cache the name: this proves nothing";
    const int fd = ::open((deaf_ + dir + "/index.lock").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) {
      ++refused;
      ADD_FAILURE() << dir << ": O_EXCL create of a name removed elsewhere: " << std::strerror(errno);
      continue;
    }
    EXPECT_EQ(::write(fd, "new", 3), 3);
    EXPECT_EQ(::close(fd), 0);
    std::ifstream in(one_ + dir + "/index.lock");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "new") << dir;
  }
  EXPECT_EQ(refused, 0) << "of " << kRounds;
  ASSERT_EQ(::rmdir((one_ + "/d0/sub").c_str()), 0);
  EXPECT_EQ(::mkdir((deaf_ + "/d0/sub").c_str(), 0755), 0) << "mkdir of a name removed elsewhere: " << std::strerror(errno);
  EXPECT_TRUE(Exists(one_ + "/d0/sub"));
  // And a name that does exist is still refused.
  EXPECT_EQ(::open((deaf_ + "/d1/f3").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, EEXIST);
}

// A call on an inode the kernel reached through a name it still holds,
// after another mount replaced that name (a directory renamed over it) and
// meta freed the old inode: chmod, access and getxattr answer ESTALE, so
// the kernel looks the path up again and the call reaches the new one;
// before, they failed with ENOENT for as long as the kernel kept the name
// (60 s on the deaf mount; with notices, now and then, in the moment
// before one came). Directories, since a file's last close reaches meta
// later (carried), and until then the old file is still there to change.
TEST_F(NoticesTest, CallsOnANameReplacedElsewhere_ReachTheNewInode) {
  ASSERT_EQ(::mkdir((one_ + "/d").c_str(), 0755), 0);
  ASSERT_TRUE(Eventually([&] { return Exists(deaf_ + "/d"); }, 65'000));
  const ino_t old_ino = Stat(deaf_ + "/d").st_ino;
  ASSERT_EQ(::mkdir((one_ + "/d.tmp").c_str(), 0755), 0);
  ASSERT_EQ(::setxattr((one_ + "/d.tmp").c_str(), "user.v", "2", 1, 0), 0) << std::strerror(errno);
  ASSERT_EQ(::rename((one_ + "/d.tmp").c_str(), (one_ + "/d").c_str()), 0);
  ASSERT_EQ(Stat(deaf_ + "/d").st_ino, old_ino) << "the deaf mount's kernel did not cache the name: this proves nothing";

  EXPECT_EQ(::chmod((deaf_ + "/d").c_str(), 0700), 0) << std::strerror(errno);
  EXPECT_EQ(Stat(one_ + "/d").st_mode & 0777, 0700u);
  EXPECT_EQ(::access((deaf_ + "/d").c_str(), R_OK), 0) << std::strerror(errno);
  char value[8];
  const ssize_t n = ::getxattr((deaf_ + "/d").c_str(), "user.v", value, sizeof value);
  ASSERT_EQ(n, 1) << std::strerror(errno);
  EXPECT_EQ(value[0], '2');
}

// Meta sends a symlink's target with its attributes, and a symlink never
// changes, so readlink of a link the mount has looked up needs no round
// trip: none in which another mount could replace the link and meta free
// it (two readers of a link flipped 250 times a second got ESTALE on 273
// of ~7,300 opens that way). Shown on the deaf mount: its kernel keeps
// the name for 60 s; once the link is removed elsewhere, asking meta for
// the target would fail (ENOENT after the kernel's second look), while the
// mount answers from what the lookup brought.
TEST_F(NoticesTest, ReadlinkOfALookedUpSymlink_NeedsNoRoundTrip) {
  ASSERT_EQ(::symlink("some/target", (one_ + "/link").c_str()), 0);
  ASSERT_TRUE(Eventually([&] { return Exists(deaf_ + "/link"); }, 65'000));  // a lookup, no readlink
  ASSERT_EQ(::unlink((one_ + "/link").c_str()), 0);
  ASSERT_TRUE(Exists(deaf_ + "/link")) << "the deaf mount's kernel did not cache the name: this proves nothing";
  char buf[64];
  const ssize_t n = ::readlink((deaf_ + "/link").c_str(), buf, sizeof buf);
  ASSERT_GE(n, 0) << std::strerror(errno);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "some/target");
}

// git decides from stat data (size, mtime) whether a file changed, and finds
// commits by names it looked up (loose refs, objects): each would be wrong
// for the timeout after the other mount's commit without notices. Before
// notices this failed in its first round (files shown modified, HEAD behind).
TEST_F(NoticesTest, GitUsedFromTwoMountsInTurn_EachSeesTheOthersCommits) {
  if (RunShell("command -v git").exit_code != 0) GTEST_SKIP() << "no git";
  const std::string git = "git -c user.email=t@e -c user.name=t -c gc.auto=0 ";
  CommandResult r = RunShell("cd " + one_ + " && git init -q . && for i in $(seq 1 12); do echo $i > f$i; done && " +
                             git + "add -A && " + git + "commit -qm init");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int round = 1; round <= 12; ++round) {
    const std::string& here = round % 2 == 1 ? watching_ : one_;
    const std::string& there = round % 2 == 1 ? one_ : watching_;
    std::this_thread::sleep_for(milliseconds(100));
    r = RunShell("cd " + here + " && git status --porcelain");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, "") << "round " << round << ": " << here << " shows changes nobody made";
    r = RunShell("cd " + here + " && echo r" + std::to_string(round) + " >> f" + std::to_string(round % 5 + 1) +
                 " && echo new > n" + std::to_string(round) + " && " + git + "add -A && " + git + "commit -qm r" +
                 std::to_string(round) + (round % 4 == 0 ? " && " + git + "pack-refs --all" : std::string()) +
                 " && git rev-parse HEAD");
    ASSERT_EQ(r.exit_code, 0) << "round " << round << ": " << r.output;
    const std::string head = r.output;
    std::this_thread::sleep_for(milliseconds(100));
    r = RunShell("cd " + there + " && git rev-parse HEAD && git status --porcelain && git rev-list --count HEAD");
    EXPECT_EQ(r.output, head + std::to_string(round + 1) + "\n") << "round " << round << " seen from " << there;
  }
  r = RunShell("cd " + watching_ + " && git fsck --strict 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace dfs::testing
