#include "common/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "common/result.h"

namespace dfs::common {
namespace {

TEST(StatusTest, Default_IsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToErrno(), 0);
}

TEST(StatusTest, Error_KeepsCodeAndMessage) {
  Status s = NotFoundError("lookup 'a' in inode 1");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: lookup 'a' in inode 1");
  Status copy = s;
  EXPECT_EQ(copy, s);
  Status moved = std::move(copy);
  EXPECT_EQ(moved.message(), "lookup 'a' in inode 1");
}

TEST(StatusTest, WithContext_PrefixesMessage) {
  Status s = DataLossError("block 3").WithContext("read chunk 7");
  EXPECT_EQ(s.ToString(), "DATA_LOSS: read chunk 7: block 3");
  EXPECT_TRUE(Status::Ok().WithContext("x").ok());
}

TEST(StatusTest, ToErrno_MatchesLocalFilesystem) {
  EXPECT_EQ(Status(StatusCode::kNotFound, "").ToErrno(), ENOENT);
  EXPECT_EQ(Status(StatusCode::kAlreadyExists, "").ToErrno(), EEXIST);
  EXPECT_EQ(Status(StatusCode::kNotEmpty, "").ToErrno(), ENOTEMPTY);
  EXPECT_EQ(Status(StatusCode::kNotADirectory, "").ToErrno(), ENOTDIR);
  EXPECT_EQ(Status(StatusCode::kIsADirectory, "").ToErrno(), EISDIR);
  EXPECT_EQ(Status(StatusCode::kNameTooLong, "").ToErrno(), ENAMETOOLONG);
  EXPECT_EQ(Status(StatusCode::kPermissionDenied, "").ToErrno(), EACCES);
  EXPECT_EQ(Status(StatusCode::kNotPermitted, "").ToErrno(), EPERM);
  EXPECT_EQ(Status(StatusCode::kResourceExhausted, "").ToErrno(), ENOSPC);
  EXPECT_EQ(Status(StatusCode::kDataLoss, "").ToErrno(), EIO);
  EXPECT_EQ(Status(StatusCode::kStale, "").ToErrno(), ESTALE);
  EXPECT_EQ(Status(StatusCode::kNoAttribute, "").ToErrno(), ENODATA);
  EXPECT_EQ(Status(StatusCode::kCrossDevice, "").ToErrno(), EXDEV);
  EXPECT_EQ(Status(StatusCode::kRange, "").ToErrno(), ERANGE);
  EXPECT_EQ(Status(StatusCode::kValueTooLarge, "").ToErrno(), E2BIG);
}

TEST(StatusTest, GrpcCodes_CanonicalCodesMapToThemselves) {
  for (int code = 0; code <= 16; ++code) {
    EXPECT_EQ(StatusCodeToGrpcCode(static_cast<StatusCode>(code)), code);
  }
  EXPECT_EQ(StatusCodeToGrpcCode(StatusCode::kNotEmpty), 9);  // FAILED_PRECONDITION
}

TEST(StatusTest, IsKnownStatusCode_RejectsGaps) {
  EXPECT_TRUE(IsKnownStatusCode(5));
  EXPECT_TRUE(IsKnownStatusCode(102));
  EXPECT_FALSE(IsKnownStatusCode(17));
  EXPECT_FALSE(IsKnownStatusCode(-1));
  EXPECT_FALSE(IsKnownStatusCode(99));
}

TEST(StatusTest, ErrnoStatus_ConvertsWithContext) {
  Status s = ErrnoStatus(ENOSPC, "write /data/c1");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("write /data/c1: "), std::string::npos);
  EXPECT_NE(s.message().find("No space left"), std::string::npos);
  EXPECT_EQ(ErrnoStatus(ENOENT, "x").code(), StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus(EIO, "x").code(), StatusCode::kUnknown);
  EXPECT_FALSE(ErrnoStatus(0, "x").ok());  // a failure with errno 0 is still a failure
}

Status FailIf(bool fail) { return fail ? InvalidArgumentError("bad") : Status::Ok(); }

Status Chain(bool fail, int* reached) {
  RETURN_IF_ERROR(FailIf(fail));
  ++*reached;
  return Status::Ok();
}

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int half, Half(x));
  ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

TEST(StatusTest, ReturnIfError_StopsAtFirstError) {
  int reached = 0;
  EXPECT_TRUE(Chain(false, &reached).ok());
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(Chain(true, &reached).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(reached, 1);
}

TEST(ResultTest, AssignOrReturn_PropagatesValueAndError) {
  Result<int> ok = Quarter(12);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  Result<int> err = Quarter(6);
  EXPECT_EQ(err.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(err.value_or(-1), -1);
}

TEST(ResultTest, MoveOnlyValue_Works) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultDeathTest, ValueOfError_Aborts) {
  Result<int> r = NotFoundError("gone");
  EXPECT_DEATH((void)r.value(), "NOT_FOUND: gone");
}

TEST(ResultDeathTest, FromOkStatus_Aborts) {
  EXPECT_DEATH({ Result<int> r(Status::Ok()); (void)r; }, "OK Status without a value");
}

}  // namespace
}  // namespace dfs::common
