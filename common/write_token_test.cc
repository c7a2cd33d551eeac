#include "common/write_token.h"

#include <gtest/gtest.h>

#include "proto/chunk.pb.h"

namespace dfs::common {
namespace {

const std::string kKey = "0123456789abcdef-cluster-key";

pb::WriteToken Signed(uint64_t chunk, uint64_t version, int64_t expires) {
  pb::WriteToken t;
  SignWriteToken(kKey, WriteGrant{chunk, version, 7, expires}, &t);
  return t;
}

TEST(WriteTokenTest, Verify_AcceptsGrantedWrite) {
  EXPECT_TRUE(VerifyWriteToken(kKey, Signed(5, 2, 1000), 5, 2, 999).ok());
}

TEST(WriteTokenTest, Verify_RejectsEveryForgery) {
  pb::WriteToken t = Signed(5, 2, 1000);
  EXPECT_EQ(VerifyWriteToken(kKey, t, 6, 2, 0).code(), StatusCode::kPermissionDenied);   // other chunk
  EXPECT_EQ(VerifyWriteToken(kKey, t, 5, 3, 0).code(), StatusCode::kPermissionDenied);   // other version
  EXPECT_EQ(VerifyWriteToken(kKey, t, 5, 2, 1001).code(), StatusCode::kPermissionDenied);  // expired
  EXPECT_EQ(VerifyWriteToken("another-key-of-16+", t, 5, 2, 0).code(), StatusCode::kPermissionDenied);

  pb::WriteToken bumped = t;
  bumped.set_version(3);  // client edits the grant: the MAC no longer matches
  EXPECT_EQ(VerifyWriteToken(kKey, bumped, 5, 3, 0).code(), StatusCode::kPermissionDenied);
  pb::WriteToken extended = t;
  extended.set_expires_unix_ms(1'000'000);
  EXPECT_EQ(VerifyWriteToken(kKey, extended, 5, 2, 2000).code(), StatusCode::kPermissionDenied);

  pb::WriteToken empty;
  Status s = VerifyWriteToken(kKey, empty, 5, 2, 0);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("without a write token"), std::string_view::npos);
}

}  // namespace
}  // namespace dfs::common
