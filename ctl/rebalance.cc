// dfsctl rebalance: how far the cluster is from where the hash ring puts
// every copy (moves after a node joins or changes weight, surplus copies
// still to drop, repairs), from the leader's counts.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/grpc_status.h"
#include "ctl/ctl.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

int RunRebalance(Context& ctx) {
  pb::ClusterStatusReply reply;
  grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    return pb::MetaService::Stub(ch).ClusterStatus(&c, pb::ClusterStatusRequest(), &reply);
  });
  if (!s.ok()) {
    std::fprintf(stderr, "dfsctl: rebalance: %s\n", common::FromGrpcStatus(s).ToString().c_str());
    return 1;
  }
  const bool balanced = reply.misplaced_chunks() == 0 && reply.surplus_chunks() == 0 &&
                        reply.under_replicated_chunks() == 0 && reply.repairs_in_flight() == 0;
  if (ctx.json) {
    nlohmann::json out{{"chunks", reply.chunks()},
                       {"misplaced_chunks", reply.misplaced_chunks()},
                       {"surplus_chunks", reply.surplus_chunks()},
                       {"under_replicated_chunks", reply.under_replicated_chunks()},
                       {"moves_in_flight", reply.moves_in_flight()},
                       {"repairs_in_flight", reply.repairs_in_flight()},
                       {"balanced", balanced}};
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("chunks %llu: misplaced %llu, surplus copies %llu, under-replicated %llu; "
              "moves in flight %llu, copies in flight %llu: %s\n",
              static_cast<unsigned long long>(reply.chunks()),
              static_cast<unsigned long long>(reply.misplaced_chunks()),
              static_cast<unsigned long long>(reply.surplus_chunks()),
              static_cast<unsigned long long>(reply.under_replicated_chunks()),
              static_cast<unsigned long long>(reply.moves_in_flight()),
              static_cast<unsigned long long>(reply.repairs_in_flight()), balanced ? "balanced" : "moving");
  return 0;
}

}  // namespace dfs::ctl
