// dfsctl status: meta members, leader, term, indexes; chunkservers; repair counts.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/grpc_status.h"
#include "ctl/ctl.h"
#include "ctl/node_view.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

int RunStatus(Context& ctx) {
  pb::ClusterStatusReply reply;
  grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    pb::MetaService::Stub stub(ch);
    return stub.ClusterStatus(&c, pb::ClusterStatusRequest(), &reply);
  });
  if (!s.ok()) {
    std::fprintf(stderr, "dfsctl: status: %s\n", common::FromGrpcStatus(s).ToString().c_str());
    return 1;
  }
  if (ctx.json) {
    nlohmann::json out;
    out["members"] = nlohmann::json::array();
    for (const auto& m : reply.members()) {
      nlohmann::json member{{"id", m.id()}, {"address", m.address()}, {"raft_address", m.raft_address()},
                            {"role", m.role()}};
      if (m.data_known()) {
        member["data_free_bytes"] = m.data_free_bytes();
        member["data_short_of_room"] = m.data_short_of_room();
      }
      out["members"].push_back(std::move(member));
    }
    out["leader_id"] = reply.leader_id();
    out["term"] = reply.term();
    out["commit_index"] = reply.commit_index();
    out["applied_index"] = reply.applied_index();
    out["chunkservers"] = NodesJson(reply.nodes());
    out["under_replicated_chunks"] = reply.under_replicated_chunks();
    out["damaged_chunks"] = reply.damaged_chunks();
    out["repairs_in_flight"] = reply.repairs_in_flight();
    out["misplaced_chunks"] = reply.misplaced_chunks();
    out["surplus_chunks"] = reply.surplus_chunks();
    out["moves_in_flight"] = reply.moves_in_flight();
    out["files"] = reply.files();
    out["chunks"] = reply.chunks();
    out["chunks_in_meta"] = reply.chunks_in_meta();
    out["bytes_in_meta"] = reply.bytes_in_meta();
    out["data_free_bytes"] = reply.data_free_bytes();
    out["data_short_of_room"] = reply.data_short_of_room();
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("meta: leader %llu, term %llu, commit %llu, applied %llu",
              static_cast<unsigned long long>(reply.leader_id()), static_cast<unsigned long long>(reply.term()),
              static_cast<unsigned long long>(reply.commit_index()),
              static_cast<unsigned long long>(reply.applied_index()));
  if (reply.data_free_bytes() != 0 || reply.data_short_of_room()) {  // an older meta does not say
    std::printf(", data folder %llu MiB free", static_cast<unsigned long long>(reply.data_free_bytes() >> 20));
  }
  std::printf("\n");
  if (reply.data_short_of_room()) {
    std::printf("  SHORT OF ROOM: the leader's data folder is under min-free-space plus meta.db; creates and "
                "writes get ENOSPC until there is room\n");
  }
  for (const auto& m : reply.members()) {
    std::printf("  %-4llu %-22s %-10s", static_cast<unsigned long long>(m.id()), m.address().c_str(),
                m.role().c_str());
    if (m.data_known()) {
      std::printf(" data folder %llu MiB free%s", static_cast<unsigned long long>(m.data_free_bytes() >> 20),
                  m.data_short_of_room() ? ", SHORT OF ROOM" : "");
    }
    std::printf("\n");
  }
  std::printf("chunkservers:\n");
  PrintNodes(reply.nodes());
  std::printf("files %llu, chunks %llu (%llu kept in meta, %llu KiB), under-replicated %llu, damaged %llu, "
              "repairs in flight %llu\n",
              static_cast<unsigned long long>(reply.files()), static_cast<unsigned long long>(reply.chunks()),
              static_cast<unsigned long long>(reply.chunks_in_meta()),
              static_cast<unsigned long long>((reply.bytes_in_meta() + 1023) >> 10),
              static_cast<unsigned long long>(reply.under_replicated_chunks()),
              static_cast<unsigned long long>(reply.damaged_chunks()),
              static_cast<unsigned long long>(reply.repairs_in_flight()));
  std::printf("rebalancing: misplaced %llu, surplus copies %llu, moves in flight %llu\n",
              static_cast<unsigned long long>(reply.misplaced_chunks()),
              static_cast<unsigned long long>(reply.surplus_chunks()),
              static_cast<unsigned long long>(reply.moves_in_flight()));
  return 0;
}

}  // namespace dfs::ctl
