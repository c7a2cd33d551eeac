#include "fuse/client/acl_hints.h"

#include <gtest/gtest.h>

#include "common/clock.h"

namespace dfs::fuse {
namespace {

pb::Attr AttrOf(uint64_t ino, pb::Attr::AclState acl) {
  pb::Attr attr;
  attr.set_ino(ino);
  attr.set_access_acl(acl);
  return attr;
}

TEST(AclHintsTest, NoneHoldsForTheTimeoutPresentOrForgetEndsIt) {
  common::ManualClock clock;
  AclHints hints(1000, clock);
  hints.Learn(AttrOf(5, pb::Attr::ACL_NONE));
  hints.Learn(AttrOf(6, pb::Attr::ACL_UNKNOWN));  // a mutation's reply: says nothing
  hints.Learn(AttrOf(7, pb::Attr::ACL_NONE));
  EXPECT_TRUE(hints.KnownNone(5));
  EXPECT_FALSE(hints.KnownNone(6));
  clock.Advance(999'000'000);
  EXPECT_TRUE(hints.KnownNone(5));
  clock.Advance(1'000'000);
  EXPECT_FALSE(hints.KnownNone(5));  // as old as the kernel's attributes may be

  hints.Learn(AttrOf(5, pb::Attr::ACL_NONE));
  hints.Learn(AttrOf(5, pb::Attr::ACL_UNKNOWN));
  EXPECT_TRUE(hints.KnownNone(5)) << "an unknown is no news";
  hints.Learn(AttrOf(5, pb::Attr::ACL_PRESENT));
  EXPECT_FALSE(hints.KnownNone(5));
  hints.Learn(AttrOf(8, pb::Attr::ACL_NONE));
  hints.Forget(8);
  EXPECT_FALSE(hints.KnownNone(8));

  AclHints off(0, clock);
  off.Learn(AttrOf(5, pb::Attr::ACL_NONE));
  EXPECT_FALSE(off.KnownNone(5));
}

TEST(AclHintsTest, NoXattrsAtAllIsKnownOnlyWhenMetaSaysSoAlongsideTheAcl) {
  common::ManualClock clock;
  AclHints hints(1000, clock);
  pb::Attr none = AttrOf(5, pb::Attr::ACL_NONE);
  none.set_no_xattrs(true);
  hints.Learn(none);
  hints.Learn(AttrOf(6, pb::Attr::ACL_NONE));  // no ACL, but some other xattr
  pb::Attr unsaid = AttrOf(7, pb::Attr::ACL_UNKNOWN);
  unsaid.set_no_xattrs(true);  // a reply that says nothing of the ACL says nothing of xattrs
  hints.Learn(unsaid);
  EXPECT_TRUE(hints.KnownNoXattrs(5));
  EXPECT_TRUE(hints.KnownNone(5));
  EXPECT_FALSE(hints.KnownNoXattrs(6));
  EXPECT_TRUE(hints.KnownNone(6));
  EXPECT_FALSE(hints.KnownNoXattrs(7));

  hints.Learn(AttrOf(5, pb::Attr::ACL_NONE));  // meta's newer word: it has one now
  EXPECT_FALSE(hints.KnownNoXattrs(5));
  hints.Learn(none);
  hints.Forget(5);  // this mount set one
  EXPECT_FALSE(hints.KnownNoXattrs(5));
  hints.Learn(none);
  clock.Advance(1'000'000'000);
  EXPECT_FALSE(hints.KnownNoXattrs(5)) << "as old as the kernel's attributes may be";
}

}  // namespace
}  // namespace dfs::fuse
