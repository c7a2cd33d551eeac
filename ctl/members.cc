// dfsctl add-member / remove-member: change the metadata Raft group.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/grpc_status.h"
#include "ctl/ctl.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

namespace {

int Print(Context& ctx, const char* what, const grpc::Status& s, const pb::MembershipReply& reply) {
  if (!s.ok()) {
    std::fprintf(stderr, "dfsctl: %s: %s\n", what, common::FromGrpcStatus(s).ToString().c_str());
    return 1;
  }
  if (ctx.json) {
    nlohmann::json out;
    out["members"] = nlohmann::json::array();
    for (const auto& m : reply.members()) {
      out["members"].push_back({{"id", m.id()}, {"address", m.address()}, {"raft_address", m.raft_address()},
                                {"role", m.role()}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%s: done; members now:\n", what);
  for (const auto& m : reply.members()) {
    std::printf("  %-4llu %-22s raft %-22s %s\n", static_cast<unsigned long long>(m.id()), m.address().c_str(),
                m.raft_address().c_str(), m.role().c_str());
  }
  return 0;
}

}  // namespace

int RunAddMember(Context& ctx, uint64_t id, const std::string& raft_address, const std::string& address) {
  pb::AddMemberRequest req;
  req.set_id(id);
  req.set_raft_address(raft_address);
  req.set_address(address);
  pb::MembershipReply reply;
  // LeaderChannel retries through a change of leader; an attempt that went
  // through before the retry makes the retry answer ALREADY_EXISTS.
  grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    pb::MetaService::Stub stub(ch);
    return stub.AddMember(&c, req, &reply);
  });
  return Print(ctx, "add-member", s, reply);
}

int RunRemoveMember(Context& ctx, uint64_t id) {
  pb::RemoveMemberRequest req;
  req.set_id(id);
  pb::MembershipReply reply;
  grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    pb::MetaService::Stub stub(ch);
    return stub.RemoveMember(&c, req, &reply);
  });
  return Print(ctx, "remove-member", s, reply);
}

}  // namespace dfs::ctl
