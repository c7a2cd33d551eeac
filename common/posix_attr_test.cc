#include "common/posix_attr.h"

#include <gtest/gtest.h>

namespace dfs::common {
namespace {

TEST(PosixAttrTest, IsReadOnlyOpen_OnlyReadAccessWithoutTruncate) {
  EXPECT_TRUE(IsReadOnlyOpen(O_RDONLY));
  EXPECT_TRUE(IsReadOnlyOpen(O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME));
  EXPECT_FALSE(IsReadOnlyOpen(O_RDONLY | O_TRUNC));  // truncates despite O_RDONLY
  EXPECT_FALSE(IsReadOnlyOpen(O_WRONLY));
  EXPECT_FALSE(IsReadOnlyOpen(O_RDWR));
  EXPECT_FALSE(IsReadOnlyOpen(O_ACCMODE));  // 3: the kernel's "ioctl-only" open, checked for both
}

}  // namespace
}  // namespace dfs::common
