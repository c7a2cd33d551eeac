// dfsctl drain NODE: move every chunk off a chunkserver before removing it;
// dfsctl weight NODE W: change its share of the ring.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "common/grpc_status.h"
#include "ctl/ctl.h"
#include "ctl/meta_call.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

namespace {
// Node ids print as 16 hex digits (status, nodes); accept that form. 0 if not.
uint64_t ParseNodeId(const char* command, const std::string& node) {
  try {
    size_t used = 0;
    uint64_t id = std::stoull(node, &used, 16);
    if (used == node.size() && id != 0) return id;
  } catch (const std::exception&) {
  }
  std::fprintf(stderr, "dfsctl: %s: '%s' is not a node id (16 hex digits, as `dfsctl nodes` shows)\n", command,
               node.c_str());
  return 0;
}
}  // namespace

int RunWeight(Context& ctx, const std::string& node, double weight) {
  const uint64_t id = ParseNodeId("weight", node);
  if (id == 0) return 2;
  if (!(weight >= 0.01 && weight <= 100)) {
    std::fprintf(stderr, "dfsctl: weight: W must be 0.01..100\n");
    return 2;
  }
  pb::SetNodeWeightRequest req;
  req.set_node_id(id);
  req.set_weight(weight);
  common::Status status = CallMeta(ctx, [&](pb::MetaService::Stub& stub, grpc::ClientContext& c, pb::StatusReply* reply) {
    return stub.SetNodeWeight(&c, req, reply);
  });
  if (!status.ok()) {
    std::fprintf(stderr, "dfsctl: weight %s: %s\n", node.c_str(), status.ToString().c_str());
    return 1;
  }
  if (ctx.json) {
    std::printf("%s\n", nlohmann::json{{"node", node}, {"weight", weight}}.dump(2).c_str());
  } else {
    std::printf("%s: weight %g; chunks move to match (`dfsctl rebalance` shows progress)\n", node.c_str(), weight);
  }
  return 0;
}

int RunDrain(Context& ctx, const std::string& node) {
  const uint64_t id = ParseNodeId("drain", node);
  if (id == 0) return 2;
  pb::DrainNodeRequest req;
  req.set_node_id(id);
  common::Status status = CallMeta(ctx, [&](pb::MetaService::Stub& stub, grpc::ClientContext& c, pb::StatusReply* reply) {
    return stub.DrainNode(&c, req, reply);
  });
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
