// dfsctl drain NODE: move every chunk off a chunkserver before removing it.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "common/grpc_status.h"
#include "ctl/ctl.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

int RunDrain(Context& ctx, const std::string& node) {
  // Node ids print as 16 hex digits (status, nodes); accept that form.
  uint64_t id = 0;
  try {
    size_t used = 0;
    id = std::stoull(node, &used, 16);
    if (used != node.size() || id == 0) throw std::invalid_argument(node);
  } catch (const std::exception&) {
    std::fprintf(stderr, "dfsctl: drain: '%s' is not a node id (16 hex digits, as `dfsctl nodes` shows)\n",
                 node.c_str());
    return 2;
  }
  pb::DrainNodeRequest req;
  req.set_node_id(id);
  pb::StatusReply reply;
  grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    return pb::MetaService::Stub(ch).DrainNode(&c, req, &reply);
  });
  common::Status status = s.ok() ? common::FromFsStatus(reply.status()) : common::FromGrpcStatus(s);
  if (!status.ok()) {
    std::fprintf(stderr, "dfsctl: drain %s: %s\n", node.c_str(), status.ToString().c_str());
    return 1;
  }
  if (ctx.json) {
    std::printf("%s\n", nlohmann::json{{"node", node}, {"state", "draining"}}.dump(2).c_str());
  } else {
    std::printf("draining %s: its chunks are being copied to other nodes, then deleted from it; it is safe "
                "to remove once `dfsctl nodes` shows it with 0 chunks\n",
                node.c_str());
  }
  return 0;
}

}  // namespace dfs::ctl
