#include "ctl/meta_call.h"

#include "common/grpc_status.h"

namespace dfs::ctl {

common::Status CallMeta(Context& ctx, const StatusCall& call) {
  pb::StatusReply reply;
  grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    pb::MetaService::Stub stub(ch);
    return call(stub, c, &reply);
  });
  return s.ok() ? common::FromFsStatus(reply.status()) : common::FromGrpcStatus(s);
}

}  // namespace dfs::ctl
