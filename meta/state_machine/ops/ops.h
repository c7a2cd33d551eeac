// The metadata operations applied by StateMachine::Apply, one file per
// operation family in this folder. Each function runs inside the Apply
// transaction (and a savepoint of its own), reads the previous state and the
// Op only, and returns the filesystem outcome: OK after filling `result`, or
// the POSIX error (in which case Apply rolls the savepoint back, so an
// operation never leaves a partial change). SQLite failures PANIC (db.h).
//
// Determinism: `ctx.now_ns` and `ctx.op.placement()` are stamped by the
// proposer; ids come from counters (TakeCounter). Nothing here reads a clock,
// a random source or local configuration.
//
// Thread-safety: called only by the applier (one thread).
#pragma once

#include <cstdint>
#include <optional>

#include "common/result.h"
#include "common/status.h"
#include "meta/state_machine/db.h"
#include "meta/state_machine/store.h"
#include "proto/meta_entry.pb.h"

namespace dfs::meta::ops {

struct OpContext {
  Db& db;
  const pb::Op& op;
  int64_t now_ns;
};

using common::Status;

// The caller of a logged op, judged as the op's entry says (Op.posix_acls).
inline Creds CredsOf(const OpContext& ctx, const pb::RequestContext& request) {
  Creds creds = CredsFrom(request.creds());
  creds.acls = ctx.op.posix_acls();
  return creds;
}

// make_node.cc
Status Mknod(OpContext& ctx, const pb::MknodRequest& req, pb::OpResult* result);
Status Create(OpContext& ctx, const pb::CreateRequest& req, pb::OpResult* result);
Status Mkdir(OpContext& ctx, const pb::MkdirRequest& req, pb::OpResult* result);
Status Symlink(OpContext& ctx, const pb::SymlinkRequest& req, pb::OpResult* result);
// remove.cc
Status Unlink(OpContext& ctx, const pb::UnlinkRequest& req, pb::OpResult* result);
Status Rmdir(OpContext& ctx, const pb::RmdirRequest& req, pb::OpResult* result);
// Drops one name of `victim` (a directory loses all), freeing it if no name
// and no handle is left. Shared by remove.cc and rename.cc.
void DropName(OpContext& ctx, Inode& victim);
// Frees `inode`, which has no name and no handle left: at once, or - a
// regular file, when the Op is stamped defer_frees - saves it and lists it
// in `orphans` for a later FreeOrphansOp.
void FreeInode(OpContext& ctx, const Inode& inode);
Status FreeOrphans(OpContext& ctx, const pb::FreeOrphansOp& req, pb::OpResult* result);
// link.cc
Status Link(OpContext& ctx, const pb::LinkRequest& req, pb::OpResult* result);
// rename.cc
Status Rename(OpContext& ctx, const pb::RenameRequest& req, pb::OpResult* result);
// set_attr.cc
Status SetAttr(OpContext& ctx, const pb::SetAttrRequest& req, pb::OpResult* result);
// What a write by `creds` (without CAP_FSETID) does to a regular file's
// mode (file_remove_privs): setuid goes, setgid as setattr_should_drop_sgid
// says. Returns whether the mode changed. Shared with Fallocate.
bool DropSuidSgidForWrite(Inode& inode, const Creds& creds);
// xattr.cc
Status SetXattr(OpContext& ctx, const pb::SetXattrRequest& req, pb::OpResult* result);
Status RemoveXattr(OpContext& ctx, const pb::RemoveXattrRequest& req, pb::OpResult* result);
// Shared with the read path: validates an xattr name and the caller's right
// to read (`write` false) or change it. NotFound/ERANGE-like errors as Linux.
Status CheckXattrAccess(Db& db, const Inode& inode, const Creds& creds, std::string_view name, bool write);
// session.cc. Handles and locks belong to a live session, so that the
// session's end releases them: ESTALE for an unknown (ended) one, which
// must be resumed or opened anew first. Sessionless Ops (client id 0) pass.
Status CheckSession(OpContext& ctx);
// make_node.cc (open handles)
Status Open(OpContext& ctx, const pb::OpenRequest& req, pb::OpResult* result);
Status Release(OpContext& ctx, const pb::ReleaseRequest& req, pb::OpResult* result);
// Shared by Open and Create: access bits required by open(2) flags.
uint32_t OpenAccessMask(uint32_t flags);
// session.cc
Status OpenSession(OpContext& ctx, const pb::OpenSessionOp& req, pb::OpResult* result);
Status CloseSession(OpContext& ctx, const pb::CloseSessionRequest& req, pb::OpResult* result);
Status ExpireSessions(OpContext& ctx, const pb::ExpireSessionsOp& req, pb::OpResult* result);
// lock.cc
// A lock's byte range, both ends inclusive, in [0, INT64_MAX].
struct LockRange {
  int64_t first = 0;
  int64_t last = 0;
};
// What a lock request asks for (kind and type: pb::LockKind, pb::LockType).
struct LockQuery {
  uint64_t ino = 0;
  uint64_t client_id = 0;
  uint64_t owner = 0;
  uint32_t kind = 0;
  uint32_t type = 0;
  LockRange range;
};
struct HeldLock {
  uint64_t client_id = 0;
  uint64_t owner = 0;
  uint32_t type = 0;
  LockRange range;
  uint32_t pid = 0;
};
// The range a request of `kind` covers: flock locks take the whole file.
LockRange LockRangeOf(uint32_t kind, uint64_t start, uint64_t end);
// What a SetLockRequest or GetLockRequest of `client_id` asks for.
template <typename LockRequest>
LockQuery LockQueryOf(const LockRequest& req, uint64_t client_id) {
  return LockQuery{req.ino(),
                   client_id,
                   req.owner(),
                   static_cast<uint32_t>(req.kind()),
                   static_cast<uint32_t>(req.type()),
                   LockRangeOf(req.kind(), req.start(), req.end())};
}
// Another owner's lock that `q` conflicts with (the first by offset), if
// any; InvalidArgument for an unknown kind or type or a bad range. Shared
// with the read path (F_GETLK, the leader's check before proposing).
common::Result<std::optional<HeldLock>> FindConflictingLock(Db& db, const LockQuery& q);
Status SetLock(OpContext& ctx, const pb::SetLockRequest& req, pb::OpResult* result);
// member.cc
Status SetMember(OpContext& ctx, const pb::SetMemberOp& req, pb::OpResult* result);
// chunk.cc
Status LeaseChunk(OpContext& ctx, const pb::LeaseChunkOp& req, pb::OpResult* result);
// The write lease of chunk `chunk_index` of regular file `inode` for
// `handle_id` (already checked to be a writable handle of this client):
// allocates the chunk with replicas from ctx.op.placement() if it is new,
// and bumps the version unless this handle renews its own live lease.
// ResourceExhausted without placement for a new chunk; Aborted while
// another writer's lease is live. Shared by LeaseChunk and Create.
Status GrantLease(OpContext& ctx, const Inode& inode, uint64_t handle_id, uint64_t chunk_index, int64_t expires_ms,
                  pb::ChunkLease* lease);
// Forgets chunk `chunk_id` of `ino` if it was never committed (version 0)
// and its lease is this client's `handle_id` (a lease Create granted that
// the client never wrote under): no garbage, since no chunkserver got a
// byte. Does nothing otherwise. Used by Release.
void ForgetUnwrittenChunk(OpContext& ctx, uint64_t ino, uint64_t handle_id, uint64_t chunk_id);
Status CommitWrite(OpContext& ctx, const pb::CommitWriteRequest& req, pb::OpResult* result);
Status Fallocate(OpContext& ctx, const pb::FallocateRequest& req, pb::OpResult* result);
// Sets a regular file's size: shrinking drops whole chunks past the end
// (queued as garbage) and records the cut length of a partial last chunk;
// growing is sparse. Updates mtime/ctime; the caller saves the inode.
void TruncateFile(OpContext& ctx, Inode& inode, uint64_t new_size);
// node.cc
Status RegisterNode(OpContext& ctx, const pb::RegisterNodeOp& req, pb::OpResult* result);
Status NodeState(OpContext& ctx, const pb::NodeStateOp& req, pb::OpResult* result);
Status ReplicaChange(OpContext& ctx, const pb::ReplicaChangeOp& req, pb::OpResult* result);
Status BadReplica(OpContext& ctx, const pb::ReportBadReplicaRequest& req, pb::OpResult* result);
Status DrainNode(OpContext& ctx, const pb::DrainNodeRequest& req, pb::OpResult* result);
Status GcDone(OpContext& ctx, const pb::GcDoneOp& req, pb::OpResult* result);
Status InventoryPage(OpContext& ctx, const pb::InventoryPageOp& req, pb::OpResult* result);
Status SetReplication(OpContext& ctx, const pb::SetReplicationRequest& req, pb::OpResult* result);

// Fills result->attr from the stored inode (with its block count).
void FillAttr(OpContext& ctx, const Inode& inode, pb::OpResult* result);
// A directory's attributes after a mutation in it (OpResult.parent_attr).
void FillParentAttr(const Inode& dir, pb::Attr* out);

}  // namespace dfs::meta::ops
