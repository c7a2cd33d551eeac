#include "meta/service/carried_releases.h"

#include <gtest/gtest.h>

namespace dfs::meta {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

pb::ReleaseRequest Rel(uint64_t handle) {
  pb::ReleaseRequest r;
  r.set_ino(100 + handle);
  r.set_handle_id(handle);
  return r;
}

TEST(CarriedReleases, MovedFromTheRequestToTheOp) {
  pb::Op op;
  pb::CreateRequest* create = op.mutable_create();
  create->mutable_ctx()->set_client_id(7);
  *create->mutable_ctx()->add_releases() = Rel(1);
  *create->mutable_ctx()->add_releases() = Rel(2);
  ASSERT_TRUE(HoistReleases(&op).ok());
  ASSERT_EQ(op.releases_size(), 2);
  EXPECT_EQ(op.releases(0).handle_id(), 1u);
  EXPECT_EQ(op.releases(1).handle_id(), 2u);
  EXPECT_EQ(create->ctx().releases_size(), 0);  // held once in the entry
  EXPECT_EQ(create->ctx().client_id(), 7u);

  // The request a LeaseChunkOp wraps.
  pb::Op lease;
  *lease.mutable_lease_chunk()->mutable_request()->mutable_ctx()->add_releases() = Rel(3);
  ASSERT_TRUE(HoistReleases(&lease).ok());
  ASSERT_EQ(lease.releases_size(), 1);
  EXPECT_EQ(lease.lease_chunk().request().ctx().releases_size(), 0);
}

TEST(CarriedReleases, NoneOrNoContextIsFine) {
  pb::Op op;
  op.mutable_mkdir()->set_name("d");
  ASSERT_TRUE(HoistReleases(&op).ok());
  EXPECT_EQ(op.releases_size(), 0);
  EXPECT_FALSE(op.mkdir().has_ctx());  // not created by looking
  pb::Op internal;
  internal.mutable_gc_done();
  ASSERT_TRUE(HoistReleases(&internal).ok());
  pb::Op empty;
  ASSERT_TRUE(HoistReleases(&empty).ok());
}

TEST(CarriedReleases, TooManyAreRefusedAndNothingMoves) {
  pb::Op op;
  for (int i = 0; i <= kMaxCarriedReleases; ++i) *op.mutable_unlink()->mutable_ctx()->add_releases() = Rel(i);
  common::Status s = HoistReleases(&op);
  EXPECT_EQ(s.code(), common::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("at most 1024"), std::string_view::npos);
  EXPECT_EQ(op.releases_size(), 0);
  EXPECT_EQ(op.unlink().ctx().releases_size(), kMaxCarriedReleases + 1);
}

// Every body that holds a client request (a ctx, directly or in the request
// it wraps) gets its releases hoisted: a request type added later cannot be
// forgotten, or its releases would be dropped and the handles kept open.
TEST(CarriedReleases, EveryClientRequestInTheBodyIsCovered) {
  const google::protobuf::OneofDescriptor* body = pb::Op::descriptor()->FindOneofByName("body");
  int covered = 0;
  for (int i = 0; i < body->field_count(); ++i) {
    const FieldDescriptor* field = body->field(i);
    pb::Op op;
    Message* msg = op.GetReflection()->MutableMessage(&op, field);
    const FieldDescriptor* ctx = msg->GetDescriptor()->FindFieldByName("ctx");
    if (ctx == nullptr) {
      const FieldDescriptor* request = msg->GetDescriptor()->FindFieldByName("request");
      if (request == nullptr) continue;  // not a client request (sessions' internals, cluster state)
      msg = msg->GetReflection()->MutableMessage(msg, request);
      ctx = msg->GetDescriptor()->FindFieldByName("ctx");
      if (ctx == nullptr) continue;
    }
    ASSERT_EQ(ctx->message_type(), pb::RequestContext::descriptor()) << field->name();
    auto* rc = static_cast<pb::RequestContext*>(msg->GetReflection()->MutableMessage(msg, ctx));
    *rc->add_releases() = Rel(9);
    ASSERT_TRUE(HoistReleases(&op).ok()) << field->name();
    EXPECT_EQ(op.releases_size(), 1) << field->name();
    EXPECT_EQ(rc->releases_size(), 0) << field->name();
    ++covered;
  }
  EXPECT_GE(covered, 16);  // set_attr .. commit_write, set_replication, close_session, ...
}

}  // namespace
}  // namespace dfs::meta
