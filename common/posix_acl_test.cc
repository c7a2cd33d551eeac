#include "common/posix_acl.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

namespace dfs::common {
namespace {

// An ACL xattr value: version 2, then (tag, perm, id) entries.
std::string Acl(std::initializer_list<AclEntry> entries) {
  std::string v = {'\x02', '\0', '\0', '\0'};
  for (const AclEntry& e : entries) {
    v.push_back(static_cast<char>(e.tag & 0xff));
    v.push_back(static_cast<char>(e.tag >> 8));
    v.push_back(static_cast<char>(e.perm & 0xff));
    v.push_back(static_cast<char>(e.perm >> 8));
    for (int i = 0; i < 4; ++i) v.push_back(static_cast<char>((e.id >> (8 * i)) & 0xff));
  }
  return v;
}

TEST(PosixAclTest, AMinimalAclIsTheModeBits) {
  // What cp -a and setfacl send for mode 0644: u::rw- g::r-- o::r--.
  auto entries = ParseAcl(Acl({{0x01, 6, 0xffffffff}, {0x04, 4, 0xffffffff}, {0x20, 4, 0xffffffff}}));
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  AclMode mode = ModeOfAcl(*entries);
  EXPECT_EQ(mode.perm_bits, 0644u);
  EXPECT_TRUE(mode.equivalent);
}

TEST(PosixAclTest, NamedEntriesNeedAMaskWhichGivesTheGroupBits) {
  auto entries = ParseAcl(Acl({{0x01, 7, 0}, {0x02, 5, 1000}, {0x04, 4, 0}, {0x10, 1, 0}, {0x20, 0, 0}}));
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  AclMode mode = ModeOfAcl(*entries);
  EXPECT_EQ(mode.perm_bits, 0710u);
  EXPECT_FALSE(mode.equivalent);
  EXPECT_FALSE(ParseAcl(Acl({{0x01, 7, 0}, {0x02, 5, 1000}, {0x04, 4, 0}, {0x20, 0, 0}})).ok()) << "no mask";
}

TEST(PosixAclTest, EmptyMeansNoAcl_BadValuesAreRefused) {
  EXPECT_TRUE(ParseAcl("")->empty());
  EXPECT_TRUE(ParseAcl(Acl({}))->empty());
  EXPECT_FALSE(ParseAcl("1").ok());
  EXPECT_FALSE(ParseAcl(std::string("\x01\0\0\0", 4)).ok()) << "version 1";
  EXPECT_FALSE(ParseAcl(Acl({{0x04, 4, 0}, {0x01, 6, 0}, {0x20, 4, 0}})).ok()) << "out of order";
  EXPECT_FALSE(ParseAcl(Acl({{0x01, 6, 0}, {0x04, 4, 0}})).ok()) << "no other entry";
  EXPECT_FALSE(ParseAcl(Acl({{0x01, 8, 0}, {0x04, 4, 0}, {0x20, 4, 0}})).ok()) << "perm beyond rwx";
  EXPECT_FALSE(ParseAcl(Acl({{0x01, 6, 0}, {0x04, 4, 0}, {0x20, 4, 0}, {0x20, 4, 0}})).ok()) << "two others";
  EXPECT_FALSE(ParseAcl(Acl({{0x01, 6, 0}, {0x40, 4, 0}, {0x20, 4, 0}})).ok()) << "unknown tag";
}

TEST(PosixAclTest, Chmod_RewritesOwnerMaskAndOther) {
  const std::string rich = Acl({{0x01, 7, 0}, {0x02, 5, 1000}, {0x04, 4, 0}, {0x10, 5, 0}, {0x20, 0, 0}});
  EXPECT_EQ(AclWithMode(rich, 0604), Acl({{0x01, 6, 0}, {0x02, 5, 1000}, {0x04, 4, 0}, {0x10, 0, 0}, {0x20, 4, 0}}));
  const std::string plain = Acl({{0x01, 7, 0}, {0x04, 4, 0}, {0x20, 0, 0}});
  EXPECT_EQ(AclWithMode(plain, 0751), Acl({{0x01, 7, 0}, {0x04, 5, 0}, {0x20, 1, 0}}));  // no mask: the group entry
  EXPECT_EQ(AclWithMode("junk", 0777), "junk");
}

TEST(PosixAclTest, EncodeAcl_IsTheInverseOfParseAcl) {
  const std::string rich =
      Acl({{0x01, 7, 0}, {0x02, 5, 1000}, {0x04, 4, 0}, {0x08, 1, 70000}, {0x10, 5, 0}, {0x20, 0, 0}});
  auto entries = ParseAcl(rich);
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  EXPECT_EQ(EncodeAcl(*entries), rich);
  EXPECT_EQ(EncodeAcl({}), Acl({}));
}

// Owner 100, group 200; a named user 300 (rwx), a named group 400 (r-x),
// the owning group r--, mask r-x, other ---.
const std::vector<AclEntry> kRich = {
    {0x01, 6, 0}, {0x02, 7, 300}, {0x04, 4, 0}, {0x08, 5, 400}, {0x10, 5, 0}, {0x20, 0, 0}};

TEST(PosixAclTest, AclPermits_WalksEntriesAsLinuxDoes) {
  auto groups = [](std::vector<uint32_t> g) {
    return [g](uint32_t gid) { return std::find(g.begin(), g.end(), gid) != g.end(); };
  };
  constexpr uint32_t R = 4, W = 2, X = 1;
  EXPECT_TRUE(AclPermits(kRich, 100, 200, 100, groups({}), R | W));   // owner: its entry, no mask
  EXPECT_FALSE(AclPermits(kRich, 100, 200, 100, groups({}), X));
  EXPECT_TRUE(AclPermits(kRich, 100, 200, 300, groups({}), R | X));   // named user within the mask
  EXPECT_FALSE(AclPermits(kRich, 100, 200, 300, groups({}), W));      // rwx, but the mask is r-x
  EXPECT_TRUE(AclPermits(kRich, 100, 200, 500, groups({200}), R));    // owning group
  EXPECT_FALSE(AclPermits(kRich, 100, 200, 500, groups({200}), X));
  EXPECT_TRUE(AclPermits(kRich, 100, 200, 500, groups({200, 400}), R | X));  // any group entry that grants all
  EXPECT_FALSE(AclPermits(kRich, 100, 200, 500, groups({400}), W));
  // A matching group that does not grant: no fallback to other.
  const std::vector<AclEntry> other_reads = {{0x01, 6, 0}, {0x04, 0, 0}, {0x20, 4, 0}};
  EXPECT_FALSE(AclPermits(other_reads, 100, 200, 500, groups({200}), R));
  EXPECT_TRUE(AclPermits(other_reads, 100, 200, 500, groups({}), R));
  EXPECT_FALSE(AclPermits(kRich, 100, 200, 500, groups({}), R));  // other ---
}

TEST(PosixAclTest, InheritAcl_TheDefaultAclReplacesTheUmask) {
  // No default ACL: the umask, nothing stored.
  InheritedAcl plain = InheritAcl("", S_IFREG | 0666, 022);
  EXPECT_EQ(plain.mode, static_cast<uint32_t>(S_IFREG | 0644));
  EXPECT_TRUE(plain.access.empty());
  EXPECT_TRUE(plain.default_acl.empty());
  EXPECT_EQ(InheritAcl("junk", S_IFDIR | 0777, 027).mode, static_cast<uint32_t>(S_IFDIR | 0750));

  // u::rwx u:300:rwx g::r-x m::rwx o::--- ; a file asking 0666 under umask
  // 077: the umask is ignored, the mode is cut by the ACL (0660), the access
  // ACL is the default cut by the mode (the mask becomes rw-).
  const std::string dflt = EncodeAcl({{0x01, 7, 0}, {0x02, 7, 300}, {0x04, 5, 0}, {0x10, 7, 0}, {0x20, 0, 0}});
  InheritedAcl file = InheritAcl(dflt, S_IFREG | 0666, 077);
  EXPECT_EQ(file.mode, static_cast<uint32_t>(S_IFREG | 0660));
  EXPECT_EQ(file.access, EncodeAcl({{0x01, 6, 0}, {0x02, 7, 300}, {0x04, 5, 0}, {0x10, 6, 0}, {0x20, 0, 0}}));
  EXPECT_TRUE(file.default_acl.empty());
  InheritedAcl dir = InheritAcl(dflt, S_IFDIR | S_ISGID | 0777, 077);
  EXPECT_EQ(dir.mode, static_cast<uint32_t>(S_IFDIR | S_ISGID | 0770));
  EXPECT_EQ(dir.default_acl, dflt);
  EXPECT_FALSE(dir.access.empty());

  // A minimal default ACL gives the mode only (nothing more to keep).
  const std::string minimal = EncodeAcl({{0x01, 7, 0}, {0x04, 5, 0}, {0x20, 5, 0}});
  InheritedAcl min_file = InheritAcl(minimal, S_IFREG | 0666, 077);
  EXPECT_EQ(min_file.mode, static_cast<uint32_t>(S_IFREG | 0644));
  EXPECT_TRUE(min_file.access.empty());
  // Symlinks take neither the umask nor ACLs.
  InheritedAcl link = InheritAcl(dflt, S_IFLNK | 0777, 022);
  EXPECT_EQ(link.mode, static_cast<uint32_t>(S_IFLNK | 0777));
  EXPECT_TRUE(link.access.empty());
}

}  // namespace
}  // namespace dfs::common
