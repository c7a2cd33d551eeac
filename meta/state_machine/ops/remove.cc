// unlink and rmdir. An inode whose last name goes away is freed at once
// unless a handle still holds it (then at the last Release/session end), or,
// for a regular file, when no client may still read it (FreeInode).
#include <sys/stat.h>

#include "common/result.h"
#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::StatusCode;

namespace {

// Kernel order (may_delete): lookup, write permission, sticky, type.
common::Status PrepareRemove(OpContext& ctx, const Creds& creds, uint64_t parent, const std::string& name,
                             bool want_dir, Inode* dir, Inode* victim) {
  if (name == ".") return Status(StatusCode::kInvalidArgument, "cannot remove '.'");
  if (name == "..") return Status(want_dir ? StatusCode::kNotEmpty : StatusCode::kIsADirectory, "'..'");
  RETURN_IF_ERROR(ValidateName(name));
  ASSIGN_OR_RETURN(*dir, LoadDir(ctx.db, parent, creds, kMayExec));
  std::optional<Dentry> dentry = LookupDentry(ctx.db, parent, name);
  if (!dentry) return Status(StatusCode::kNotFound, "no such entry");
  std::optional<Inode> inode = LoadInode(ctx.db, dentry->ino);
  if (!inode) return Status(StatusCode::kInternal, "dangling entry");
  *victim = std::move(*inode);
  RETURN_IF_ERROR(CheckAccess(ctx.db, *dir, creds, kMayWrite | kMayExec));
  RETURN_IF_ERROR(CheckSticky(*dir, *victim, creds));
  if (want_dir && !victim->IsDir()) return Status(StatusCode::kNotADirectory, "not a directory");
  if (!want_dir && victim->IsDir()) return Status(StatusCode::kIsADirectory, "is a directory");
  return Status::Ok();
}

}  // namespace

void DropName(OpContext& ctx, Inode& victim) {
  victim.ctime_ns = ctx.now_ns;
  if (victim.IsDir()) {
    victim.nlink = 0;
  } else if (victim.nlink > 0) {
    --victim.nlink;
  }
  if (victim.nlink == 0 && !HasHandles(ctx.db, victim.ino)) {
    FreeInode(ctx, victim);
  } else {
    SaveInode(ctx.db, victim);
  }
}

void FreeInode(OpContext& ctx, const Inode& inode) {
  if (!ctx.op.defer_frees() || !inode.IsReg()) return PurgeInode(ctx.db, inode.ino);
  SaveInode(ctx.db, inode);
  Stmt stmt = ctx.db.Prepare("INSERT OR IGNORE INTO orphans(ino) VALUES(?)");
  stmt.BindU(1, inode.ino);
  stmt.Run();
}

Status FreeOrphans(OpContext& ctx, const pb::FreeOrphansOp& req, pb::OpResult*) {
  for (uint64_t ino : req.inos()) {
    std::optional<Inode> inode = LoadInode(ctx.db, ino);
    // A handle opened since the leader listed it: the last release lists it again.
    if (inode && inode->nlink == 0 && HasHandles(ctx.db, ino)) continue;
    Stmt stmt = ctx.db.Prepare("DELETE FROM orphans WHERE ino=?");
    stmt.BindU(1, ino);
    stmt.Run();
    if (ctx.db.Changes() > 0 && inode && inode->nlink == 0) PurgeInode(ctx.db, ino);
  }
  return Status::Ok();
}

Status Unlink(OpContext& ctx, const pb::UnlinkRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  Inode dir, victim;
  RETURN_IF_ERROR(PrepareRemove(ctx, creds, req.parent(), req.name(), false, &dir, &victim));
  DeleteDentry(ctx.db, dir.ino, req.name());
  dir.mtime_ns = dir.ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, dir);
  DropName(ctx, victim);
  FillParentAttr(dir, result->mutable_parent_attr());
  return Status::Ok();
}

Status Rmdir(OpContext& ctx, const pb::RmdirRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  Inode dir, victim;
  RETURN_IF_ERROR(PrepareRemove(ctx, creds, req.parent(), req.name(), true, &dir, &victim));
  if (!DirIsEmpty(ctx.db, victim.ino)) return Status(StatusCode::kNotEmpty, "directory not empty");
  DeleteDentry(ctx.db, dir.ino, req.name());
  --dir.nlink;
  dir.mtime_ns = dir.ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, dir);
  DropName(ctx, victim);
  FillParentAttr(dir, result->mutable_parent_attr());
  return Status::Ok();
}

}  // namespace dfs::meta::ops
