#include "meta/service/carried.h"

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

pb::SetAttrRequest Chmod(uint64_t ino) {
  pb::SetAttrRequest r;
  r.set_ino(ino);
  r.set_valid(pb::SET_MODE);
  r.set_mode(0600);
  r.mutable_ctx()->mutable_creds()->set_uid(0);
  return r;
}

TEST(Carried, SetAttrsMovedInOrderBesideTheReleases) {
  pb::Op op;
  pb::CreateRequest* create = op.mutable_create();
  *create->mutable_ctx()->add_set_attrs() = Chmod(5);
  pb::SetAttrRequest chown = Chmod(6);
  chown.set_valid(pb::SET_UID | pb::SET_GID | pb::SET_CTIME);
  *create->mutable_ctx()->add_set_attrs() = chown;
  *create->mutable_ctx()->add_releases() = Rel(1);
  ASSERT_TRUE(HoistCarried(&op).ok());
  ASSERT_EQ(op.set_attrs_size(), 2);
  EXPECT_EQ(op.set_attrs(0).ino(), 5u);
  EXPECT_EQ(op.set_attrs(1).ino(), 6u);
  EXPECT_EQ(op.releases_size(), 1);
  EXPECT_EQ(create->ctx().set_attrs_size(), 0);
}

// A carried change is applied without an answer: only what the client could
// predict (root's chmod/chown) may travel that way, never a truncate, a time
// or a commit, and nothing nested.
TEST(Carried, SetAttrsBeyondModeAndOwnerAreRefusedAndNothingMoves) {
  auto refused = [](const pb::SetAttrRequest& bad) {
    pb::Op op;
    *op.mutable_mkdir()->mutable_ctx()->add_set_attrs() = Chmod(1);
    *op.mutable_mkdir()->mutable_ctx()->add_set_attrs() = bad;
    *op.mutable_mkdir()->mutable_ctx()->add_releases() = Rel(1);
    common::Status s = HoistCarried(&op);
    return s.code() == common::StatusCode::kInvalidArgument && op.set_attrs_size() == 0 &&
           op.releases_size() == 0 && op.mkdir().ctx().set_attrs_size() == 2;
  };
  pb::SetAttrRequest truncate = Chmod(2);
  truncate.set_valid(pb::SET_MODE | pb::SET_SIZE);
  EXPECT_TRUE(refused(truncate));
  pb::SetAttrRequest times = Chmod(2);
  times.set_valid(pb::SET_MTIME);
  EXPECT_TRUE(refused(times));
  pb::SetAttrRequest commit = Chmod(2);
  commit.mutable_commit()->set_ino(2);
  EXPECT_TRUE(refused(commit));
  pb::SetAttrRequest nested = Chmod(2);
  *nested.mutable_ctx()->add_releases() = Rel(3);
  EXPECT_TRUE(refused(nested));
  pb::SetAttrRequest nested_set = Chmod(2);
  *nested_set.mutable_ctx()->add_set_attrs() = Chmod(3);
  EXPECT_TRUE(refused(nested_set));

  pb::Op many;
  for (int i = 0; i <= kMaxCarriedSetAttrs; ++i) *many.mutable_unlink()->mutable_ctx()->add_set_attrs() = Chmod(i);
  EXPECT_EQ(HoistCarried(&many).code(), common::StatusCode::kInvalidArgument);
  EXPECT_EQ(many.set_attrs_size(), 0);
}

TEST(Carried, MovedFromTheRequestToTheOp) {
  pb::Op op;
  pb::CreateRequest* create = op.mutable_create();
  create->mutable_ctx()->set_client_id(7);
  *create->mutable_ctx()->add_releases() = Rel(1);
  *create->mutable_ctx()->add_releases() = Rel(2);
  ASSERT_TRUE(HoistCarried(&op).ok());
  ASSERT_EQ(op.releases_size(), 2);
  EXPECT_EQ(op.releases(0).handle_id(), 1u);
  EXPECT_EQ(op.releases(1).handle_id(), 2u);
  EXPECT_EQ(create->ctx().releases_size(), 0);  // held once in the entry
  EXPECT_EQ(create->ctx().client_id(), 7u);

  // The request a LeaseChunkOp wraps.
  pb::Op lease;
  *lease.mutable_lease_chunk()->mutable_request()->mutable_ctx()->add_releases() = Rel(3);
  ASSERT_TRUE(HoistCarried(&lease).ok());
  ASSERT_EQ(lease.releases_size(), 1);
  EXPECT_EQ(lease.lease_chunk().request().ctx().releases_size(), 0);
}

TEST(Carried, NoneOrNoContextIsFine) {
  pb::Op op;
  op.mutable_mkdir()->set_name("d");
  ASSERT_TRUE(HoistCarried(&op).ok());
  EXPECT_EQ(op.releases_size(), 0);
  EXPECT_FALSE(op.mkdir().has_ctx());  // not created by looking
  pb::Op internal;
  internal.mutable_gc_done();
  ASSERT_TRUE(HoistCarried(&internal).ok());
  pb::Op empty;
  ASSERT_TRUE(HoistCarried(&empty).ok());
}

TEST(Carried, TooManyAreRefusedAndNothingMoves) {
  pb::Op op;
  for (int i = 0; i <= kMaxCarriedReleases; ++i) *op.mutable_unlink()->mutable_ctx()->add_releases() = Rel(i);
  common::Status s = HoistCarried(&op);
  EXPECT_EQ(s.code(), common::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("at most 1024"), std::string_view::npos);
  EXPECT_EQ(op.releases_size(), 0);
  EXPECT_EQ(op.unlink().ctx().releases_size(), kMaxCarriedReleases + 1);
}

// Every body that holds a client request (a ctx, directly or in the request
// it wraps) gets its releases hoisted: a request type added later cannot be
// forgotten, or its releases would be dropped and the handles kept open.
TEST(Carried, EveryClientRequestInTheBodyIsCovered) {
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
    *rc->add_set_attrs() = Chmod(9);
    ASSERT_TRUE(HoistCarried(&op).ok()) << field->name();
    EXPECT_EQ(op.releases_size(), 1) << field->name();
    EXPECT_EQ(op.set_attrs_size(), 1) << field->name();
    EXPECT_EQ(rc->releases_size(), 0) << field->name();
    EXPECT_EQ(rc->set_attrs_size(), 0) << field->name();
    ++covered;
  }
  EXPECT_GE(covered, 16);  // set_attr .. commit_write, set_replication, close_session, ...
}

}  // namespace
}  // namespace dfs::meta
