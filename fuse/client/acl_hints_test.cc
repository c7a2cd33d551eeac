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

}  // namespace
}  // namespace dfs::fuse
