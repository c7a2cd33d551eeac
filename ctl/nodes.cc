// dfsctl nodes: the chunkservers meta knows, with state and capacity.
#include <cstdio>

#include "common/grpc_status.h"
#include "ctl/ctl.h"
#include "ctl/node_view.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

int RunNodes(Context& ctx) {
  pb::ListNodesReply reply;
  grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    pb::MetaService::Stub stub(ch);
    return stub.ListNodes(&c, pb::ListNodesRequest(), &reply);
  });
  if (!s.ok()) {
    std::fprintf(stderr, "dfsctl: nodes: %s\n", common::FromGrpcStatus(s).ToString().c_str());
    return 1;
  }
  if (ctx.json) {
    std::printf("%s\n", nlohmann::json{{"chunkservers", NodesJson(reply.nodes())}}.dump(2).c_str());
  } else {
    PrintNodes(reply.nodes());
  }
  return 0;
}

}  // namespace dfs::ctl
