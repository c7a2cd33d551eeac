// MetaServiceImpl: the metadata group - who serves, leader hints, status and
// membership changes.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <optional>

#include "common/flags.h"
#include "common/leader_channel.h"
#include "meta/service/meta_service.h"
#include "meta/service/validate.h"

namespace dfs::meta {

namespace {
// The Op that records member `id` (members table): where clients reach it.
pb::Op SetMemberOpFor(uint64_t id, const std::string& raft_address, const std::string& rpc_address) {
  pb::Op op;
  pb::SetMemberOp* member = op.mutable_set_member();
  member->set_raft_id(id);
  member->set_raft_address(raft_address);
  member->set_rpc_address(rpc_address);
  return op;
}

grpc::Status ToGrpc(const common::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
  switch (status.code()) {
    case common::StatusCode::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
    case common::StatusCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case common::StatusCode::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case common::StatusCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    default: break;
  }
  return grpc::Status(code, std::string(status.message()));
}

}  // namespace

void MetaServiceImpl::SetRpcAddress(const std::string& address) {
  std::lock_guard<std::mutex> lock(self_mu_);
  rpc_address_ = address;
}

grpc::Status MetaServiceImpl::Admit(grpc::ServerContextBase* ctx, common::Role needed) {
  if (grpc::Status s = admission_.Admit(ctx, needed); !s.ok()) return s;
  return CheckServing(ctx);
}

grpc::Status MetaServiceImpl::CheckServing(grpc::ServerContextBase* ctx) {
  std::string leader;
  grpc::Status status = ServingStatus(&leader);
  if (!leader.empty()) ctx->AddTrailingMetadata(common::kLeaderHintKey, leader);
  return status;
}

grpc::Status MetaServiceImpl::ServingStatus(std::string* leader) {
  if (Serving()) return grpc::Status::OK;
  Group::View view = options_.group->view();
  if (view.leader_id != 0 && view.leader_id != view.self_id) {
    for (const StateMachine::MemberRow& member : state_machine_->Members()) {
      if (member.raft_id == view.leader_id && !member.rpc_address.empty()) {
        *leader = member.rpc_address;
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not the leader; the leader is " + member.rpc_address);
      }
    }
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "not the leader; the leader is member " + std::to_string(view.leader_id));
  }
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no metadata leader at the moment (election in progress?)");
}

bool MetaServiceImpl::Published(const std::string& rpc_address) {
  for (const StateMachine::MemberRow& member : state_machine_->Members()) {
    if (member.raft_id == options_.raft_id && member.rpc_address == rpc_address &&
        member.raft_address == options_.raft_address) {
      return true;
    }
  }
  return false;
}

void MetaServiceImpl::PublishSelf() {
  if (options_.group == nullptr) return;
  std::string rpc_address;
  {
    std::lock_guard<std::mutex> lock(self_mu_);
    rpc_address = rpc_address_;
  }
  if (rpc_address.empty() || Published(rpc_address)) return;
  pb::Op op = SetMemberOpFor(options_.raft_id, options_.raft_address, rpc_address);
  op.set_now_ns(clock_.UnixNs());
  proposer_->ProposeAsync(std::move(op), [](common::Result<pb::OpResult>) {});
}

void MetaServiceImpl::TellLeader() {
  if (options_.group == nullptr) return;
  const int64_t now = clock_.MonotonicNs();
  const bool report_room = now - last_room_report_ns_ >= kReportRoomNs;
  std::string rpc_address;
  {
    std::lock_guard<std::mutex> lock(self_mu_);
    rpc_address = rpc_address_;
  }
  const bool publish = !rpc_address.empty() && now - last_publish_ns_ >= kPublishRetryNs && !Published(rpc_address);
  if (!report_room && !publish) return;
  const uint64_t leader = options_.group->view().leader_id;
  std::string leader_address;
  for (const StateMachine::MemberRow& member : state_machine_->Members()) {
    if (member.raft_id == leader && leader != options_.raft_id) leader_address = member.rpc_address;
  }
  if (leader_address.empty()) return;  // the leader publishes itself first; try at a later pass
  if (leader_address != leader_channel_address_) {
    leader_channel_ = common::MakeChannel(leader_address);
    leader_channel_address_ = leader_address;
  }
  pb::MetaService::Stub stub(leader_channel_);
  std::string error;
  auto call = [&](auto method, const auto& request) {
    pb::StatusReply reply;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    grpc::Status s = (stub.*method)(&context, request, &reply);
    if (error.empty()) error = s.ok() ? reply.status().message() : s.error_message();
  };
  if (publish) {
    last_publish_ns_ = now;
    pb::PublishMemberRequest request;
    request.set_id(options_.raft_id);
    request.set_raft_address(options_.raft_address);
    request.set_address(rpc_address);
    call(&pb::MetaService::Stub::PublishMember, request);
  }
  if (report_room && disk_guard_.free_bytes() != UINT64_MAX) {
    last_room_report_ns_ = now;
    pb::ReportRoomRequest request;
    request.set_id(options_.raft_id);
    request.set_free_bytes(disk_guard_.free_bytes());
    request.set_short_of_room(disk_guard_.short_of_room());
    call(&pb::MetaService::Stub::ReportRoom, request);
  }
  if (!error.empty() && error != last_tell_error_) {  // once per reason (an older leader: every 2 s)
    spdlog::info("telling the leader ({}) this member's address or room: {}", leader_address, error);
  }
  last_tell_error_ = std::move(error);
}

std::vector<uint64_t> MetaServiceImpl::Voters() const {
  std::vector<uint64_t> out;
  if (options_.group == nullptr) return out;
  for (const Group::MemberView& member : options_.group->view().members) {
    if (member.role != "standby" && member.role != "spare") out.push_back(member.id);
  }
  return out;
}

grpc::Status MetaServiceImpl::ReportRoom(Ctx* ctx, const pb::ReportRoomRequest* req, pb::StatusReply* reply) {
  if (options_.group == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not a Raft member");
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  const std::vector<uint64_t> voters = Voters();
  if (std::find(voters.begin(), voters.end(), req->id()) == voters.end() || req->id() == options_.raft_id) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "member " + std::to_string(req->id()) + " is not a voting follower of this group");
  }
  const int64_t now = clock_.MonotonicNs();
  std::optional<MemberRooms::Room> before = member_rooms_.Of(req->id(), now);
  member_rooms_.Report(req->id(), {req->free_bytes(), req->short_of_room()}, now);
  if (req->short_of_room() && (!before || !before->short_of_room)) {
    spdlog::warn("member {} is short of room in its data folder ({} MiB free)", req->id(), req->free_bytes() >> 20);
  } else if (!req->short_of_room() && before && before->short_of_room) {
    spdlog::info("member {} has room in its data folder again", req->id());
  }
  reply->mutable_status()->set_code(0);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::PublishMember(Ctx* ctx, const pb::PublishMemberRequest* req, pb::StatusReply* reply) {
  if (options_.group == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not a Raft member");
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  if (req->id() == 0 || !common::ParseHostPort(req->address()).ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "an id and a HOST:PORT address are required");
  }
  bool known = false;
  for (const Group::MemberView& member : options_.group->view().members) {
    known |= member.id == req->id() && member.raft_address == req->raft_address();
  }
  if (!known) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "no member " + std::to_string(req->id()) + " at " + req->raft_address() + " in the group");
  }
  for (const StateMachine::MemberRow& member : state_machine_->Members()) {
    if (member.raft_id == req->id() && member.raft_address == req->raft_address() &&
        member.rpc_address == req->address()) {
      reply->mutable_status()->set_code(0);
      return grpc::Status::OK;
    }
  }
  pb::Op op = SetMemberOpFor(req->id(), req->raft_address(), req->address());
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

void MetaServiceImpl::BecameLeader() {
  // The replication factor of new files is replicated state (the root's,
  // inherited), so a flag changes it only through an Op: the leader applies
  // the one it was started with. Queued before any client's Op can pass
  // CheckServing, so every later create sees it.
  pb::Op replication;
  replication.set_now_ns(clock_.UnixNs());
  replication.mutable_set_replication()->set_ino(1);
  replication.mutable_set_replication()->set_replicas(options_.replicas);
  proposer_->ProposeAsync(std::move(replication), [](common::Result<pb::OpResult>) {});
  const int64_t now = clock_.MonotonicNs();
  for (const StateMachine::NodeRow& row : state_machine_->Nodes()) {
    if (row.state == "up" || row.state == "draining") {
      cluster_->Registered(row.node_id, row.address, row.capacity_bytes, row.used_bytes, now);
    }
  }
  read_pins_.Reset();
  member_rooms_.Clear();
  for (const StateMachine::SessionRow& session : state_machine_->Sessions()) {
    cluster_->SessionAlive(session.client_id, now, int64_t{options_.session_lease_ms} * 1'000'000);
    read_pins_.TookOver(session.client_id, session.reports_read_pins);
  }
  PublishSelf();
}

grpc::Status MetaServiceImpl::ClusterStatus(Ctx* ctx, const pb::ClusterStatusRequest*, pb::ClusterStatusReply* reply) {
  // The chunkserver half needs the leader's memory: a follower that knows
  // the leader sends the caller there. Without any leader, a member answers
  // with its own view of the group, so an operator sees why.
  if (grpc::Status s = admission_.Admit(ctx, common::Role::kClient); !s.ok()) return s;
  if (!Serving() && options_.group->view().leader_id != 0) return CheckServing(ctx);
  std::map<uint64_t, std::string> rpc_addresses;
  for (const StateMachine::MemberRow& member : state_machine_->Members()) {
    rpc_addresses[member.raft_id] = member.rpc_address;
  }
  if (options_.group == nullptr) {
    pb::MetaMember* self = reply->add_members();
    self->set_id(1);
    self->set_role("leader");
    reply->set_leader_id(1);
  } else {
    Group::View view = options_.group->view();
    for (const Group::MemberView& m : view.members) {
      pb::MetaMember* member = reply->add_members();
      member->set_id(m.id);
      member->set_raft_address(m.raft_address);
      member->set_role(m.role);
      if (auto it = rpc_addresses.find(m.id); it != rpc_addresses.end()) member->set_address(it->second);
      if (m.id == view.self_id) {
        if (disk_guard_.free_bytes() != UINT64_MAX) {
          member->set_data_known(true);
          member->set_data_free_bytes(disk_guard_.free_bytes());
          member->set_data_short_of_room(disk_guard_.short_of_room());
        }
      } else if (auto room = member_rooms_.Of(m.id, clock_.MonotonicNs())) {
        member->set_data_known(true);
        member->set_data_free_bytes(room->free_bytes);
        member->set_data_short_of_room(room->short_of_room);
      }
    }
    reply->set_leader_id(view.leader_id);
    reply->set_term(view.term);
    reply->set_commit_index(view.commit_index);
    reply->set_applied_index(view.applied_index);
  }
  ClusterCounts(reply);
  if (disk_guard_.free_bytes() != UINT64_MAX) reply->set_data_free_bytes(disk_guard_.free_bytes());
  reply->set_data_short_of_room(disk_guard_.short_of_room());
  return grpc::Status::OK;
}

bool MetaServiceImpl::ClusterCounts(pb::ClusterStatusReply* reply) {
  if (!Serving()) return false;
  std::map<uint64_t, ClusterState::Node> live = cluster_->Nodes();
  uint64_t damaged = 0;
  for (const StateMachine::NodeRow& row : state_machine_->Nodes()) {
    auto it = live.find(row.node_id);
    pb::NodeStatus* node = reply->add_nodes();
    FillNodeStatus(node, row.node_id, it == live.end() ? nullptr : &it->second, &row);
    damaged += node->damaged_chunks();
  }
  // Copies found damaged and not yet deleted; meta copies each chunk again.
  reply->set_damaged_chunks(damaged);
  StateMachine::Counts counts = state_machine_->CountAll();
  reply->set_files(counts.files);
  reply->set_chunks(counts.chunks);
  reply->set_chunks_in_meta(counts.inline_chunks);
  reply->set_bytes_in_meta(counts.inline_bytes);
  PlacementCounts placement = CountPlacement();
  reply->set_under_replicated_chunks(placement.under);
  reply->set_misplaced_chunks(placement.misplaced);
  reply->set_surplus_chunks(placement.surplus);
  size_t moves = 0;
  reply->set_repairs_in_flight(cluster_->RepairsInFlight(clock_.MonotonicNs(), &moves));
  reply->set_moves_in_flight(moves);
  return true;
}

grpc::Status MetaServiceImpl::AddMember(Ctx* ctx, const pb::AddMemberRequest* req, pb::MembershipReply* reply) {
  if (options_.group == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not a Raft member");
  if (req->id() == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "member id 0");
  if (req->raft_address().empty() || req->address().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "address and raft_address are required");
  }
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  // The address first, so the new member can be named as leader as soon
  // as it could become one.
  pb::Op op = SetMemberOpFor(req->id(), req->raft_address(), req->address());
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  auto done = std::make_shared<std::promise<common::Status>>();
  options_.group->AddMember(req->id(), req->raft_address(), [done](common::Status s) { done->set_value(s); });
  common::Status status = done->get_future().get();
  if (!status.ok()) spdlog::warn("adding member {} at {}: {}", req->id(), req->raft_address(), status.ToString());
  DFS_RETURN_IF_BAD(ToGrpc(status));
  pb::ClusterStatusReply cluster;
  ClusterStatus(ctx, nullptr, &cluster);
  *reply->mutable_members() = cluster.members();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::RemoveMember(Ctx* ctx, const pb::RemoveMemberRequest* req, pb::MembershipReply* reply) {
  if (options_.group == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not a Raft member");
  if (req->id() == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "member id 0");
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  auto done = std::make_shared<std::promise<common::Status>>();
  options_.group->RemoveMember(req->id(), [done](common::Status s) { done->set_value(s); });
  DFS_RETURN_IF_BAD(ToGrpc(done->get_future().get()));
  if (req->id() != options_.raft_id) {
    pb::Op op;
    op.mutable_set_member()->set_raft_id(req->id());
    op.mutable_set_member()->set_removed(true);
    pb::OpResult result;
    DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  }
  pb::ClusterStatusReply cluster;
  ClusterStatus(ctx, nullptr, &cluster);
  *reply->mutable_members() = cluster.members();
  return grpc::Status::OK;
}

}  // namespace dfs::meta
