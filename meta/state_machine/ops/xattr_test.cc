// Extended attributes: namespaces, flags and Linux limits.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <array>

#include "common/status.h"
#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

using common::StatusCode;
constexpr int C(StatusCode code) { return static_cast<int>(code); }
constexpr uint64_t kRoot = 1;

class XattrTest : public ::testing::Test {
 protected:
  int Set(uint64_t ino, const std::string& name, const std::string& value, uint32_t flags = 0) {
    pb::Op op;
    auto* r = op.mutable_set_xattr();
    *r->mutable_ctx() = h.Ctx();
    r->set_ino(ino);
    r->set_name(name);
    r->set_value(value);
    r->set_flags(flags);
    return h.Apply(op).status().code();
  }
  int Get(uint64_t ino, const std::string& name, std::string* value = nullptr) {
    pb::GetXattrRequest req;
    *req.mutable_ctx() = h.Ctx();
    req.set_ino(ino);
    req.set_name(name);
    pb::GetXattrReply reply;
    h.sm().GetXattr(req, &reply);
    if (value) *value = reply.value();
    return reply.status().code();
  }
  int Remove(uint64_t ino, const std::string& name) {
    pb::Op op;
    auto* r = op.mutable_remove_xattr();
    *r->mutable_ctx() = h.Ctx();
    r->set_ino(ino);
    r->set_name(name);
    return h.Apply(op).status().code();
  }
  testing::SmHarness h;
};

TEST_F(XattrTest, SetGetListRemove) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(Set(f.ino(), "user.a", "1"), 0);
  ASSERT_EQ(Set(f.ino(), "trusted.b", std::string("\0x", 2)), 0);
  std::string value;
  ASSERT_EQ(Get(f.ino(), "trusted.b", &value), 0);
  EXPECT_EQ(value, std::string("\0x", 2));
  pb::ListXattrRequest list;
  list.set_ino(f.ino());
  pb::ListXattrReply names;
  h.sm().ListXattr(list, &names);
  ASSERT_EQ(names.names_size(), 2);
  EXPECT_EQ(Remove(f.ino(), "user.a"), 0);
  EXPECT_EQ(Remove(f.ino(), "user.a"), C(StatusCode::kNoAttribute));
  EXPECT_EQ(Get(f.ino(), "user.a"), C(StatusCode::kNoAttribute));
}

TEST_F(XattrTest, CreateAndReplaceFlags) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  EXPECT_EQ(Set(f.ino(), "user.a", "1", 2), C(StatusCode::kNoAttribute));  // XATTR_REPLACE
  EXPECT_EQ(Set(f.ino(), "user.a", "1", 1), 0);                            // XATTR_CREATE
  EXPECT_EQ(Set(f.ino(), "user.a", "2", 1), C(StatusCode::kAlreadyExists));
  EXPECT_EQ(Set(f.ino(), "user.a", "2", 2), 0);
}

TEST_F(XattrTest, Limits) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  EXPECT_EQ(Set(f.ino(), "user." + std::string(251, 'n'), "v"), C(StatusCode::kRange));  // ERANGE
  EXPECT_EQ(Set(f.ino(), "", "v"), C(StatusCode::kRange));
  EXPECT_EQ(Set(f.ino(), "user.big", std::string(65537, 'v')), C(StatusCode::kValueTooLarge));  // E2BIG
  EXPECT_EQ(Set(f.ino(), "user.max", std::string(65536, 'v')), 0);
  EXPECT_EQ(Set(f.ino(), "bogus.ns", "v"), C(StatusCode::kUnimplemented));
}

TEST_F(XattrTest, NamespacePermissions) {
  pb::Attr f, s;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(h.Symlink(kRoot, "s", "f", &s), 0);
  EXPECT_EQ(Set(s.ino(), "user.a", "1"), C(StatusCode::kNotPermitted));
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(Set(f.ino(), "user.a", "1"), C(StatusCode::kPermissionDenied));
  EXPECT_EQ(Set(f.ino(), "trusted.a", "1"), C(StatusCode::kNotPermitted));
  EXPECT_EQ(Set(f.ino(), "system.posix_acl_access", "1"), C(StatusCode::kNotPermitted));
}

// The kernel drops security.capability for a write by anyone who may
// write (file_remove_privs); a removal asked for directly needs
// CAP_SETFCAP, which the kernel checks before it asks us. So meta lets a
// non-owner who may write remove that one attribute, and nothing more.
TEST_F(XattrTest, CapabilityRemoval_NeedsOnlyWriteAccess) {
  pb::Attr f, ro;
  ASSERT_EQ(h.Create(kRoot, "f", 0666, &f), 0);
  ASSERT_EQ(h.Create(kRoot, "ro", 0644, &ro), 0);
  for (uint64_t ino : {f.ino(), ro.ino()}) {
    ASSERT_EQ(Set(ino, "security.capability", "caps"), 0);
    ASSERT_EQ(Set(ino, "security.other", "x"), 0);
  }
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(Remove(ro.ino(), "security.capability"), C(StatusCode::kPermissionDenied));
  EXPECT_EQ(Remove(f.ino(), "security.other"), C(StatusCode::kNotPermitted));
  EXPECT_EQ(Set(f.ino(), "security.capability", "more"), C(StatusCode::kNotPermitted));
  EXPECT_EQ(Remove(f.ino(), "security.capability"), 0);
  EXPECT_EQ(Get(f.ino(), "security.capability"), C(StatusCode::kNoAttribute));
  EXPECT_EQ(Get(ro.ino(), "security.capability"), 0);
}

std::string Acl(std::initializer_list<std::array<uint32_t, 3>> entries) {
  std::string v = {'\x02', '\0', '\0', '\0'};
  for (const auto& [tag, perm, id] : entries) {
    for (uint32_t x : {tag & 0xff, tag >> 8, perm & 0xff, perm >> 8}) v.push_back(static_cast<char>(x));
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<char>((id >> (8 * i)) & 0xff));
  }
  return v;
}

// As on ext4: an access ACL sets the permission bits (cp -a keeps modes by
// setting one); one that says no more than the mode bits is not stored; a
// richer one is, with its mask as the group bits; a bad one is EINVAL;
// setgid goes when the owner setting it is not in the file's group.
TEST_F(XattrTest, AccessAcl_SetsTheModeAsLinuxDoes) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0600, &f), 0);
  EXPECT_EQ(Set(f.ino(), "system.posix_acl_access", Acl({{1, 6, 0}, {4, 4, 0}, {0x20, 4, 0}})), 0);
  pb::Attr attr;
  ASSERT_EQ(h.GetAttr(f.ino(), &attr), 0);
  EXPECT_EQ(attr.mode(), static_cast<uint32_t>(S_IFREG | 0644));
  EXPECT_EQ(Get(f.ino(), "system.posix_acl_access"), C(StatusCode::kNoAttribute)) << "an equivalent ACL was kept";

  const std::string rich = Acl({{1, 7, 0}, {2, 5, 1000}, {4, 4, 0}, {0x10, 5, 0}, {0x20, 0, 0}});
  EXPECT_EQ(Set(f.ino(), "system.posix_acl_access", rich), 0);
  ASSERT_EQ(h.GetAttr(f.ino(), &attr), 0);
  EXPECT_EQ(attr.mode(), static_cast<uint32_t>(S_IFREG | 0750));
  std::string stored;
  EXPECT_EQ(Get(f.ino(), "system.posix_acl_access", &stored), 0);
  EXPECT_EQ(stored, rich);
  // chmod rewrites it (posix_acl_chmod): owner and other from the mode, the
  // mask from the group bits; the named entry stays.
  pb::SetAttrRequest chmod;
  *chmod.mutable_ctx() = h.Ctx();
  chmod.set_ino(f.ino());
  chmod.set_valid(pb::SET_MODE);
  chmod.set_mode(0640);
  ASSERT_EQ(h.SetAttr(chmod), 0);
  EXPECT_EQ(Get(f.ino(), "system.posix_acl_access", &stored), 0);
  EXPECT_EQ(stored, Acl({{1, 6, 0}, {2, 5, 1000}, {4, 4, 0}, {0x10, 4, 0}, {0x20, 0, 0}}));
  chmod.set_mode(0750);
  ASSERT_EQ(h.SetAttr(chmod), 0);
  EXPECT_EQ(Set(f.ino(), "system.posix_acl_access", Acl({{4, 4, 0}, {1, 6, 0}, {0x20, 4, 0}})),
            C(StatusCode::kInvalidArgument));
  EXPECT_EQ(Set(f.ino(), "system.posix_acl_access", ""), 0);  // removes it; the mode stays
  EXPECT_EQ(Get(f.ino(), "system.posix_acl_access"), C(StatusCode::kNoAttribute));
  ASSERT_EQ(h.GetAttr(f.ino(), &attr), 0);
  EXPECT_EQ(attr.mode(), static_cast<uint32_t>(S_IFREG | 0750));

  // An owner outside the file's group loses setgid, as with chmod.
  pb::Attr g;
  ASSERT_EQ(h.Create(kRoot, "g", 0644, &g), 0);
  pb::SetAttrRequest chown;
  *chown.mutable_ctx() = h.Ctx();
  chown.set_ino(g.ino());
  chown.set_valid(pb::SET_UID | pb::SET_GID | pb::SET_MODE);
  chown.set_uid(1000);
  chown.set_gid(50);
  chown.set_mode(02755);
  ASSERT_EQ(h.SetAttr(chown), 0);
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(Set(g.ino(), "system.posix_acl_access", Acl({{1, 7, 0}, {4, 5, 0}, {0x20, 5, 0}})), 0);
  ASSERT_EQ(h.GetAttr(g.ino(), &attr), 0);
  EXPECT_EQ(attr.mode(), static_cast<uint32_t>(S_IFREG | 0755));
}

int AccessAs(testing::SmHarness& h, uint64_t ino, uint32_t mask) {
  pb::AccessRequest req;
  *req.mutable_ctx() = h.Ctx();
  req.set_ino(ino);
  req.set_mask(mask);
  pb::StatusReply reply;
  h.sm().Access(req, &reply);
  return reply.status().code();
}

int OpenLogged(testing::SmHarness& h, uint64_t ino, uint32_t flags) {
  pb::Op op;
  *op.mutable_open()->mutable_ctx() = h.Ctx();
  op.mutable_open()->set_ino(ino);
  op.mutable_open()->set_flags(flags);
  return h.Apply(op).status().code();
}

// A stored access ACL decides for everyone but the owner (and root), in
// reads and in logged ops alike; entries from before Op.posix_acls judged
// by the mode bits only, and replay must judge them the same.
// readdirplus builds each entry's attributes in its listing query, not by
// GetAttr's lookups: both must give the same bytes, ACL presence and blocks
// included (a file with a committed chunk: chunk_test.cc's
// ReadDirPlus_CountsCommittedBlocks).
TEST_F(XattrTest, ReadDirPlus_AttributesAreGetAttrsOfEveryKind) {
  pb::Attr with_acl, plain, dir, link;
  ASSERT_EQ(h.Create(kRoot, "acl", 0640, &with_acl), 0);
  ASSERT_EQ(Set(with_acl.ino(), "system.posix_acl_access",
                Acl({{1, 6, 0}, {2, 6, 1000}, {4, 4, 0}, {0x10, 6, 0}, {0x20, 0, 0}})),
            0);
  ASSERT_EQ(h.Create(kRoot, "plain", 0644, &plain), 0);
  ASSERT_EQ(h.Mkdir(kRoot, "dir", 0755, &dir), 0);
  ASSERT_EQ(h.Symlink(kRoot, "link", "plain", &link), 0);
  ASSERT_EQ(Set(plain.ino(), "user.x", "y"), 0);
  pb::ReadDirRequest req;
  *req.mutable_ctx() = h.Ctx();
  req.set_ino(kRoot);
  pb::ReadDirReply reply;
  h.sm().ReadDir(req, true, &reply);
  ASSERT_EQ(reply.status().code(), 0);
  ASSERT_EQ(reply.entries_size(), 4);
  for (const pb::DirEntry& e : reply.entries()) {
    pb::Attr expected;
    ASSERT_EQ(h.GetAttr(e.ino(), &expected), 0);
    EXPECT_EQ(e.attr().SerializeAsString(), expected.SerializeAsString()) << e.name();
  }
  EXPECT_EQ(reply.entries(0).attr().access_acl(), pb::Attr::ACL_PRESENT);
  EXPECT_EQ(reply.entries(1).attr().access_acl(), pb::Attr::ACL_NONE);
  // Whether any xattr exists (ls -l's security.selinux is answered by the
  // client from it): the ACL and user.x are xattrs; the rest have none.
  EXPECT_FALSE(reply.entries(0).attr().no_xattrs());
  EXPECT_FALSE(reply.entries(1).attr().no_xattrs());
  EXPECT_TRUE(reply.entries(2).attr().no_xattrs());
  EXPECT_TRUE(reply.entries(3).attr().no_xattrs());
  ASSERT_EQ(Remove(plain.ino(), "user.x"), 0);
  pb::Attr after;
  ASSERT_EQ(h.GetAttr(plain.ino(), &after), 0);
  EXPECT_TRUE(after.no_xattrs());
}

TEST_F(XattrTest, AccessAcl_IsEnforcedForCallersOtherThanTheOwner) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0640, &f), 0);
  // u::rw- u:1000:rw- g::r-- m::rw- o::---
  const std::string acl = Acl({{1, 6, 0}, {2, 6, 1000}, {4, 4, 0}, {0x10, 6, 0}, {0x20, 0, 0}});
  ASSERT_EQ(Set(f.ino(), "system.posix_acl_access", acl), 0);
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(AccessAs(h, f.ino(), 6), 0);
  EXPECT_EQ(OpenLogged(h, f.ino(), O_RDWR), 0);
  EXPECT_EQ(Set(f.ino(), "user.note", "x"), 0);  // user.* writes need write access
  h.posix_acls = false;  // an entry from before: mode bits only (other: ---)
  EXPECT_EQ(OpenLogged(h, f.ino(), O_RDWR), C(StatusCode::kPermissionDenied));
  h.posix_acls = true;
  h.creds = testing::Creds(1001, 1001);
  EXPECT_EQ(AccessAs(h, f.ino(), 4), C(StatusCode::kPermissionDenied));
  EXPECT_EQ(OpenLogged(h, f.ino(), O_RDONLY), C(StatusCode::kPermissionDenied));
  h.creds = testing::Creds(1001, 0);  // the owning group: r--
  EXPECT_EQ(AccessAs(h, f.ino(), 4), 0);
  EXPECT_EQ(AccessAs(h, f.ino(), 2), C(StatusCode::kPermissionDenied));
}

// posix_acl_create: under a directory with a default ACL, the umask does not
// apply; the new inode's mode is cut by the ACL, it gets the default ACL cut
// by the mode as its access ACL, and a new directory inherits the default.
TEST_F(XattrTest, DefaultAcl_IsInheritedAndReplacesTheUmask) {
  pb::Attr d;
  ASSERT_EQ(h.Mkdir(kRoot, "d", 0777, &d), 0);
  const std::string dflt = Acl({{1, 7, 0}, {2, 7, 1000}, {4, 5, 0}, {0x10, 7, 0}, {0x20, 0, 0}});
  EXPECT_EQ(Set(d.ino(), "system.posix_acl_default", "junk"), C(StatusCode::kInvalidArgument));
  ASSERT_EQ(Set(d.ino(), "system.posix_acl_default", dflt), 0);
  auto create = [&](uint64_t parent, const std::string& name, uint32_t mode, uint32_t umask) {
    pb::Op op;
    auto* r = op.mutable_create();
    *r->mutable_ctx() = h.Ctx();
    r->set_parent(parent);
    r->set_name(name);
    r->set_mode(mode);
    r->set_umask(umask);
    r->set_flags(O_WRONLY | O_CREAT);
    return h.Apply(op);
  };
  pb::OpResult file = create(d.ino(), "f", 0666, 077);
  ASSERT_EQ(file.status().code(), 0);
  EXPECT_EQ(file.attr().mode(), static_cast<uint32_t>(S_IFREG | 0660));
  EXPECT_TRUE(file.inherited_acl());
  std::string stored;
  ASSERT_EQ(Get(file.attr().ino(), "system.posix_acl_access", &stored), 0);
  EXPECT_EQ(stored, Acl({{1, 6, 0}, {2, 7, 1000}, {4, 5, 0}, {0x10, 6, 0}, {0x20, 0, 0}}));
  EXPECT_EQ(Get(file.attr().ino(), "system.posix_acl_default"), C(StatusCode::kNoAttribute));

  pb::Op mkdir;
  auto* m = mkdir.mutable_mkdir();
  *m->mutable_ctx() = h.Ctx();
  m->set_parent(d.ino());
  m->set_name("sub");
  m->set_mode(0777);
  m->set_umask(022);
  pb::OpResult sub = h.Apply(mkdir);
  ASSERT_EQ(sub.status().code(), 0);
  EXPECT_EQ(sub.attr().mode(), static_cast<uint32_t>(S_IFDIR | 0770));
  ASSERT_EQ(Get(sub.attr().ino(), "system.posix_acl_default", &stored), 0);
  EXPECT_EQ(stored, dflt);
  EXPECT_EQ(Get(sub.attr().ino(), "system.posix_acl_access"), 0);

  pb::OpResult plain = create(kRoot, "plain", 0666, 022);  // no default ACL: the umask
  EXPECT_EQ(plain.attr().mode(), static_cast<uint32_t>(S_IFREG | 0644));
  EXPECT_FALSE(plain.inherited_acl());
  h.posix_acls = false;  // an entry from before: the umask, no ACL
  pb::OpResult old = create(d.ino(), "old", 0666, 077);
  EXPECT_EQ(old.attr().mode(), static_cast<uint32_t>(S_IFREG | 0600));
  EXPECT_FALSE(old.inherited_acl());
  h.posix_acls = true;
  ASSERT_EQ(Set(d.ino(), "system.posix_acl_default", std::string("\x02\0\0\0", 4)), 0);  // no entries: removed
  EXPECT_EQ(Get(d.ino(), "system.posix_acl_default"), C(StatusCode::kNoAttribute));
}

}  // namespace
}  // namespace dfs::meta
