// dfsctl replicas PATH N [--recursive]: set the replication factor of a file
// or directory (new files below inherit it); with --recursive, of everything
// below too. The leader then copies or trims the existing chunks.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "common/grpc_status.h"
#include "ctl/ctl.h"
#include "ctl/meta_call.h"
#include "ctl/tree.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

int RunReplicas(Context& ctx, const std::string& path, uint32_t replicas, bool recursive) {
  if (replicas == 0 || replicas > 16) {
    std::fprintf(stderr, "dfsctl: replicas: N must be 1..16\n");
    return 2;
  }
  auto target = ResolvePath(ctx, path);
  if (!target.ok()) {
    std::fprintf(stderr, "dfsctl: replicas: %s\n", target.status().ToString().c_str());
    return 1;
  }
  pb::SetReplicationRequest req;
  *req.mutable_ctx() = RootContext();
  req.set_ino(target->ino);
  req.set_replicas(replicas);
  req.set_recursive(recursive);
  common::Status status = CallMeta(ctx, [&](pb::MetaService::Stub& stub, grpc::ClientContext& c, pb::StatusReply* reply) {
    return stub.SetReplication(&c, req, reply);
  });
  if (!status.ok()) {
    std::fprintf(stderr, "dfsctl: replicas %s: %s\n", path.c_str(), status.ToString().c_str());
    return 1;
  }
  if (ctx.json) {
    std::printf("%s\n",
                nlohmann::json{{"path", path}, {"replicas", replicas}, {"recursive", recursive}}.dump(2).c_str());
  } else {
    std::printf("%s%s: %u copies; existing chunks are copied or trimmed in the background "
                "(`dfsctl rebalance` shows progress)\n",
                path.c_str(), recursive ? " and everything below" : "", replicas);
  }
  return 0;
}

}  // namespace dfs::ctl
