// Differential test: the same seeded random sequence of namespace operations
// runs against a local temp directory (through syscalls, on the machine's
// filesystem - ext4 here) and against the state machine; every step must give
// the same errno, and the two trees must stay identical (names, types, link
// counts, permission bits, file sizes).
//
// Paths are resolved on the state machine side the way the kernel walks them
// (parent components by Lookup: ENOENT, ENOTDIR; symlinks point nowhere, so
// following one gives ENOENT), which is the part the FUSE kernel module does
// for a real mount. Runs as any user; as root the permission checks pass on
// both sides.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <dirent.h>

#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/status.h"
#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

constexpr uint64_t kRoot = 1;
constexpr char kDanglingTarget[] = "/nonexistent-dfs-differential-target";

struct Node {
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  friend bool operator==(const Node&, const Node&) = default;
};

class DifferentialTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    local_ = h_.dir() + "/local";
    ASSERT_EQ(::mkdir(local_.c_str(), 0755), 0);
    old_umask_ = ::umask(0);
    h_.creds = testing::Creds(::geteuid(), ::getegid());
  }
  void TearDown() override {
    ::setfsuid(0);
    ::setfsgid(0);
    ::umask(old_umask_);
  }

  // errno of a syscall result (0 on success).
  static int Sys(long rc) { return rc < 0 ? errno : 0; }
  std::string L(const std::string& path) const { return local_ + "/" + path; }

  static std::vector<std::string> Split(const std::string& path) {
    std::vector<std::string> parts;
    std::stringstream in(path);
    for (std::string part; std::getline(in, part, '/');) parts.push_back(part);
    return parts;
  }

  // Walks the parent components of `path`: the errno, the parent inode.
  int ResolveParent(const std::string& path, uint64_t* parent, std::string* name) {
    std::vector<std::string> parts = Split(path);
    uint64_t cur = kRoot;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      pb::Attr attr;
      int code = h_.Lookup(cur, parts[i], &attr);
      if (code != 0) return common::StatusCodeToErrno(static_cast<common::StatusCode>(code));
      if (S_ISLNK(attr.mode())) return ENOENT;  // dangling by construction
      if (!S_ISDIR(attr.mode())) return ENOTDIR;
      cur = attr.ino();
    }
    // The kernel's walk checks search permission on the last directory too
    // (link_path_walk), before the caller looks at the final name.
    pb::AccessRequest access;
    *access.mutable_ctx() = h_.Ctx();
    access.set_ino(cur);
    access.set_mask(X_OK);
    pb::StatusReply reply;
    h_.sm().Access(access, &reply);
    if (reply.status().code() != 0) return E(reply.status().code());
    *parent = cur;
    *name = parts.back();
    return 0;
  }
  // Resolves the whole path; follows a final symlink (to ENOENT) if `follow`.
  int Resolve(const std::string& path, bool follow, pb::Attr* attr) {
    uint64_t parent = 0;
    std::string name;
    if (int e = ResolveParent(path, &parent, &name)) return e;
    int code = h_.Lookup(parent, name, attr);
    if (code != 0) return common::StatusCodeToErrno(static_cast<common::StatusCode>(code));
    if (follow && S_ISLNK(attr->mode())) return ENOENT;
    return 0;
  }
  static int E(int code) { return common::StatusCodeToErrno(static_cast<common::StatusCode>(code)); }

  std::string RandomPath(std::mt19937& rng) {
    static const char* kNames[] = {"a", "b", "c", "d"};
    static const int kDepth[] = {1, 1, 2, 2, 2, 3};
    int depth = kDepth[rng() % 6];
    std::string path;
    for (int i = 0; i < depth; ++i) {
      if (i) path += "/";
      path += kNames[rng() % 4];
    }
    return path;
  }

  // Acts as `uid`/`gid` on both sides from now on: setfsuid/setfsgid for
  // the syscalls (per thread; leaving fsuid 0 drops the fs capabilities, so
  // the kernel checks permissions as for that user), creds for the state
  // machine. The process's supplementary groups apply to both.
  bool InGroup(uint32_t gid) const {
    if (h_.creds.uid() == 0 || h_.creds.gid() == gid) return true;
    for (uint32_t g : h_.creds.groups()) {
      if (g == gid) return true;
    }
    return false;
  }

  void ActAs(uint32_t uid, uint32_t gid) {
    ::setfsgid(gid);
    ::setfsuid(uid);
    h_.creds = testing::Creds(uid, gid);
    for (gid_t g : groups_) h_.creds.add_groups(g);
  }

  // One random operation on both sides; returns a description for failures.
  std::string Step(std::mt19937& rng) {
    if (multi_user_) {
      static const uint32_t kUsers[] = {0, 1000, 1001};
      const uint32_t uid = kUsers[rng() % 3];
      ActAs(uid, uid);
    }
    const std::string p = RandomPath(rng), q = RandomPath(rng);
    int want = 0, got = 0;
    std::string what;
    uint64_t parent = 0;
    std::string name;
    // mkdir and create weigh double so the tree grows deep enough.
    static const int kOpOf[] = {0, 0, 0, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    switch (kOpOf[rng() % 16]) {
      case 0: {
        what = "mkdir " + p;
        want = Sys(::mkdir(L(p).c_str(), 0755));
        got = ResolveParent(p, &parent, &name);
        if (!got) got = E(h_.Mkdir(parent, name, 0755));
        break;
      }
      case 1: {
        what = "create " + p;
        int fd = ::open(L(p).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        want = fd < 0 ? errno : 0;
        if (fd >= 0) ::close(fd);
        got = ResolveParent(p, &parent, &name);
        if (!got) got = E(h_.Create(parent, name, 0644, nullptr, nullptr, O_CREAT | O_EXCL | O_WRONLY));
        break;
      }
      case 2: {
        what = "unlink " + p;
        want = Sys(::unlink(L(p).c_str()));
        got = ResolveParent(p, &parent, &name);
        if (!got) got = E(h_.Unlink(parent, name));
        break;
      }
      case 3: {
        what = "rmdir " + p;
        want = Sys(::rmdir(L(p).c_str()));
        got = ResolveParent(p, &parent, &name);
        if (!got) got = E(h_.Rmdir(parent, name));
        break;
      }
      case 4:
      case 5: {
        const uint32_t flags = std::vector<uint32_t>{0, 0, 1, 2}[rng() % 4];
        what = "rename " + p + " " + q + " flags " + std::to_string(flags);
        want = Sys(::syscall(SYS_renameat2, AT_FDCWD, L(p).c_str(), AT_FDCWD, L(q).c_str(), flags));
        uint64_t new_parent = 0;
        std::string new_name;
        got = ResolveParent(p, &parent, &name);
        if (!got) got = ResolveParent(q, &new_parent, &new_name);
        if (!got) got = E(h_.Rename(parent, name, new_parent, new_name, flags));
        break;
      }
      case 6: {
        what = "link " + p + " " + q;
        want = Sys(::link(L(p).c_str(), L(q).c_str()));
        pb::Attr source;
        got = Resolve(p, false, &source);
        if (!got) got = ResolveParent(q, &parent, &name);
        if (!got) got = E(h_.Link(source.ino(), parent, name));
        break;
      }
      case 7: {
        what = "symlink " + p;
        want = Sys(::symlink(kDanglingTarget, L(p).c_str()));
        got = ResolveParent(p, &parent, &name);
        if (!got) got = E(h_.Symlink(parent, name, kDanglingTarget));
        break;
      }
      case 8: {
        const uint64_t size = rng() % 10000;
        what = "truncate " + p + " " + std::to_string(size);
        want = Sys(::truncate(L(p).c_str(), static_cast<off_t>(size)));
        pb::Attr attr;
        got = Resolve(p, true, &attr);
        if (!got) {
          pb::SetAttrRequest req;
          req.set_ino(attr.ino());
          req.set_valid(pb::SET_SIZE);
          req.set_size(size);
          got = E(h_.SetAttr(req));
        }
        break;
      }
      case 9: {
        const uint32_t mode = rng() % 010000;
        what = "chmod " + p;
        want = Sys(::chmod(L(p).c_str(), mode));
        pb::Attr attr;
        got = Resolve(p, true, &attr);
        if (!got) {
          pb::SetAttrRequest req;
          req.set_ino(attr.ino());
          req.set_valid(pb::SET_MODE);
          req.set_mode(mode);
          got = E(h_.SetAttr(req));
        }
        // Keep directories traversable for the rest of the run.
        if (want == 0) ::chmod(L(p).c_str(), mode | 0700);
        if (got == 0) {
          pb::SetAttrRequest req;
          req.set_ino(attr.ino());
          req.set_valid(pb::SET_MODE);
          req.set_mode(mode | 0700);
          h_.SetAttr(req);
        }
        break;
      }
      case 10: {
        static const int64_t kIds[] = {-1, 0, 1000, 1001};
        const int64_t uid = kIds[rng() % 4], gid = kIds[rng() % 4];
        what = "chown " + p + " " + std::to_string(uid) + ":" + std::to_string(gid);
        want = Sys(::chown(L(p).c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)));
        pb::Attr attr;
        got = Resolve(p, true, &attr);
        if (!got) {
          pb::SetAttrRequest req;
          req.set_ino(attr.ino());
          uint32_t valid = 0;
          if (uid >= 0) valid |= pb::SET_UID;
          if (gid >= 0) valid |= pb::SET_GID;
          req.set_valid(valid);
          req.set_uid(static_cast<uint32_t>(uid));
          req.set_gid(static_cast<uint32_t>(gid));
          // chown(-1, -1) still clears setuid/setgid on Linux; the FUSE
          // kernel sends that as a mode change.
          if (valid == 0) {
            pb::Attr now;
            h_.GetAttr(attr.ino(), &now);
            uint32_t mode = now.mode() & 07777;
            if (!S_ISDIR(now.mode())) {
              if ((mode & S_ISGID) && ((mode & S_IXGRP) || !InGroup(now.gid()))) mode &= ~S_ISGID;
              mode &= ~S_ISUID;
            }
            if (mode != (now.mode() & 07777)) {
              req.set_valid(pb::SET_MODE);
              req.set_mode(mode);
            }
          }
          got = E(h_.SetAttr(req));
        }
        break;
      }
      case 11: {
        what = "mkfifo " + p;
        want = Sys(::mknod(L(p).c_str(), S_IFIFO | 0640, 0));
        got = ResolveParent(p, &parent, &name);
        if (!got) {
          pb::Op op;
          auto* r = op.mutable_mknod();
          *r->mutable_ctx() = h_.Ctx();
          r->set_parent(parent);
          r->set_name(name);
          r->set_mode(S_IFIFO | 0640);
          got = E(h_.Apply(op).status().code());
        }
        break;
      }
    }
    ++outcomes_[want];
    last_ = what + " as uid " + std::to_string(h_.creds.uid()) + " -> " + std::to_string(want);
    if (want != got) {
      return what + " as uid " + std::to_string(h_.creds.uid()) +  + ": local errno " + std::to_string(want) + " (" + strerror(want) + "), state machine " +
             std::to_string(got) + " (" + strerror(got) + ")";
    }
    return "";
  }

  void ListLocal(const std::string& rel, std::map<std::string, Node>* out) {
    DIR* dir = ::opendir(L(rel).c_str());
    ASSERT_NE(dir, nullptr);
    while (dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string path = rel.empty() ? name : rel + "/" + name;
      struct stat st;
      ASSERT_EQ(::lstat(L(path).c_str(), &st), 0);
      Node node{static_cast<uint32_t>(st.st_mode), static_cast<uint32_t>(st.st_nlink),
                S_ISDIR(st.st_mode) ? 0 : static_cast<uint64_t>(st.st_size), st.st_uid, st.st_gid};
      (*out)[path] = node;
      if (S_ISDIR(st.st_mode)) ListLocal(path, out);
    }
    ::closedir(dir);
  }
  void ListSm(uint64_t ino, const std::string& rel, std::map<std::string, Node>* out) {
    uint64_t cookie = 0;
    for (;;) {
      pb::ReadDirRequest req;
      req.set_ino(ino);
      req.set_cookie(cookie);
      req.set_max_entries(3);
      pb::ReadDirReply reply;
      h_.sm().ReadDir(req, true, &reply);
      ASSERT_EQ(reply.status().code(), 0);
      for (const pb::DirEntry& e : reply.entries()) {
        std::string path = rel.empty() ? e.name() : rel + "/" + e.name();
        const pb::Attr& a = e.attr();
        EXPECT_EQ(e.type(), a.mode() & S_IFMT) << path;
        (*out)[path] = Node{a.mode(), a.nlink(), S_ISDIR(a.mode()) ? 0 : a.size(), a.uid(), a.gid()};
        if (S_ISDIR(a.mode())) ListSm(a.ino(), path, out);
        cookie = e.cookie();
      }
      if (reply.eof()) break;
    }
  }
  void CompareTrees(int step) {
    const uint32_t uid = h_.creds.uid(), gid = h_.creds.gid();
    ActAs(::geteuid(), ::getegid());
    std::map<std::string, Node> local, sm;
    ListLocal("", &local);
    ListSm(kRoot, "", &sm);
    ASSERT_EQ(local.size(), sm.size()) << "after step " << step;
    for (auto& [path, node] : local) {
      auto it = sm.find(path);
      ASSERT_NE(it, sm.end()) << path << " missing after step " << step;
      EXPECT_EQ(node.mode, it->second.mode) << path;
      EXPECT_EQ(node.nlink, it->second.nlink) << path;
      EXPECT_EQ(node.size, it->second.size) << path;
      EXPECT_EQ(node.uid, it->second.uid) << path;
      EXPECT_EQ(node.gid, it->second.gid) << path;
    }
    ActAs(uid, gid);
  }

  testing::SmHarness h_;
  std::string local_;
  mode_t old_umask_ = 0;
  static constexpr int kSteps = 1000;
  // Runs kSteps seeded steps, comparing the trees every DFS_DIFF_EVERY (50)
  // steps and at the end; stops at the first mismatch (a fatal failure).
  void RunSteps() {
    std::mt19937 rng(GetParam());
    const int every = std::getenv("DFS_DIFF_EVERY") ? std::atoi(std::getenv("DFS_DIFF_EVERY")) : 50;
    for (int step = 0; step < kSteps; ++step) {
      std::string mismatch = Step(rng);
      ASSERT_TRUE(mismatch.empty()) << "seed " << GetParam() << " step " << step << ": " << mismatch;
      if (std::getenv("DFS_DIFF_EVERY")) std::printf("step %d: %s\n", step, last_.c_str());
      if (step % every == every - 1) {
        CompareTrees(step);
        if (HasFatalFailure()) return;
      }
    }
    CompareTrees(kSteps);
  }

  std::map<int, int> outcomes_;  // errno (0 = success) -> steps
  bool multi_user_ = false;
  std::string last_;  // the last step, for debugging
  std::vector<gid_t> groups_;
};

TEST_P(DifferentialTest, RandomOps_SameErrnoAndTree) {
  RunSteps();
  if (HasFatalFailure()) return;
  // The run is only worth something if it both succeeded and failed often.
  EXPECT_GT(outcomes_[0], kSteps / 10);
  EXPECT_GE(outcomes_.size(), 6u) << "too few distinct errnos";
  std::string summary;
  for (auto [e, n] : outcomes_) summary += std::string(e ? strerrorname_np(e) : "OK") + "=" + std::to_string(n) + " ";
  RecordProperty("outcomes", summary);
  if (GetParam() == 1) std::printf("seed 1 outcomes: %s\n", summary.c_str());
}

INSTANTIATE_TEST_SUITE_P(Seeds, DifferentialTest, ::testing::Range(1u, 21u));

// The same with three users (root, 1000, 1001) taking turns, so permission
// outcomes (EACCES, EPERM, sticky directories, chmod/truncate by
// non-owners) are compared with ext4 too. Needs root (to switch fsuid).
class DifferentialUsersTest : public DifferentialTest {};

TEST_P(DifferentialUsersTest, RandomOpsAsThreeUsers_SameErrnoAndTree) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as other users";
  multi_user_ = true;
  int n = ::getgroups(0, nullptr);
  groups_.resize(n > 0 ? n : 0);
  if (n > 0) ::getgroups(n, groups_.data());
  // Both roots world-writable so every user has somewhere to work.
  ASSERT_EQ(::chmod(h_.dir().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(local_.c_str(), 0777), 0);
  pb::SetAttrRequest req;
  req.set_ino(kRoot);
  req.set_valid(pb::SET_MODE);
  req.set_mode(0777);
  ASSERT_EQ(h_.SetAttr(req), 0);
  RunSteps();
  if (HasFatalFailure()) return;
  EXPECT_GT(outcomes_[EACCES] + outcomes_[EPERM], 0) << "no permission outcome exercised";
  if (GetParam() == 1) {
    std::string summary;
    for (auto [e, n] : outcomes_) summary += std::string(e ? strerrorname_np(e) : "OK") + "=" + std::to_string(n) + " ";
    std::printf("seed 1 outcomes (three users): %s\n", summary.c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, DifferentialUsersTest, ::testing::Range(1u, 21u));

}  // namespace
}  // namespace dfs::meta
