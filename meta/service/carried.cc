#include "meta/service/carried.h"

#include <string>

namespace dfs::meta {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The field `name` of `msg` if it is a set message field, else null.
Message* SetMessageField(Message* msg, const char* name) {
  const FieldDescriptor* field = msg->GetDescriptor()->FindFieldByName(name);
  if (field == nullptr || field->is_repeated() || field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
      !msg->GetReflection()->HasField(*msg, field)) {
    return nullptr;
  }
  return msg->GetReflection()->MutableMessage(msg, field);
}

// By reflection, so a request type added to Op's body later is covered
// without a list to forget it in (carried_test.cc checks them all).
pb::RequestContext* BodyContext(pb::Op* op) {
  // Looked up once: this runs for every mutation.
  static const google::protobuf::OneofDescriptor* const kBody = pb::Op::descriptor()->FindOneofByName("body");
  const FieldDescriptor* body = op->GetReflection()->GetOneofFieldDescriptor(*op, kBody);
  if (body == nullptr || body->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return nullptr;
  Message* msg = op->GetReflection()->MutableMessage(op, body);
  for (int depth = 0; msg != nullptr && depth < 2; ++depth) {
    if (Message* ctx = SetMessageField(msg, "ctx"); ctx != nullptr) {
      return ctx->GetDescriptor() == pb::RequestContext::descriptor() ? static_cast<pb::RequestContext*>(ctx)
                                                                      : nullptr;
    }
    msg = SetMessageField(msg, "request");
  }
  return nullptr;
}

}  // namespace

common::Status HoistCarried(pb::Op* op) {
  pb::RequestContext* ctx = BodyContext(op);
  if (ctx == nullptr || (ctx->releases_size() == 0 && ctx->set_attrs_size() == 0)) return common::Status::Ok();
  if (ctx->releases_size() > kMaxCarriedReleases) {
    return common::InvalidArgumentError("a request carries " + std::to_string(ctx->releases_size()) +
                                        " releases; at most " + std::to_string(kMaxCarriedReleases) +
                                        " are accepted");
  }
  if (ctx->set_attrs_size() > kMaxCarriedSetAttrs) {
    return common::InvalidArgumentError("a request carries " + std::to_string(ctx->set_attrs_size()) +
                                        " attribute changes; at most " + std::to_string(kMaxCarriedSetAttrs) +
                                        " are accepted");
  }
  for (const pb::SetAttrRequest& set : ctx->set_attrs()) {
    if ((set.valid() & ~kCarriableSetAttrBits) != 0 || set.has_commit() || set.ctx().releases_size() != 0 ||
        set.ctx().set_attrs_size() != 0) {
      return common::InvalidArgumentError("a carried attribute change of inode " + std::to_string(set.ino()) +
                                          " may only set mode, owner, group and ctime");
    }
  }
  for (pb::SetAttrRequest& set : *ctx->mutable_set_attrs()) *op->add_set_attrs() = std::move(set);
  for (pb::ReleaseRequest& release : *ctx->mutable_releases()) *op->add_releases() = std::move(release);
  ctx->clear_set_attrs();
  ctx->clear_releases();
  return common::Status::Ok();
}

}  // namespace dfs::meta
