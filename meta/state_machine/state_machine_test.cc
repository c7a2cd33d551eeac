// Unit tests of StateMachine::Apply and the read path, one operation and one
// errno at a time, on a temp SQLite file.
#include "meta/state_machine/state_machine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/dir_page.h"
#include "common/posix_attr.h"
#include "common/status.h"
#include "meta/state_machine/db.h"
#include "meta/state_machine/schema.h"
#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

using common::StatusCode;
using testing::SmHarness;

constexpr int C(StatusCode code) { return static_cast<int>(code); }
constexpr uint64_t kRoot = 1;

class StateMachineTest : public ::testing::Test {
 protected:
  SmHarness h;
};

TEST_F(StateMachineTest, Mkdir_CreatesDirectoryAndCountsLinks) {
  pb::Attr attr;
  ASSERT_EQ(h.Mkdir(kRoot, "d", 0755, &attr), 0);
  EXPECT_TRUE(S_ISDIR(attr.mode()));
  EXPECT_EQ(attr.mode() & 07777, 0755u);
  EXPECT_EQ(attr.nlink(), 2u);
  EXPECT_EQ(attr.ctime_ns(), h.now_ns);
  pb::Attr root;
  ASSERT_EQ(h.GetAttr(kRoot, &root), 0);
  EXPECT_EQ(root.nlink(), 3u);
  EXPECT_EQ(root.mtime_ns(), h.now_ns);
}

TEST_F(StateMachineTest, Mkdir_ExistingName_AlreadyExists) {
  ASSERT_EQ(h.Create(kRoot, "f"), 0);
  EXPECT_EQ(h.Mkdir(kRoot, "f"), C(StatusCode::kAlreadyExists));
}

TEST_F(StateMachineTest, Create_NameOver255Bytes_NameTooLong) {
  EXPECT_EQ(h.Create(kRoot, std::string(256, 'x')), C(StatusCode::kNameTooLong));
  EXPECT_EQ(h.Create(kRoot, std::string(255, 'x')), 0);
}

TEST_F(StateMachineTest, Create_BadNames_InvalidArgument) {
  EXPECT_EQ(h.Create(kRoot, ""), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(h.Create(kRoot, "a/b"), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(h.Create(kRoot, std::string("a\0b", 3)), C(StatusCode::kInvalidArgument));
}

TEST_F(StateMachineTest, Create_UnknownParent_NotFound) {
  EXPECT_EQ(h.Create(999, "f"), C(StatusCode::kNotFound));
  ASSERT_EQ(h.Create(kRoot, "f"), 0);
  pb::Attr f;
  ASSERT_EQ(h.Lookup(kRoot, "f", &f), 0);
  EXPECT_EQ(h.Create(f.ino(), "g"), C(StatusCode::kNotADirectory));
}

TEST_F(StateMachineTest, Create_ExclusiveOnExisting_AlreadyExists) {
  ASSERT_EQ(h.Create(kRoot, "f"), 0);
  EXPECT_EQ(h.Create(kRoot, "f", 0644, nullptr, nullptr, O_CREAT | O_EXCL | O_WRONLY), C(StatusCode::kAlreadyExists));
  EXPECT_EQ(h.Create(kRoot, "f", 0644, nullptr, nullptr, O_CREAT | O_WRONLY), 0);  // opens it
}

TEST_F(StateMachineTest, Create_AppliesUmask) {
  pb::Op op;
  auto* r = op.mutable_create();
  r->set_parent(kRoot);
  r->set_name("f");
  r->set_mode(0666);
  r->set_umask(022);
  pb::OpResult result = h.Apply(op);
  ASSERT_EQ(result.status().code(), 0);
  EXPECT_EQ(result.attr().mode(), static_cast<uint32_t>(S_IFREG | 0644));
}

TEST_F(StateMachineTest, Mknod_TypesAndDevicePermission) {
  for (uint32_t type : {S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK}) {
    pb::Op op;
    auto* r = op.mutable_mknod();
    r->set_parent(kRoot);
    r->set_name("n" + std::to_string(type));
    r->set_mode(type | 0600);
    r->set_rdev(0x0801);
    pb::OpResult result = h.Apply(op);
    ASSERT_EQ(result.status().code(), 0);
    EXPECT_EQ(result.attr().mode() & S_IFMT, type);
  }
  ASSERT_EQ(h.Mkdir(kRoot, "open", 0777), 0);
  pb::Attr dir;
  ASSERT_EQ(h.Lookup(kRoot, "open", &dir), 0);
  pb::Op op;
  auto* r = op.mutable_mknod();
  *r->mutable_ctx()->mutable_creds() = testing::Creds(1000, 1000);
  r->set_parent(dir.ino());
  r->set_name("dev");
  r->set_mode(S_IFCHR | 0600);
  EXPECT_EQ(h.Apply(op).status().code(), C(StatusCode::kNotPermitted));
}

TEST_F(StateMachineTest, Unlink_Errors) {
  EXPECT_EQ(h.Unlink(kRoot, "missing"), C(StatusCode::kNotFound));
  ASSERT_EQ(h.Mkdir(kRoot, "d"), 0);
  EXPECT_EQ(h.Unlink(kRoot, "d"), C(StatusCode::kIsADirectory));
}

TEST_F(StateMachineTest, Unlink_LastName_FreesInode) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  EXPECT_EQ(h.Lookup(kRoot, "f"), C(StatusCode::kNotFound));
  EXPECT_EQ(h.GetAttr(f.ino()), C(StatusCode::kNotFound));
}

TEST_F(StateMachineTest, Rmdir_Errors) {
  ASSERT_EQ(h.Mkdir(kRoot, "d"), 0);
  pb::Attr d;
  ASSERT_EQ(h.Lookup(kRoot, "d", &d), 0);
  ASSERT_EQ(h.Create(d.ino(), "f"), 0);
  EXPECT_EQ(h.Rmdir(kRoot, "d"), C(StatusCode::kNotEmpty));
  EXPECT_EQ(h.Rmdir(d.ino(), "f"), C(StatusCode::kNotADirectory));
  EXPECT_EQ(h.Rmdir(kRoot, "missing"), C(StatusCode::kNotFound));
  ASSERT_EQ(h.Unlink(d.ino(), "f"), 0);
  EXPECT_EQ(h.Rmdir(kRoot, "d"), 0);
  pb::Attr root;
  ASSERT_EQ(h.GetAttr(kRoot, &root), 0);
  EXPECT_EQ(root.nlink(), 2u);
  EXPECT_EQ(h.Create(d.ino(), "g"), C(StatusCode::kNotFound));
}

TEST_F(StateMachineTest, Link_CountsNamesAndRefusesDirectories) {
  pb::Attr f, d, linked;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(h.Mkdir(kRoot, "d", 0755, &d), 0);
  ASSERT_EQ(h.Link(f.ino(), kRoot, "g", &linked), 0);
  EXPECT_EQ(linked.nlink(), 2u);
  EXPECT_EQ(h.Link(f.ino(), kRoot, "g"), C(StatusCode::kAlreadyExists));
  EXPECT_EQ(h.Link(d.ino(), kRoot, "e"), C(StatusCode::kNotPermitted));
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  pb::Attr g;
  ASSERT_EQ(h.Lookup(kRoot, "g", &g), 0);
  EXPECT_EQ(g.nlink(), 1u);
}

TEST_F(StateMachineTest, Symlink_StoresTarget) {
  pb::Attr s;
  ASSERT_EQ(h.Symlink(kRoot, "s", "../some/target", &s), 0);
  EXPECT_TRUE(S_ISLNK(s.mode()));
  EXPECT_EQ(s.size(), 14u);
  pb::ReadlinkRequest req;
  req.set_ino(s.ino());
  pb::ReadlinkReply reply;
  h.sm().Readlink(req, &reply);
  EXPECT_EQ(reply.target(), "../some/target");
  // Its attributes carry the target wherever meta fills them (clients
  // answer readlink from them); a file's do not.
  EXPECT_EQ(s.symlink_target(), "../some/target");
  pb::Attr looked, got;
  ASSERT_EQ(h.Lookup(kRoot, "s", &looked), 0);
  EXPECT_EQ(looked.symlink_target(), "../some/target");
  ASSERT_EQ(h.GetAttr(s.ino(), &got), 0);
  EXPECT_EQ(got.symlink_target(), "../some/target");
  pb::ReadDirRequest list;
  list.set_ino(kRoot);
  pb::ReadDirReply page;
  h.sm().ReadDir(list, /*plus=*/true, &page);
  bool listed = false;
  for (const pb::DirEntry& e : page.entries()) {
    if (e.name() == "s") listed = e.attr().symlink_target() == "../some/target";
  }
  EXPECT_TRUE(listed);
  pb::Attr file;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &file), 0);
  EXPECT_EQ(file.symlink_target(), "");
  EXPECT_EQ(h.Symlink(kRoot, "t", ""), C(StatusCode::kNotFound));
  EXPECT_EQ(h.Symlink(kRoot, "t", std::string(4096, 'x')), C(StatusCode::kNameTooLong));
}

TEST_F(StateMachineTest, Rename_DirectoryUnderItself_InvalidArgument) {
  pb::Attr a, b;
  ASSERT_EQ(h.Mkdir(kRoot, "a", 0755, &a), 0);
  ASSERT_EQ(h.Mkdir(a.ino(), "b", 0755, &b), 0);
  EXPECT_EQ(h.Rename(kRoot, "a", b.ino(), "c"), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(h.Rename(kRoot, "a", a.ino(), "c"), C(StatusCode::kInvalidArgument));
  // The target an ancestor of the source: ENOTEMPTY.
  EXPECT_EQ(h.Rename(a.ino(), "b", kRoot, "a"), C(StatusCode::kNotEmpty));
}

TEST_F(StateMachineTest, Rename_ReplacesFilesAndEmptyDirectories) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(h.Create(kRoot, "g"), 0);
  ASSERT_EQ(h.Rename(kRoot, "f", kRoot, "g"), 0);
  pb::Attr g;
  ASSERT_EQ(h.Lookup(kRoot, "g", &g), 0);
  EXPECT_EQ(g.ino(), f.ino());
  EXPECT_EQ(h.Lookup(kRoot, "f"), C(StatusCode::kNotFound));

  pb::Attr d1, d2;
  ASSERT_EQ(h.Mkdir(kRoot, "d1", 0755, &d1), 0);
  ASSERT_EQ(h.Mkdir(kRoot, "d2", 0755, &d2), 0);
  EXPECT_EQ(h.Rename(kRoot, "g", kRoot, "d2"), C(StatusCode::kIsADirectory));
  EXPECT_EQ(h.Rename(kRoot, "d1", kRoot, "g"), C(StatusCode::kNotADirectory));
  ASSERT_EQ(h.Create(d2.ino(), "x"), 0);
  EXPECT_EQ(h.Rename(kRoot, "d1", kRoot, "d2"), C(StatusCode::kNotEmpty));
  ASSERT_EQ(h.Unlink(d2.ino(), "x"), 0);
  ASSERT_EQ(h.Rename(kRoot, "d1", kRoot, "d2"), 0);
  pb::Attr root;
  ASSERT_EQ(h.GetAttr(kRoot, &root), 0);
  EXPECT_EQ(root.nlink(), 3u);
  EXPECT_EQ(h.GetAttr(d2.ino()), C(StatusCode::kNotFound));
}

// A deploy's symlink flip (symlink a tmp name, rename it over "current")
// applied while other threads look "current" up and read its target: the
// name always exists, so every Lookup finds it, and whole. Before reads ran
// in one transaction, a Lookup found the name, then not the inode the next
// rename had freed, and answered kNotFound (ENOENT on a mount).
TEST_F(StateMachineTest, Reads_SeeOneStateWhileRenamesOverTheNameApply) {
  ASSERT_EQ(h.Symlink(kRoot, "current", "r0"), 0);
  std::atomic<bool> stop{false};
  std::atomic<int> lookups{0}, missing{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        pb::Attr attr;
        const int code = h.Lookup(kRoot, "current", &attr);
        ++lookups;
        if (code != 0 || attr.ino() == 0) ++missing;
      }
    });
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  int flips = 0;
  for (; flips < 20'000 && std::chrono::steady_clock::now() < end; ++flips) {
    ASSERT_EQ(h.Symlink(kRoot, "current.tmp", "r" + std::to_string(flips % 2)), 0);
    ASSERT_EQ(h.Rename(kRoot, "current.tmp", kRoot, "current"), 0);
  }
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(missing.load(), 0) << "of " << lookups.load() << " lookups during " << flips << " flips";
  EXPECT_GT(lookups.load(), 100);
}

TEST_F(StateMachineTest, Rename_MovesDirectoryAcrossParents) {
  pb::Attr a, b, c;
  ASSERT_EQ(h.Mkdir(kRoot, "a", 0755, &a), 0);
  ASSERT_EQ(h.Mkdir(kRoot, "b", 0755, &b), 0);
  ASSERT_EQ(h.Mkdir(a.ino(), "c", 0755, &c), 0);
  ASSERT_EQ(h.Rename(a.ino(), "c", b.ino(), "c"), 0);
  ASSERT_EQ(h.GetAttr(a.ino(), &a), 0);
  ASSERT_EQ(h.GetAttr(b.ino(), &b), 0);
  EXPECT_EQ(a.nlink(), 2u);
  EXPECT_EQ(b.nlink(), 3u);
  // c's parent moved: moving b under c is now a loop.
  EXPECT_EQ(h.Rename(kRoot, "b", c.ino(), "x"), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(h.Rename(kRoot, "a", c.ino(), "x"), 0);
}

TEST_F(StateMachineTest, Rename_NoReplaceAndExchange) {
  pb::Attr f, d;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(h.Mkdir(kRoot, "d", 0755, &d), 0);
  EXPECT_EQ(h.Rename(kRoot, "f", kRoot, "d", 1), C(StatusCode::kAlreadyExists));
  EXPECT_EQ(h.Rename(kRoot, "f", kRoot, "none", 2), C(StatusCode::kNotFound));
  EXPECT_EQ(h.Rename(kRoot, "f", kRoot, "d", 3), C(StatusCode::kInvalidArgument));
  EXPECT_EQ(h.Rename(kRoot, "f", kRoot, "d", 4), C(StatusCode::kInvalidArgument));
  ASSERT_EQ(h.Rename(kRoot, "f", kRoot, "d", 2), 0);
  pb::Attr now_f, now_d;
  ASSERT_EQ(h.Lookup(kRoot, "f", &now_f), 0);
  ASSERT_EQ(h.Lookup(kRoot, "d", &now_d), 0);
  EXPECT_EQ(now_f.ino(), d.ino());
  EXPECT_EQ(now_d.ino(), f.ino());
}

TEST_F(StateMachineTest, Rename_HardLinksOfOneInode_NoOp) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(h.Link(f.ino(), kRoot, "g"), 0);
  ASSERT_EQ(h.Rename(kRoot, "f", kRoot, "g"), 0);
  EXPECT_EQ(h.Lookup(kRoot, "f"), 0);
  EXPECT_EQ(h.Lookup(kRoot, "g"), 0);
}

TEST_F(StateMachineTest, Permission_NonOwnerCannotCreateInRootOwnedDir) {
  ASSERT_EQ(h.Mkdir(kRoot, "d", 0755), 0);
  pb::Attr d;
  ASSERT_EQ(h.Lookup(kRoot, "d", &d), 0);
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(h.Create(d.ino(), "f"), C(StatusCode::kPermissionDenied));
  // Supplementary group with write access.
  h.creds = testing::Creds(0, 0);
  pb::SetAttrRequest chgrp;
  chgrp.set_ino(d.ino());
  chgrp.set_valid(pb::SET_GID | pb::SET_MODE);
  chgrp.set_gid(50);
  chgrp.set_mode(0775);
  ASSERT_EQ(h.SetAttr(chgrp), 0);
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(h.Create(d.ino(), "f"), C(StatusCode::kPermissionDenied));
  h.creds.add_groups(50);
  EXPECT_EQ(h.Create(d.ino(), "f"), 0);
}

TEST_F(StateMachineTest, Permission_StickyDirectory) {
  ASSERT_EQ(h.Mkdir(kRoot, "tmp", 01777), 0);
  pb::Attr tmp;
  ASSERT_EQ(h.Lookup(kRoot, "tmp", &tmp), 0);
  h.creds = testing::Creds(1000, 1000);
  ASSERT_EQ(h.Create(tmp.ino(), "mine"), 0);
  h.creds = testing::Creds(1001, 1001);
  EXPECT_EQ(h.Unlink(tmp.ino(), "mine"), C(StatusCode::kNotPermitted));
  EXPECT_EQ(h.Rename(tmp.ino(), "mine", tmp.ino(), "stolen"), C(StatusCode::kNotPermitted));
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(h.Unlink(tmp.ino(), "mine"), 0);
}

TEST_F(StateMachineTest, Permission_SetgidDirectoryInheritance) {
  ASSERT_EQ(h.Mkdir(kRoot, "shared", 02777), 0);
  pb::Attr shared;
  ASSERT_EQ(h.Lookup(kRoot, "shared", &shared), 0);
  pb::SetAttrRequest chgrp;
  chgrp.set_ino(shared.ino());
  chgrp.set_valid(pb::SET_GID);
  chgrp.set_gid(77);
  ASSERT_EQ(h.SetAttr(chgrp), 0);
  h.creds = testing::Creds(1000, 1000);
  pb::Attr f, d;
  ASSERT_EQ(h.Create(shared.ino(), "f", 0644, &f), 0);
  EXPECT_EQ(f.gid(), 77u);
  ASSERT_EQ(h.Mkdir(shared.ino(), "d", 0755, &d), 0);
  EXPECT_EQ(d.gid(), 77u);
  EXPECT_TRUE(d.mode() & S_ISGID);
}

TEST_F(StateMachineTest, SetAttr_ChownRules) {
  ASSERT_EQ(h.Mkdir(kRoot, "pub", 0777), 0);
  pb::Attr pub;
  ASSERT_EQ(h.Lookup(kRoot, "pub", &pub), 0);
  h.creds = testing::Creds(1000, 1000);
  h.creds.add_groups(20);
  pb::Attr f;
  ASSERT_EQ(h.Create(pub.ino(), "f", 06755, &f), 0);
  pb::SetAttrRequest req;
  req.set_ino(f.ino());
  req.set_valid(pb::SET_UID);
  req.set_uid(0);
  EXPECT_EQ(h.SetAttr(req), C(StatusCode::kNotPermitted));  // only root gives files away
  req.set_valid(pb::SET_GID);
  req.set_gid(30);
  EXPECT_EQ(h.SetAttr(req), C(StatusCode::kNotPermitted));  // not a member of 30
  req.set_gid(20);
  pb::Attr after;
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  EXPECT_EQ(after.gid(), 20u);
  EXPECT_EQ(after.mode() & (S_ISUID | S_ISGID), 0u);  // chown clears suid and (g+x) sgid
  EXPECT_EQ(after.ctime_ns(), h.now_ns);
  h.creds = testing::Creds(1001, 1001);
  req.set_valid(pb::SET_MODE);
  req.set_mode(0777);
  EXPECT_EQ(h.SetAttr(req), C(StatusCode::kNotPermitted));
}

// A write by a caller without CAP_FSETID (the kernel's
// FUSE_WRITE_KILL_SUIDGID, sent as SET_KILL_SUIDGID): setuid goes, setgid
// when group-executable or the writer is not in the group, as on ext4. It
// needs write access, and changes nothing on a directory.
TEST_F(StateMachineTest, SetAttr_KillSuidSgidIsWhatAWriteDoes) {
  pb::Attr f, g, d;
  ASSERT_EQ(h.Create(kRoot, "f", 06777, &f), 0);
  ASSERT_EQ(h.Create(kRoot, "g", 02666, &g), 0);
  ASSERT_EQ(h.Mkdir(kRoot, "d", 06777, &d), 0);
  pb::SetAttrRequest req;
  req.set_valid(pb::SET_KILL_SUIDGID);
  pb::Attr after;
  h.creds = testing::Creds(1000, 1000);
  h.now_ns += 5;
  req.set_ino(f.ino());
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  EXPECT_EQ(after.mode() & 07777, 0777u);
  EXPECT_EQ(after.ctime_ns(), h.now_ns);
  req.set_ino(d.ino());
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  EXPECT_EQ(after.mode() & 07777, 06777u);
  // setgid without group exec: kept for a member of the group, not for others.
  h.creds = testing::Creds(1000, 0);
  req.set_ino(g.ino());
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  EXPECT_EQ(after.mode() & 07777, 02666u);
  h.creds = testing::Creds(1000, 1000);
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  EXPECT_EQ(after.mode() & 07777, 0666u);
  // Without write access it is refused and nothing changes.
  h.creds = testing::Creds(0, 0);
  pb::SetAttrRequest chmod;
  chmod.set_ino(f.ino());
  chmod.set_valid(pb::SET_MODE);
  chmod.set_mode(06755);
  ASSERT_EQ(h.SetAttr(chmod), 0);
  h.creds = testing::Creds(1000, 1000);
  req.set_ino(f.ino());
  EXPECT_EQ(h.SetAttr(req), C(StatusCode::kPermissionDenied));
  ASSERT_EQ(h.GetAttr(f.ino(), &after), 0);
  EXPECT_EQ(after.mode() & 07777, 06755u);
}

// The client answers root's chmod/chown of an open file itself
// (common::ModeAfterRootSetAttr, fuse FileSystem::SetAttr) and carries it to
// meta later: what it answered must be what meta stores.
TEST_F(StateMachineTest, SetAttr_RootChmodChownIsWhatTheClientPredicts) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  const uint32_t modes[] = {0644, 04755, 02755, 02745, 06755, 07777, 0600, 01777};
  const uint32_t valids[] = {pb::SET_MODE, pb::SET_UID, pb::SET_GID, pb::SET_UID | pb::SET_GID,
                             pb::SET_MODE | pb::SET_UID | pb::SET_GID, pb::SET_CTIME, pb::SET_MODE | pb::SET_GID};
  const uint32_t new_modes[] = {0640, 04711, 02750, 06777};
  int checked = 0;
  for (uint32_t mode : modes) {
    for (uint32_t valid : valids) {
      for (uint32_t new_mode : new_modes) {
        pb::SetAttrRequest start;
        start.set_ino(f.ino());
        start.set_valid(pb::SET_MODE);
        start.set_mode(mode);
        pb::Attr before;
        ASSERT_EQ(h.SetAttr(start, &before), 0);
        ASSERT_EQ(before.mode(), S_IFREG | mode);
        pb::SetAttrRequest req;
        req.set_ino(f.ino());
        req.set_valid(valid);
        req.set_mode(new_mode);
        req.set_uid(1000 + checked);
        req.set_gid(2000 + checked);
        pb::Attr after;
        ASSERT_EQ(h.SetAttr(req, &after), 0);
        EXPECT_EQ(after.mode(), common::ModeAfterRootSetAttr(before.mode(), valid, new_mode))
            << std::oct << "mode " << mode << " valid " << valid << " new " << new_mode;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 8 * 7 * 4);
}

TEST_F(StateMachineTest, SetAttr_ChmodByNonMemberClearsSetgid) {
  ASSERT_EQ(h.Mkdir(kRoot, "pub", 0777), 0);
  pb::Attr pub, f;
  ASSERT_EQ(h.Lookup(kRoot, "pub", &pub), 0);
  h.creds = testing::Creds(1000, 1000);
  ASSERT_EQ(h.Create(pub.ino(), "f", 0644, &f), 0);
  h.creds = testing::Creds(0, 0);
  pb::SetAttrRequest req;
  req.set_ino(f.ino());
  req.set_valid(pb::SET_GID);
  req.set_gid(55);
  ASSERT_EQ(h.SetAttr(req), 0);
  h.creds = testing::Creds(1000, 1000);
  req.set_valid(pb::SET_MODE);
  req.set_mode(02755);
  pb::Attr after;
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  EXPECT_EQ(after.mode() & 07777, 0755u);
}

TEST_F(StateMachineTest, SetAttr_TimesNowAndOmit) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  h.now_ns += 1000;
  pb::SetAttrRequest req;
  req.set_ino(f.ino());
  req.set_valid(pb::SET_ATIME | pb::SET_MTIME_NOW);
  req.set_atime_ns(42);
  pb::Attr after;
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  EXPECT_EQ(after.atime_ns(), 42);
  EXPECT_EQ(after.mtime_ns(), h.now_ns);
  EXPECT_EQ(after.ctime_ns(), h.now_ns);
  // Another user may set "now" only with write access, explicit times never.
  h.creds = testing::Creds(1000, 1000);
  req.set_valid(pb::SET_MTIME_NOW);
  EXPECT_EQ(h.SetAttr(req), C(StatusCode::kPermissionDenied));
  req.set_valid(pb::SET_MTIME);
  EXPECT_EQ(h.SetAttr(req), C(StatusCode::kNotPermitted));
}

TEST_F(StateMachineTest, SetAttr_SizeErrors) {
  pb::Attr d;
  ASSERT_EQ(h.Mkdir(kRoot, "d", 0755, &d), 0);
  pb::SetAttrRequest req;
  req.set_ino(d.ino());
  req.set_valid(pb::SET_SIZE);
  req.set_size(10);
  EXPECT_EQ(h.SetAttr(req), C(StatusCode::kIsADirectory));
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  req.set_ino(f.ino());
  req.set_size(uint64_t{1} << 50);
  EXPECT_EQ(h.SetAttr(req), C(StatusCode::kOutOfRange));
  req.set_size(12345);
  pb::Attr after;
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  EXPECT_EQ(after.size(), 12345u);
  EXPECT_EQ(h.SetAttr([&] { pb::SetAttrRequest r; r.set_ino(999); return r; }()), C(StatusCode::kNotFound));
}

TEST_F(StateMachineTest, ReadDir_CookiesStableWhileDirectoryChanges) {
  for (int i = 0; i < 100; ++i) ASSERT_EQ(h.Create(kRoot, "f" + std::to_string(i)), 0);
  std::set<std::string> seen;
  uint64_t cookie = 0;
  int page = 0;
  for (;;) {
    pb::ReadDirRequest req;
    req.set_ino(kRoot);
    req.set_cookie(cookie);
    req.set_max_entries(7);
    pb::ReadDirReply reply;
    h.sm().ReadDir(req, page % 2 == 0, &reply);
    ASSERT_EQ(reply.status().code(), 0);
    for (const pb::DirEntry& e : reply.entries()) {
      EXPECT_TRUE(seen.insert(e.name()).second) << "twice: " << e.name();
      cookie = e.cookie();
    }
    // Churn between pages: delete entries not yet returned and add new ones.
    std::string victim = "f" + std::to_string(99 - page);
    if (!seen.count(victim)) h.Unlink(kRoot, victim);
    h.Create(kRoot, "new" + std::to_string(page));
    ++page;
    if (reply.eof()) break;
  }
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(seen.count("f" + std::to_string(i))) << i;
}

// A packed page (plain ReadDir) holds what the DirEntry messages would, in
// pages of the same size and with the same end.
TEST_F(StateMachineTest, ReadDir_PackedPagesHoldTheSameEntries) {
  for (int i = 0; i < 20; ++i) ASSERT_EQ(h.Create(kRoot, "f" + std::to_string(i)), 0);
  ASSERT_EQ(h.Mkdir(kRoot, "sub"), 0);
  auto list = [&](bool packed) {
    std::string out;
    uint64_t cookie = 0;
    for (int pages = 0; pages < 100; ++pages) {
      pb::ReadDirRequest req;
      req.set_ino(kRoot);
      req.set_cookie(cookie);
      req.set_max_entries(6);
      req.set_packed(packed);
      pb::ReadDirReply reply;
      h.sm().ReadDir(req, false, &reply);
      EXPECT_EQ(reply.status().code(), 0);
      EXPECT_EQ(reply.entries_size() == 0, packed);
      EXPECT_LE(common::DirPageSize(reply), 6u);
      EXPECT_TRUE(common::ForEachDirEntry(reply, [&](const common::DirPageEntry& e) {
                    out += std::string(e.name) + "/" + std::to_string(e.ino) + "/" + std::to_string(e.type) + " ";
                    cookie = e.cookie;
                    return true;
                  }).ok());
      out += "|";
      if (reply.eof()) break;
    }
    return out;
  };
  const std::string packed = list(true);
  EXPECT_EQ(packed, list(false));
  EXPECT_NE(packed.find("sub/"), std::string::npos) << packed;
  EXPECT_NE(packed.find("f19/"), std::string::npos) << packed;
}

TEST_F(StateMachineTest, ExactlyOnce_RetryReturnsFirstResultAcrossRestart) {
  pb::Op op;
  op.set_client_id(7);
  op.set_request_id(1);
  auto* r = op.mutable_mkdir();
  r->set_parent(kRoot);
  r->set_name("d");
  r->set_mode(0755);
  pb::OpResult first = h.Apply(op);
  ASSERT_EQ(first.status().code(), 0);
  pb::OpResult retry = h.Apply(op);
  EXPECT_EQ(retry.status().code(), 0);  // not EEXIST
  EXPECT_EQ(retry.attr().ino(), first.attr().ino());
  h.Reopen();
  pb::OpResult after_restart = h.Apply(op);
  EXPECT_EQ(after_restart.attr().ino(), first.attr().ino());
  op.set_request_id(2);
  EXPECT_EQ(h.Apply(op).status().code(), C(StatusCode::kAlreadyExists));
}

TEST_F(StateMachineTest, ExactlyOnce_WindowIsBounded) {
  for (uint64_t id = 1; id <= kRequestWindow + 64 + 10; ++id) {
    pb::Op op;
    op.set_client_id(9);
    op.set_request_id(id);
    op.mutable_mkdir()->set_parent(kRoot);
    op.mutable_mkdir()->set_name("x");
    h.Apply(op);
  }
  // The oldest results were dropped: a replay of id 1 applies again (EEXIST).
  pb::Op op;
  op.set_client_id(9);
  op.set_request_id(1);
  op.mutable_mkdir()->set_parent(kRoot);
  op.mutable_mkdir()->set_name("x");
  EXPECT_EQ(h.Apply(op).status().code(), C(StatusCode::kAlreadyExists));
}

TEST_F(StateMachineTest, Apply_MalformedEntry_InvalidArgumentNoChange) {
  auto result = h.sm().Apply("\xff\xff\xff garbage");
  EXPECT_FALSE(result.ok());
  pb::Entry entry;
  entry.set_format(99);
  EXPECT_FALSE(h.sm().Apply(entry.SerializeAsString()).ok());
  pb::Op unknown;  // no body
  EXPECT_EQ(h.Apply(unknown).status().code(), C(StatusCode::kUnimplemented));
}

TEST_F(StateMachineTest, Apply_FailedOpLeavesNoPartialChange) {
  // A batch where the second op fails: the first stays, the second leaves nothing.
  pb::Entry entry;
  entry.set_format(1);
  pb::Op* a = entry.add_ops();
  a->mutable_mkdir()->set_parent(kRoot);
  a->mutable_mkdir()->set_name("a");
  pb::Op* b = entry.add_ops();
  b->mutable_mkdir()->set_parent(kRoot);
  b->mutable_mkdir()->set_name("a");
  auto results = h.sm().Apply(entry.SerializeAsString());
  ASSERT_TRUE(results.ok());
  EXPECT_EQ((*results)[0].status().code(), 0);
  EXPECT_EQ((*results)[1].status().code(), C(StatusCode::kAlreadyExists));
  pb::Attr root;
  ASSERT_EQ(h.GetAttr(kRoot, &root), 0);
  EXPECT_EQ(root.nlink(), 3u);
}

TEST_F(StateMachineTest, CountAll_TracksLiveInodesAndFiles) {
  ASSERT_EQ(h.Mkdir(kRoot, "d"), 0);
  ASSERT_EQ(h.Create(kRoot, "f"), 0);
  ASSERT_EQ(h.Create(kRoot, "g"), 0);
  ASSERT_EQ(h.Symlink(kRoot, "s", "t"), 0);
  StateMachine::Counts counts = h.sm().CountAll();
  EXPECT_EQ(counts.inodes, 5u);  // root, d, f, g, s
  EXPECT_EQ(counts.files, 2u);
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  ASSERT_EQ(h.Rmdir(kRoot, "d"), 0);
  ASSERT_EQ(h.Rename(kRoot, "s", kRoot, "g"), 0);  // replaces (frees) g
  counts = h.sm().CountAll();
  EXPECT_EQ(counts.inodes, 2u);
  EXPECT_EQ(counts.files, 0u);
  EXPECT_EQ(counts.chunks, 0u);
}

// Every table, every row, in key order: equal dumps mean equal states.
std::string Dump(const std::string& path) {
  auto db = Db::Open(path, "OFF");
  EXPECT_TRUE(db.ok());
  std::string out;
  for (const char* sql : {"SELECT * FROM counters ORDER BY 1", "SELECT * FROM inodes ORDER BY 1",
                          "SELECT * FROM dentries ORDER BY 1, 2", "SELECT * FROM xattrs ORDER BY 1, 2",
                          "SELECT * FROM chunks ORDER BY 1, 2", "SELECT * FROM replicas ORDER BY 1, 2",
                          "SELECT * FROM leases ORDER BY 1", "SELECT * FROM garbage ORDER BY 1",
                          "SELECT * FROM nodes ORDER BY 1", "SELECT * FROM sessions ORDER BY 1",
                          "SELECT * FROM handles ORDER BY 1", "SELECT * FROM requests ORDER BY 1, 2"}) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2((*db)->raw(), sql, -1, &stmt, nullptr);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
        const unsigned char* text = sqlite3_column_text(stmt, c);
        out += text ? std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt, c)) : "NULL";
        out += '|';
      }
      out += '\n';
    }
    sqlite3_finalize(stmt);
  }
  return out;
}

TEST(StateMachineDeterminismTest, Apply_SameEntriesSameState) {
  // A mixed history (sessions, exactly-once ids, creates, renames over
  // existing names, xattrs, unlinks), fed to two replicas as a Raft log would.
  std::vector<std::string> entries;
  {
    pb::Entry entry;
    entry.set_format(1);
    int64_t now = 1'700'000'000'000'000'000;
    auto add = [&](pb::Op op) {
      op.set_now_ns(now += 1000);
      *entry.add_ops() = std::move(op);
      if (entry.ops_size() == 3) {
        entries.push_back(entry.SerializeAsString());
        entry.clear_ops();
      }
    };
    pb::Op session;
    session.mutable_open_session()->set_lease_ms(1000);
    add(session);
    for (int i = 0; i < 20; ++i) {
      pb::Op op;
      op.set_client_id(1);
      op.set_request_id(i + 1);
      auto* r = op.mutable_create();
      r->set_parent(1);
      r->set_name("f" + std::to_string(i % 7));
      r->set_mode(0644);
      r->set_flags(01);
      add(op);
      pb::Op mk;
      mk.mutable_mkdir()->set_parent(1);
      mk.mutable_mkdir()->set_name("d" + std::to_string(i % 5));
      add(mk);
      pb::Op rn;
      rn.mutable_rename()->set_parent(1);
      rn.mutable_rename()->set_name("f" + std::to_string(i % 7));
      rn.mutable_rename()->set_new_parent(1);
      rn.mutable_rename()->set_new_name("g" + std::to_string(i % 3));
      add(rn);
      pb::Op x;
      x.mutable_set_xattr()->set_ino(2 + i % 4);
      x.mutable_set_xattr()->set_name("user.k");
      x.mutable_set_xattr()->set_value(std::to_string(i));
      add(x);
      pb::Op un;
      un.mutable_unlink()->set_parent(1);
      un.mutable_unlink()->set_name("g" + std::to_string(i % 2));
      add(un);
    }
    entries.push_back(entry.SerializeAsString());
  }
  testing::SmHarness a, b;
  for (const std::string& bytes : entries) {
    auto ra = a.sm().Apply(bytes);
    auto rb = b.sm().Apply(bytes);
    ASSERT_TRUE(ra.ok() && rb.ok());
    ASSERT_EQ(ra->size(), rb->size());
    for (size_t i = 0; i < ra->size(); ++i) EXPECT_EQ((*ra)[i].SerializeAsString(), (*rb)[i].SerializeAsString());
  }
  const std::string dump = Dump(a.dir() + "/meta.db");
  EXPECT_EQ(dump, Dump(b.dir() + "/meta.db"));
  EXPECT_NE(dump.find("user.k"), std::string::npos);
}

}  // namespace
}  // namespace dfs::meta
