// MetaServiceImpl: the chunk map, chunkservers, administration and the
// leader's housekeeping.
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/write_token.h"
#include "meta/service/meta_service.h"
#include "meta/service/validate.h"
#include "meta/service/write_lease.h"
#include "proto/chunk.pb.h"

namespace dfs::meta {

void MetaServiceImpl::DoGetChunkLocations(const pb::GetChunkLocationsRequest* req, pb::GetChunkLocationsReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  state_machine_->GetChunkLocations(*req, reply);
  return answer->Done(grpc::Status::OK);
}

grpc::ServerUnaryReactor* MetaServiceImpl::GetChunkLocations(CbCtx* cb, const pb::GetChunkLocationsRequest* req, pb::GetChunkLocationsReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoGetChunkLocations);
}

void MetaServiceImpl::DoLeaseChunk(const pb::LeaseChunkRequest* req, pb::LeaseChunkReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  pb::LeaseChunkOp* lease_op = op.mutable_lease_chunk();
  *lease_op->mutable_request() = *req;
  lease_op->set_lease_expires_unix_ms(clock_.UnixNs() / 1'000'000 + options_.chunk_lease_ms);
  // Apply takes the first R (the file's replication factor) of these.
  op.set_placement_key(ChunkPlacementKey(req->ino(), req->chunk_index()));
  for (uint64_t node : cluster_->PlacementForNew(op.placement_key(), kMaxPlacement)) op.add_placement(node);
  const std::string* key = &options_.cluster_key;
  const uint64_t ino = req->ino(), index = req->chunk_index();
  return Mutate(answer, std::move(op), [this, reply, key, ino, index](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.status().code() == static_cast<int>(common::StatusCode::kAborted)) {
      wanted_chunks_.Refused(ino, index, clock_.UnixNs() / 1'000'000);
    }
    if (result.status().code() != 0) return;
    *reply->mutable_lease() = result.lease();
    SignLease(*key, reply->mutable_lease());
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::LeaseChunk(CbCtx* cb, const pb::LeaseChunkRequest* req, pb::LeaseChunkReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoLeaseChunk);
}

void MetaServiceImpl::DoCommitWrite(const pb::CommitWriteRequest* req, pb::AttrReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_commit_write() = *req;
  // The commit keeps its leases busy (Apply extends them to this expiry)
  // unless another writer waits for one of its chunks.
  const int64_t now_ms = clock_.UnixNs() / 1'000'000;
  const bool wanted = std::any_of(req->chunks().begin(), req->chunks().end(), [&](const pb::ChunkCommit& c) {
    return wanted_chunks_.Wanted(req->ino(), c.chunk_index(), now_ms);
  });
  if (!wanted) op.set_lease_expires_unix_ms(now_ms + options_.chunk_lease_ms);
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_attr()) *reply->mutable_attr() = result.attr();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::CommitWrite(CbCtx* cb, const pb::CommitWriteRequest* req, pb::AttrReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoCommitWrite);
}

grpc::Status MetaServiceImpl::ReportBadReplica(Ctx* ctx, const pb::ReportBadReplicaRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  if (req->chunk_id() == 0 || req->node_id() == 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "chunk_id and node_id are required");
  }
  pb::Op op = NewOp(req->ctx());
  *op.mutable_bad_replica() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Register(Ctx* ctx, const pb::RegisterRequest* req, pb::RegisterReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  if (req->node_id() == 0 || req->address().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node_id and address are required");
  }
  pb::Op op;
  op.mutable_register_node()->mutable_request()->CopyFrom(*req);
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  reply->set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  if (result.status().code() == 0) {
    uint64_t capacity = 0, used = 0;
    for (const pb::DiskUsage& disk : req->disks()) {
      capacity += disk.capacity_bytes();
      used += disk.used_bytes();
    }
    cluster_->Registered(req->node_id(), req->address(), capacity, used, clock_.MonotonicNs(), req->full());
  }
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::ReportInventory(Ctx* ctx, grpc::ServerReader<pb::InventoryPage>* reader,
                                              pb::InventoryReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  pb::InventoryPage page;
  while (reader->Read(&page)) {
    if (page.node_id() == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node_id 0");
    pb::Op op;
    op.mutable_inventory_page()->set_node_id(page.node_id());
    *op.mutable_inventory_page()->mutable_chunks() = page.chunks();
    pb::OpResult result;
    DFS_RETURN_IF_BAD(Run(std::move(op), &result));
    if (page.last()) break;
  }
  reply->mutable_status()->set_code(0);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Heartbeat(Ctx* ctx, const pb::HeartbeatRequest* req, pb::HeartbeatReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  if (req->node_id() == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node_id 0");
  if (!cluster_->Heartbeat(*req, clock_.MonotonicNs())) {
    reply->set_reregister(true);
    return grpc::Status::OK;
  }
  if (!req->damaged().empty()) {
    pb::Op op;
    op.mutable_inventory_page()->set_node_id(req->node_id());
    for (const pb::ChunkRef& ref : req->damaged()) {
      pb::ChunkRef* damaged = op.mutable_inventory_page()->add_chunks();
      *damaged = ref;
      damaged->set_damaged(true);
    }
    pb::OpResult result;
    DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  }
  // Copies made by Replicate commands: the new replicas count from now on.
  for (const pb::ChunkRef& ref : req->replicated()) {
    pb::Op op;
    op.mutable_replica_change()->set_chunk_id(ref.chunk_id());
    op.mutable_replica_change()->set_version(ref.version());
    op.mutable_replica_change()->set_node_id(req->node_id());
    op.mutable_replica_change()->set_added(true);
    pb::OpResult result;
    DFS_RETURN_IF_BAD(Run(std::move(op), &result));
    cluster_->RepairDone(ref.chunk_id());
    if (result.status().code() == 0) {
      spdlog::info("copy done: chunk {:016x} v{} now on {:016x}", ref.chunk_id(), ref.version(), req->node_id());
    } else {
      spdlog::warn("copy of chunk {:016x} v{} on {:016x} not counted: {}", ref.chunk_id(), ref.version(),
                   req->node_id(), result.status().message());
    }
  }
  for (const pb::ChunkRef& ref : req->copy_failed()) {
    cluster_->RepairDone(ref.chunk_id());
    // Planned again onto another node: the same target (a full disk, say)
    // would fail the same way, at every housekeeping pass.
    cluster_->CopyFailed(ref.chunk_id(), req->node_id(), clock_.MonotonicNs());
    spdlog::info("copy of chunk {:016x} v{} to {:016x} failed; planned again elsewhere", ref.chunk_id(),
                 ref.version(), req->node_id());
  }
  for (pb::Command& command : cluster_->TakeCommands(req->node_id())) *reply->add_commands() = std::move(command);
  // The deletes handed out last time were executed before this heartbeat.
  std::vector<pb::ChunkRef> done = cluster_->TakeSentGarbage(req->node_id());
  if (!done.empty()) {
    pb::Op op;
    op.mutable_gc_done()->set_node_id(req->node_id());
    for (pb::ChunkRef& ref : done) *op.mutable_gc_done()->add_chunks() = std::move(ref);
    pb::OpResult result;
    DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  }
  // Delete command ids are the garbage rows' sequence numbers. SQLite reuses
  // a number once its row is gone, so chunkservers never drop a delete as a
  // repeat (deletes are idempotent); copy commands have unique ids.
  std::vector<pb::ChunkRef> sent;
  for (StateMachine::GarbageRow& row : state_machine_->Garbage(req->node_id(), options_.gc_batch)) {
    pb::Command* command = reply->add_commands();
    command->set_command_id(row.seq);
    command->mutable_delete_chunk()->set_chunk_id(row.ref.chunk_id());
    command->mutable_delete_chunk()->set_version(row.ref.version());
    sent.push_back(std::move(row.ref));
  }
  cluster_->SetSentGarbage(req->node_id(), std::move(sent));
  return grpc::Status::OK;
}

void MetaServiceImpl::FillNodeStatus(pb::NodeStatus* out, uint64_t node_id, const ClusterState::Node* live,
                                     const StateMachine::NodeRow* row) {
  out->set_node_id(node_id);
  if (row) {
    out->set_address(row->address);
    out->set_capacity_bytes(row->capacity_bytes);
    out->set_used_bytes(row->used_bytes);
    out->set_weight(row->weight);
  }
  std::string state = row ? row->state : "up";
  if (state == "up" && (live == nullptr || !live->live)) state = "dead";
  out->set_state(state);
  if (live) {
    out->set_address(live->address);
    out->set_capacity_bytes(live->capacity_bytes);
    out->set_used_bytes(live->used_bytes);
    out->set_chunk_count(live->chunk_count);
    out->set_damaged_chunks(live->damaged_count);
    out->set_full(live->live && live->full);
    const int64_t age_ns = clock_.MonotonicNs() - live->last_heartbeat_mono_ns;
    out->set_last_heartbeat_unix_ms((clock_.UnixNs() - age_ns) / 1'000'000);
  }
}

grpc::Status MetaServiceImpl::ListNodes(Ctx* ctx, const pb::ListNodesRequest*, pb::ListNodesReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  std::map<uint64_t, ClusterState::Node> live = cluster_->Nodes();
  for (const StateMachine::NodeRow& row : state_machine_->Nodes()) {
    auto it = live.find(row.node_id);
    FillNodeStatus(reply->add_nodes(), row.node_id, it == live.end() ? nullptr : &it->second, &row);
  }
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::DrainNode(Ctx* ctx, const pb::DrainNodeRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  if (req->node_id() == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node_id 0");
  pb::Op op = NewOp(req->ctx());
  *op.mutable_drain_node() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::SetNodeWeight(Ctx* ctx, const pb::SetNodeWeightRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  if (req->node_id() == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node_id 0");
  if (!(req->weight() >= 0.01 && req->weight() <= 100)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "weight must be 0.01..100");
  }
  pb::Op op = NewOp(req->ctx());
  op.mutable_node_state()->set_node_id(req->node_id());
  op.mutable_node_state()->set_weight(req->weight());  // no state: only the weight changes
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::SetReplication(Ctx* ctx, const pb::SetReplicationRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx, common::Role::kNode));
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_set_replication() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

std::vector<uint64_t> MetaServiceImpl::LiveNodes() {
  std::vector<uint64_t> draining = cluster_->Draining();
  std::vector<uint64_t> live;
  for (const auto& [id, node] : cluster_->Nodes()) {
    // A draining node's copies do not count: they are about to go.
    if (node.live && std::find(draining.begin(), draining.end(), id) == draining.end()) live.push_back(id);
  }
  return live;
}

void MetaServiceImpl::Housekeeping() {
  const int64_t now = clock_.MonotonicNs();
  const int64_t last = std::exchange(last_housekeeping_ns_, now);
  // This process did not run (its VM paused, it was stopped or starved):
  // the silence it would now hold against mounts and chunkservers may be
  // its own, and ending every session would take every mount's locks.
  // Noted at once, acted on once serving again (a paused leader's read
  // lease has run out too, so the first pass after the pause is not one).
  if (now - last > kHousekeepingGapNs) paused_ms_ = (now - last) / 1'000'000;
  disk_guard_.Refresh();
  // Only the leader keeps time for the cluster; a follower's view is empty.
  if (!Serving()) return TellLeader();
  PublishSelf();
  if (paused_ms_ != 0) {
    spdlog::warn("housekeeping did not run for {} ms (was this process paused?): mounts and chunkservers get a "
                 "fresh lease",
                 std::exchange(paused_ms_, 0));
    cluster_->Refresh(now);
  }
  cluster_->ExpireNodes(now);
  std::vector<uint64_t> draining;
  std::map<uint64_t, double> weights;
  for (const StateMachine::NodeRow& row : state_machine_->Nodes()) {
    if (row.state == "draining") draining.push_back(row.node_id);
    weights[row.node_id] = row.weight;
  }
  cluster_->SetDraining(std::move(draining));
  cluster_->SetWeights(std::move(weights));
  Reconcile();
  FreeOrphans();
  std::vector<uint64_t> expired = cluster_->ExpiredSessions(now);
  if (expired.empty()) return;
  pb::Op op;
  for (uint64_t id : expired) op.mutable_expire_sessions()->add_client_ids(id);
  common::Result<pb::OpResult> result = Submit(std::move(op));
  if (result.ok()) {
    for (uint64_t id : expired) {
      cluster_->SessionClosed(id);
      read_pins_.Closed(id);
    }
  }
}

void MetaServiceImpl::FreeOrphans() {
  constexpr size_t kOrphansPerPass = 1024;
  std::vector<uint64_t> freeable = read_pins_.Freeable(state_machine_->Orphans(kOrphansPerPass));
  if (freeable.empty()) return;
  pb::Op op;
  for (uint64_t ino : freeable) op.mutable_free_orphans()->add_inos(ino);
  if (Submit(std::move(op)).ok()) read_pins_.Freed(freeable);
}

}  // namespace dfs::meta
