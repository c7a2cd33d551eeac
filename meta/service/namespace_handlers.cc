// MetaServiceImpl: namespace, file handles, xattrs and sessions.
#include <fcntl.h>
#include <sys/stat.h>
#include <openssl/rand.h>

#include <string_view>

#include "common/grpc_status.h"
#include "common/posix_attr.h"
#include "meta/service/meta_service.h"
#include "meta/service/validate.h"
#include "meta/service/write_lease.h"

namespace dfs::meta {

namespace {
// A session id nobody can guess: [2^32, 2^63), from OpenSSL's CSPRNG.
uint64_t RandomClientId() {
  uint64_t id = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id) != 1) return 0;  // apply falls back to the counter
  return (id & ((uint64_t{1} << 63) - 1)) | (uint64_t{1} << 32);
}

common::Admission::Options WithClusterKey(common::Admission::Options options, const std::string& key) {
  options.auth.cluster_key = key;
  return options;
}
}  // namespace

MetaServiceImpl::MetaServiceImpl(StateMachine* state_machine, Proposer* proposer, common::Clock& clock,
                                 ClusterState* cluster, MetaServiceOptions options)
    : state_machine_(state_machine), proposer_(proposer), clock_(clock), cluster_(cluster),
      options_(std::move(options)),
      admission_(WithClusterKey(options_.admission, options_.cluster_key), clock),
      // Replicate command ids: high bit set (garbage Delete ids are row
      // numbers), then this leader's start time, so ids stay unique across
      // leaders and chunkservers can drop a command they already ran.
      next_command_id_((uint64_t{1} << 63) | (static_cast<uint64_t>(clock.UnixNs()) >> 1)) {
  disk_guard_.Refresh();  // a member started on a full disk refuses from its first request
}

pb::Op MetaServiceImpl::NewOp(const pb::RequestContext& ctx) {
  pb::Op op;
  op.set_client_id(ctx.client_id());
  op.set_request_id(ctx.request_id());
  return op;
}

void MetaServiceImpl::StampRules(pb::Op& op) const {
  op.set_now_ns(clock_.UnixNs());
  op.set_defer_frees(true);
  op.set_posix_acls(true);
  op.set_movable_leases(true);
  op.set_locks_need_session(true);
  op.set_keep_ended_requests(true);
}

common::Result<pb::OpResult> MetaServiceImpl::Submit(pb::Op op) {
  StampRules(op);
  return proposer_->Propose(std::move(op)).get();
}

common::Status MetaServiceImpl::CheckRoom(const pb::Op& op) {
  common::Status room = disk_guard_.Check(op);
  if (room.ok() && options_.group != nullptr && DiskGuard::Grows(op) &&
      member_rooms_.AnyShort(clock_.MonotonicNs())) {
    // Followers' disks (member_rooms.h): the leader itself has room here.
    const std::vector<uint64_t> voters = Voters();
    const std::vector<uint64_t> short_ones = member_rooms_.Short(voters, clock_.MonotonicNs());
    if (!MajorityHasRoom(voters.size(), short_ones.size())) {
      std::string names;
      for (uint64_t id : short_ones) names += (names.empty() ? "" : ", ") + std::to_string(id);
      room = common::ResourceExhaustedError("the metadata disk is nearly full on members " + names + " of " +
                                            std::to_string(voters.size()) +
                                            " (fewer than a majority have room); free their disks");
    }
  }
  if (!room.ok() && op.request_id() != 0 && state_machine_->Answered(op.client_id(), op.request_id())) {
    return common::Status::Ok();
  }
  return room;
}

grpc::Status MetaServiceImpl::Run(pb::Op op, pb::OpResult* result) {
  if (common::Status room = CheckRoom(op); !room.ok()) return common::ToGrpcStatus(room);
  if (common::Status carried = HoistCarried(&op); !carried.ok()) return common::ToGrpcStatus(carried);
  Change change = ChangeOf(op);
  common::Result<pb::OpResult> applied = Submit(std::move(op));
  if (!applied.ok()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(applied.status().message()));
  changes_.Publish(std::move(change));
  *result = std::move(applied).value();
  return grpc::Status::OK;
}

void MetaServiceImpl::DoLookup(const pb::LookupRequest* req, pb::EntryReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->name()); !bad.ok()) return answer->Done(bad);
  state_machine_->Lookup(*req, reply);
  return answer->Done(grpc::Status::OK);
}

grpc::ServerUnaryReactor* MetaServiceImpl::Lookup(CbCtx* cb, const pb::LookupRequest* req, pb::EntryReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoLookup);
}

void MetaServiceImpl::DoGetAttr(const pb::GetAttrRequest* req, pb::AttrReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  state_machine_->GetAttr(*req, reply);
  return answer->Done(grpc::Status::OK);
}

grpc::ServerUnaryReactor* MetaServiceImpl::GetAttr(CbCtx* cb, const pb::GetAttrRequest* req, pb::AttrReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoGetAttr);
}

void MetaServiceImpl::DoSetAttr(const pb::SetAttrRequest* req, pb::AttrReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_set_attr() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_attr()) *reply->mutable_attr() = result.attr();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::SetAttr(CbCtx* cb, const pb::SetAttrRequest* req, pb::AttrReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoSetAttr);
}

void MetaServiceImpl::DoMknod(const pb::MknodRequest* req, pb::EntryReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->name()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_mknod() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_attr()) *reply->mutable_attr() = result.attr();
    if (result.has_parent_attr()) *reply->mutable_parent_attr() = result.parent_attr();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Mknod(CbCtx* cb, const pb::MknodRequest* req, pb::EntryReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoMknod);
}

void MetaServiceImpl::DoCreate(const pb::CreateRequest* req, pb::CreateReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->name()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_create() = *req;
  if (req->lease_first_chunk()) {
    // Apply takes the first R of these for chunk 0, as for LeaseChunk.
    op.set_lease_expires_unix_ms(clock_.UnixNs() / 1'000'000 + options_.chunk_lease_ms);
    op.set_placement_key(NewFilePlacementKey(req->parent(), req->name()));
    for (uint64_t node : cluster_->PlacementForNew(op.placement_key(), kMaxPlacement)) op.add_placement(node);
  }
  const std::string* key = &options_.cluster_key;
  return Mutate(answer, std::move(op), [reply, key](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_attr()) *reply->mutable_attr() = result.attr();
    if (result.has_parent_attr()) *reply->mutable_parent_attr() = result.parent_attr();
    reply->set_handle_id(result.handle_id());
    reply->set_inherited_acl(result.inherited_acl());
    if (result.status().code() == 0 && result.has_lease()) {
      *reply->mutable_lease() = result.lease();
      SignLease(*key, reply->mutable_lease());
    }
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Create(CbCtx* cb, const pb::CreateRequest* req, pb::CreateReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoCreate);
}

void MetaServiceImpl::DoMkdir(const pb::MkdirRequest* req, pb::EntryReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->name()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_mkdir() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_attr()) *reply->mutable_attr() = result.attr();
    if (result.has_parent_attr()) *reply->mutable_parent_attr() = result.parent_attr();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Mkdir(CbCtx* cb, const pb::MkdirRequest* req, pb::EntryReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoMkdir);
}

void MetaServiceImpl::DoUnlink(const pb::UnlinkRequest* req, pb::StatusReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->name()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_unlink() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_parent_attr()) *reply->mutable_parent_attr() = result.parent_attr();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Unlink(CbCtx* cb, const pb::UnlinkRequest* req, pb::StatusReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoUnlink);
}

void MetaServiceImpl::DoRmdir(const pb::RmdirRequest* req, pb::StatusReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->name()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_rmdir() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_parent_attr()) *reply->mutable_parent_attr() = result.parent_attr();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Rmdir(CbCtx* cb, const pb::RmdirRequest* req, pb::StatusReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoRmdir);
}

void MetaServiceImpl::DoSymlink(const pb::SymlinkRequest* req, pb::EntryReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->name()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_symlink() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_attr()) *reply->mutable_attr() = result.attr();
    if (result.has_parent_attr()) *reply->mutable_parent_attr() = result.parent_attr();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Symlink(CbCtx* cb, const pb::SymlinkRequest* req, pb::EntryReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoSymlink);
}

void MetaServiceImpl::DoReadlink(const pb::ReadlinkRequest* req, pb::ReadlinkReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  state_machine_->Readlink(*req, reply);
  return answer->Done(grpc::Status::OK);
}

grpc::ServerUnaryReactor* MetaServiceImpl::Readlink(CbCtx* cb, const pb::ReadlinkRequest* req, pb::ReadlinkReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoReadlink);
}

void MetaServiceImpl::DoLink(const pb::LinkRequest* req, pb::EntryReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckIno(req->new_parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->new_name()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_link() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_attr()) *reply->mutable_attr() = result.attr();
    if (result.has_parent_attr()) *reply->mutable_parent_attr() = result.parent_attr();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Link(CbCtx* cb, const pb::LinkRequest* req, pb::EntryReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoLink);
}

void MetaServiceImpl::DoRename(const pb::RenameRequest* req, pb::StatusReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckIno(req->new_parent()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->name()); !bad.ok()) return answer->Done(bad);
  if (grpc::Status bad = CheckName(req->new_name()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_rename() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_parent_attr()) *reply->mutable_parent_attr() = result.parent_attr();
    if (result.has_new_parent_attr()) *reply->mutable_new_parent_attr() = result.new_parent_attr();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Rename(CbCtx* cb, const pb::RenameRequest* req, pb::StatusReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoRename);
}

void MetaServiceImpl::DoReadDir(const pb::ReadDirRequest* req, pb::ReadDirReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  state_machine_->ReadDir(*req, false, reply);
  return answer->Done(grpc::Status::OK);
}

grpc::ServerUnaryReactor* MetaServiceImpl::ReadDir(CbCtx* cb, const pb::ReadDirRequest* req, pb::ReadDirReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoReadDir);
}

void MetaServiceImpl::DoReadDirPlus(const pb::ReadDirRequest* req, pb::ReadDirReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  state_machine_->ReadDir(*req, true, reply);
  return answer->Done(grpc::Status::OK);
}

grpc::ServerUnaryReactor* MetaServiceImpl::ReadDirPlus(CbCtx* cb, const pb::ReadDirRequest* req, pb::ReadDirReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoReadDirPlus);
}

void MetaServiceImpl::FillFirstChunk(const pb::OpenRequest& req, pb::OpenReply* reply) {
  if (!req.want_first_chunk() || reply->status().code() != 0 || !S_ISREG(reply->attr().mode())) return;
  pb::GetChunkLocationsRequest first;
  first.set_ino(req.ino());
  first.set_offset(0);
  first.set_length(1);
  state_machine_->GetChunkLocations(first, reply->mutable_first_chunk());
}

void MetaServiceImpl::DoOpen(const pb::OpenRequest* req, pb::OpenReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  const uint64_t client_id = req->ctx().client_id();
  const bool read_only = common::IsReadOnlyOpen(req->flags());
  if (client_id == 0 && !(req->flags() & O_TRUNC)) {
    // No session: nothing to pin, so a read-only check (O_TRUNC still mutates).
    state_machine_->CheckOpen(*req, reply);
    FillFirstChunk(*req, reply);
    return answer->Done(grpc::Status::OK);
  }
  // What a request carries is applied only with a logged op.
  const bool carries = req->ctx().releases_size() > 0 || req->ctx().set_attrs_size() > 0;
  if (req->lazy_read() && read_only && !carries && read_pins_.MayPin(client_id)) {
    // The client pins the file itself (read_pins.h): no log entry, unless
    // the file has no name left, which only a handle keeps from being freed.
    pb::OpenReply checked;
    state_machine_->CheckOpen(*req, &checked);
    const bool linked_file = checked.has_attr() && S_ISREG(checked.attr().mode()) && checked.attr().nlink() > 0;
    if (checked.status().code() != 0 || linked_file) {
      *reply = std::move(checked);
      FillFirstChunk(*req, reply);
      return answer->Done(grpc::Status::OK);
    }
  }
  pb::Op op = NewOp(req->ctx());
  *op.mutable_open() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
    if (result.has_attr()) *reply->mutable_attr() = result.attr();
    reply->set_handle_id(result.handle_id());
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Open(CbCtx* cb, const pb::OpenRequest* req, pb::OpenReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoOpen);
}

void MetaServiceImpl::DoRelease(const pb::ReleaseRequest* req, pb::StatusReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  pb::Op op = NewOp(req->ctx());
  *op.mutable_release() = *req;
  return Mutate(answer, std::move(op), [reply](const pb::OpResult& result) {
    *reply->mutable_status() = result.status();
  });
}

grpc::ServerUnaryReactor* MetaServiceImpl::Release(CbCtx* cb, const pb::ReleaseRequest* req, pb::StatusReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoRelease);
}

grpc::Status MetaServiceImpl::Statfs(Ctx* ctx, const pb::StatfsRequest*, pb::StatfsReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  uint64_t capacity = 0, used = 0;
  cluster_->Capacity(&capacity, &used);
  // Every byte is stored R times: report what one more replicated byte costs.
  const uint64_t r = options_.replicas == 0 ? 1 : options_.replicas;
  reply->set_total_bytes(capacity / r);
  reply->set_free_bytes(capacity > used ? (capacity - used) / r : 0);
  reply->set_avail_bytes(reply->free_bytes());
  constexpr uint64_t kInodeLimit = uint64_t{1} << 32;
  StateMachine::Counts counts = state_machine_->CountAll();
  reply->set_total_inodes(kInodeLimit);
  reply->set_free_inodes(kInodeLimit > counts.inodes ? kInodeLimit - counts.inodes : 0);
  reply->set_block_size(4096);
  reply->set_max_name_length(255);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::SetXattr(Ctx* ctx, const pb::SetXattrRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_set_xattr() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::GetXattr(Ctx* ctx, const pb::GetXattrRequest* req, pb::GetXattrReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->GetXattr(*req, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::ListXattr(Ctx* ctx, const pb::ListXattrRequest* req, pb::ListXattrReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->ListXattr(*req, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::RemoveXattr(Ctx* ctx, const pb::RemoveXattrRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_remove_xattr() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

void MetaServiceImpl::DoAccess(const pb::AccessRequest* req, pb::StatusReply* reply, Answer* answer) {
  if (grpc::Status bad = CheckIno(req->ino()); !bad.ok()) return answer->Done(bad);
  state_machine_->Access(*req, reply);
  return answer->Done(grpc::Status::OK);
}

grpc::ServerUnaryReactor* MetaServiceImpl::Access(CbCtx* cb, const pb::AccessRequest* req, pb::StatusReply* reply) {
  return Unary(cb, req, reply, &MetaServiceImpl::DoAccess);
}

grpc::Status MetaServiceImpl::Fallocate(Ctx* ctx, const pb::FallocateRequest* req, pb::AttrReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_fallocate() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::SetLock(Ctx* ctx, const pb::SetLockRequest* req, pb::AttrReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  if (req->ctx().client_id() == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "locks need a session");
  // A lock that cannot be granted now is refused from a read, without a log
  // entry: a waiting F_SETLKW polls with this (fuse/lock_waiters.h). The
  // answer is as fresh as a read here; Apply checks again before granting.
  if (req->type() != pb::LOCK_TYPE_UNLOCK) {
    common::Status test = state_machine_->TestLock(*req, req->ctx().client_id());
    if (!test.ok()) {
      common::ToFsStatus(test, reply->mutable_status());
      return grpc::Status::OK;
    }
  }
  pb::Op op = NewOp(req->ctx());
  *op.mutable_set_lock() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::GetLock(Ctx* ctx, const pb::GetLockRequest* req, pb::GetLockReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->GetLock(*req, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::OpenSession(Ctx* ctx, const pb::OpenSessionRequest* req, pb::OpenSessionReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  pb::Op op;
  op.mutable_open_session()->mutable_request()->CopyFrom(*req);
  op.mutable_open_session()->set_lease_ms(options_.session_lease_ms);
  op.mutable_open_session()->set_client_id(RandomClientId());
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  reply->set_client_id(result.client_id());
  *reply->mutable_lost_handles() = result.lost_handles();
  reply->set_lease_ms(options_.session_lease_ms);
  reply->set_root_ino(1);
  reply->set_features(pb::FEATURE_SET_ATTR_COMMIT | pb::FEATURE_RELEASES_IN_CONTEXT |
                      pb::FEATURE_SET_ATTRS_IN_CONTEXT | pb::FEATURE_LAZY_READ_OPEN | pb::FEATURE_FILE_LOCKS |
                      pb::FEATURE_RESUME_SESSION | pb::FEATURE_INLINE_DATA | pb::FEATURE_CALL_STREAMS |
                      pb::FEATURE_KILL_SUIDGID | pb::FEATURE_CHANGE_NOTICES);
  reply->set_inline_max_bytes(static_cast<uint32_t>(options_.inline_max_bytes));
  cluster_->SessionAlive(result.client_id(), clock_.MonotonicNs(), int64_t{options_.session_lease_ms} * 1'000'000);
  if (req->resume_client_id() != 0) {
    // It may read files through lazy opens from before: they pin everything
    // until its first report, as after a change of leader.
    read_pins_.TookOver(result.client_id(), req->reports_read_pins());
  } else {
    read_pins_.Opened(result.client_id(), req->reports_read_pins());
  }
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::KeepAlive(Ctx* ctx, const pb::KeepAliveRequest* req, pb::KeepAliveReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  // Read before the report is recorded: the client lists its pins only
  // after it has this reply (read_pins.h).
  reply->set_pin_epoch(read_pins_.Epoch());
  if (!cluster_->KeepAlive(req->client_id(), clock_.MonotonicNs())) {
    reply->mutable_status()->set_code(static_cast<int>(common::StatusCode::kNotFound));
    reply->mutable_status()->set_message("no such session (expired): open a new one");
    return grpc::Status::OK;
  }
  read_pins_.Reported(*req);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::CloseSession(Ctx* ctx, const pb::CloseSessionRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(Admit(ctx));
  if (req->ctx().client_id() == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "client_id 0");
  pb::Op op = NewOp(req->ctx());
  *op.mutable_close_session() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  cluster_->SessionClosed(req->ctx().client_id());
  read_pins_.Closed(req->ctx().client_id());
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

}  // namespace dfs::meta
