#include "common/posix_acl.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace dfs::common
