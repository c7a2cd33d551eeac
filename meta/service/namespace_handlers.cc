// MetaServiceImpl: namespace, file handles, xattrs and sessions.
#include <fcntl.h>

#include <string_view>

#include "meta/service/meta_service.h"
#include "meta/service/validate.h"

namespace dfs::meta {

MetaServiceImpl::MetaServiceImpl(StateMachine* state_machine, Proposer* proposer, common::Clock& clock,
                                 ClusterState* cluster, MetaServiceOptions options)
    : state_machine_(state_machine), proposer_(proposer), clock_(clock), cluster_(cluster),
      options_(std::move(options)) {}

pb::Op MetaServiceImpl::NewOp(const pb::RequestContext& ctx) {
  pb::Op op;
  op.set_client_id(ctx.client_id());
  op.set_request_id(ctx.request_id());
  return op;
}

common::Result<pb::OpResult> MetaServiceImpl::Submit(pb::Op op) {
  op.set_now_ns(clock_.UnixNs());
  return proposer_->Propose(std::move(op)).get();
}

grpc::Status MetaServiceImpl::Run(pb::Op op, pb::OpResult* result) {
  common::Result<pb::OpResult> applied = Submit(std::move(op));
  if (!applied.ok()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(applied.status().message()));
  *result = std::move(applied).value();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Lookup(Ctx*, const pb::LookupRequest* req, pb::EntryReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->parent()));
  DFS_RETURN_IF_BAD(CheckName(req->name()));
  state_machine_->Lookup(*req, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::GetAttr(Ctx*, const pb::GetAttrRequest* req, pb::AttrReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->GetAttr(*req, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::SetAttr(Ctx*, const pb::SetAttrRequest* req, pb::AttrReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_set_attr() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Mknod(Ctx*, const pb::MknodRequest* req, pb::EntryReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->parent()));
  DFS_RETURN_IF_BAD(CheckName(req->name()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_mknod() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Create(Ctx*, const pb::CreateRequest* req, pb::CreateReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->parent()));
  DFS_RETURN_IF_BAD(CheckName(req->name()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_create() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  reply->set_handle_id(result.handle_id());
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Mkdir(Ctx*, const pb::MkdirRequest* req, pb::EntryReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->parent()));
  DFS_RETURN_IF_BAD(CheckName(req->name()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_mkdir() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Unlink(Ctx*, const pb::UnlinkRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->parent()));
  DFS_RETURN_IF_BAD(CheckName(req->name()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_unlink() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Rmdir(Ctx*, const pb::RmdirRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->parent()));
  DFS_RETURN_IF_BAD(CheckName(req->name()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_rmdir() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Symlink(Ctx*, const pb::SymlinkRequest* req, pb::EntryReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->parent()));
  DFS_RETURN_IF_BAD(CheckName(req->name()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_symlink() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Readlink(Ctx*, const pb::ReadlinkRequest* req, pb::ReadlinkReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->Readlink(*req, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Link(Ctx*, const pb::LinkRequest* req, pb::EntryReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  DFS_RETURN_IF_BAD(CheckIno(req->new_parent()));
  DFS_RETURN_IF_BAD(CheckName(req->new_name()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_link() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Rename(Ctx*, const pb::RenameRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->parent()));
  DFS_RETURN_IF_BAD(CheckIno(req->new_parent()));
  DFS_RETURN_IF_BAD(CheckName(req->name()));
  DFS_RETURN_IF_BAD(CheckName(req->new_name()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_rename() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::ReadDir(Ctx*, const pb::ReadDirRequest* req, pb::ReadDirReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->ReadDir(*req, false, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::ReadDirPlus(Ctx*, const pb::ReadDirRequest* req, pb::ReadDirReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->ReadDir(*req, true, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Open(Ctx*, const pb::OpenRequest* req, pb::OpenReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  if (req->ctx().client_id() == 0) {
    // No session: nothing to pin, so a read-only check (O_TRUNC still mutates).
    if (!(req->flags() & O_TRUNC)) {
      state_machine_->CheckOpen(*req, reply);
      return grpc::Status::OK;
    }
  }
  pb::Op op = NewOp(req->ctx());
  *op.mutable_open() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  reply->set_handle_id(result.handle_id());
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Release(Ctx*, const pb::ReleaseRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_release() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Statfs(Ctx*, const pb::StatfsRequest*, pb::StatfsReply* reply) {
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

grpc::Status MetaServiceImpl::SetXattr(Ctx*, const pb::SetXattrRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_set_xattr() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::GetXattr(Ctx*, const pb::GetXattrRequest* req, pb::GetXattrReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->GetXattr(*req, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::ListXattr(Ctx*, const pb::ListXattrRequest* req, pb::ListXattrReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->ListXattr(*req, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::RemoveXattr(Ctx*, const pb::RemoveXattrRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_remove_xattr() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Access(Ctx*, const pb::AccessRequest* req, pb::StatusReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  state_machine_->Access(*req, reply);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::Fallocate(Ctx*, const pb::FallocateRequest* req, pb::AttrReply* reply) {
  DFS_RETURN_IF_BAD(CheckIno(req->ino()));
  pb::Op op = NewOp(req->ctx());
  *op.mutable_fallocate() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  if (result.has_attr()) *reply->mutable_attr() = result.attr();
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::OpenSession(Ctx*, const pb::OpenSessionRequest* req, pb::OpenSessionReply* reply) {
  pb::Op op;
  op.mutable_open_session()->mutable_request()->CopyFrom(*req);
  op.mutable_open_session()->set_lease_ms(options_.session_lease_ms);
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  *reply->mutable_status() = result.status();
  reply->set_client_id(result.client_id());
  reply->set_lease_ms(options_.session_lease_ms);
  reply->set_root_ino(1);
  cluster_->SessionAlive(result.client_id(), clock_.MonotonicNs(), int64_t{options_.session_lease_ms} * 1'000'000);
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::KeepAlive(Ctx*, const pb::KeepAliveRequest* req, pb::StatusReply* reply) {
  if (!cluster_->KeepAlive(req->client_id(), clock_.MonotonicNs())) {
    reply->mutable_status()->set_code(static_cast<int>(common::StatusCode::kNotFound));
    reply->mutable_status()->set_message("no such session (expired): open a new one");
  }
  return grpc::Status::OK;
}

grpc::Status MetaServiceImpl::CloseSession(Ctx*, const pb::CloseSessionRequest* req, pb::StatusReply* reply) {
  if (req->ctx().client_id() == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "client_id 0");
  pb::Op op = NewOp(req->ctx());
  *op.mutable_close_session() = *req;
  pb::OpResult result;
  DFS_RETURN_IF_BAD(Run(std::move(op), &result));
  cluster_->SessionClosed(req->ctx().client_id());
  *reply->mutable_status() = result.status();
  return grpc::Status::OK;
}

}  // namespace dfs::meta
