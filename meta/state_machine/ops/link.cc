// link: another name for a non-directory.
#include <sys/stat.h>

#include "common/result.h"
#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::StatusCode;

Status Link(OpContext& ctx, const pb::LinkRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  RETURN_IF_ERROR(ValidateName(req.new_name()));
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (!inode) return Status(StatusCode::kNotFound, "no such inode");
  ASSIGN_OR_RETURN(Inode dir, LoadDir(ctx.db, req.new_parent(), creds, kMayExec));
  if (LookupDentry(ctx.db, dir.ino, req.new_name())) return Status(StatusCode::kAlreadyExists, "name exists");
  // fs.protected_hardlinks=1 (the Linux default, may_linkat): a non-owner
  // may only link a regular file that is not setuid, not setgid-executable,
  // and that they may read and write.
  if (creds.uid != 0 && creds.uid != inode->uid) {
    const bool safe = inode->IsReg() && !(inode->mode & S_ISUID) &&
                      (inode->mode & (S_ISGID | S_IXGRP)) != (S_ISGID | S_IXGRP) &&
                      CheckAccess(ctx.db, *inode, creds, kMayRead | kMayWrite).ok();
    if (!safe) return Status(StatusCode::kNotPermitted, "protected hardlink");
  }
  RETURN_IF_ERROR(CheckAccess(ctx.db, dir, creds, kMayWrite | kMayExec));
  if (inode->IsDir()) return Status(StatusCode::kNotPermitted, "hard link to a directory");
  if (inode->nlink == 0) return Status(StatusCode::kNotFound, "inode was unlinked");
  if (inode->nlink >= kMaxLinks) return Status(StatusCode::kTooManyLinks, "too many links");
  InsertDentry(ctx.db, dir, req.new_name(), inode->ino, inode->mode & S_IFMT);
  dir.mtime_ns = dir.ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, dir);
  ++inode->nlink;
  inode->ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, *inode);
  FillAttr(ctx, *inode, result);
  FillParentAttr(dir, result->mutable_parent_attr());
  return Status::Ok();
}

}  // namespace dfs::meta::ops
