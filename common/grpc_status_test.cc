#include "common/grpc_status.h"

#include <gtest/gtest.h>

namespace dfs::common {
namespace {

TEST(GrpcStatusTest, ToGrpcStatus_KeepsCanonicalCodes) {
  grpc::Status g = ToGrpcStatus(UnavailableError("no quorum"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(g.error_message(), "UNAVAILABLE: no quorum");
  EXPECT_TRUE(ToGrpcStatus(Status::Ok()).ok());
  EXPECT_EQ(ToGrpcStatus(Status(StatusCode::kNotEmpty, "d")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST(GrpcStatusTest, FromGrpcStatus_RoundTripsCodes) {
  Status s = FromGrpcStatus(grpc::Status(grpc::StatusCode::DATA_LOSS, "block 3"));
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "block 3");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, FsStatus_RoundTripsPosixCodes) {
  pb::FsStatus wire;
  ToFsStatus(Status(StatusCode::kNotEmpty, "dir 7"), &wire);
  Status back = FromFsStatus(wire);
  EXPECT_EQ(back.code(), StatusCode::kNotEmpty);
  EXPECT_EQ(back.message(), "dir 7");
  EXPECT_EQ(back.ToErrno(), ENOTEMPTY);
  ToFsStatus(Status::Ok(), &wire);
  EXPECT_TRUE(FromFsStatus(wire).ok());
}

TEST(GrpcStatusTest, FromFsStatus_UnknownCodeIsAnError) {
  pb::FsStatus wire;
  wire.set_code(4242);
  wire.set_message("from the future");
  Status s = FromFsStatus(wire);
  EXPECT_EQ(s.code(), StatusCode::kUnknown);
  EXPECT_NE(s.message().find("4242"), std::string_view::npos);
}

TEST(GrpcStatusTest, HintOf_ReadsTrailersOrStatusDetails) {
  grpc::ClientContext ctx;  // no call made: no trailing metadata
  grpc::Status hinted = WithHint(grpc::Status(grpc::StatusCode::UNAVAILABLE, "not the leader"), kLeaderHintKey,
                                 "10.0.0.2:7400");
  EXPECT_EQ(hinted.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(hinted.error_message(), "not the leader");
  EXPECT_EQ(HintOf(ctx, hinted, kLeaderHintKey).value_or(""), "10.0.0.2:7400");
  EXPECT_FALSE(HintOf(ctx, hinted, "dfs-retry-after-ms").has_value());
  EXPECT_FALSE(HintOf(ctx, grpc::Status(grpc::StatusCode::UNAVAILABLE, "x"), kLeaderHintKey).has_value());
  // A key that only starts like another is not it.
  EXPECT_FALSE(HintOf(ctx, WithHint(grpc::Status::OK, "dfs-leaderx", "a"), kLeaderHintKey).has_value());
}

}  // namespace
}  // namespace dfs::common
