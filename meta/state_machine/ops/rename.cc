// rename, with RENAME_NOREPLACE and RENAME_EXCHANGE, checked in the order of
// the kernel (do_renameat2, vfs_rename, ext4_rename) so errno matches ext4.
#include <sys/stat.h>

#include "common/result.h"
#include "meta/state_machine/ops/ops.h"
#include "meta/state_machine/schema.h"

namespace dfs::meta::ops {

using common::StatusCode;

namespace {

constexpr uint32_t kNoReplace = 1;
constexpr uint32_t kExchange = 2;

// True if directory `ancestor` is `dir` or one of its ancestors.
bool IsAncestor(Db& db, uint64_t ancestor, uint64_t dir) {
  for (uint64_t cur = dir;;) {
    if (cur == ancestor) return true;
    if (cur == kRootIno) return false;
    std::optional<Inode> inode = LoadInode(db, cur);
    if (!inode || inode->parent == cur || inode->parent == 0) return false;
    cur = inode->parent;
  }
}

}  // namespace

Status Rename(OpContext& ctx, const pb::RenameRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  const uint32_t flags = req.flags();
  if ((flags & ~(kNoReplace | kExchange)) != 0 || flags == (kNoReplace | kExchange)) {
    return Status(StatusCode::kInvalidArgument, "bad rename flags");
  }
  RETURN_IF_ERROR(ValidateName(req.name()));
  RETURN_IF_ERROR(ValidateName(req.new_name()));
  ASSIGN_OR_RETURN(Inode old_dir_value, LoadDir(ctx.db, req.parent(), creds, kMayExec));
  ASSIGN_OR_RETURN(Inode new_dir_value, LoadDir(ctx.db, req.new_parent(), creds, kMayExec));
  const bool same_dir = old_dir_value.ino == new_dir_value.ino;
  Inode& old_dir = old_dir_value;
  Inode& new_dir = same_dir ? old_dir_value : new_dir_value;

  std::optional<Dentry> src_entry = LookupDentry(ctx.db, old_dir.ino, req.name());
  if (!src_entry) return Status(StatusCode::kNotFound, "no such entry");
  std::optional<Dentry> dst_entry = LookupDentry(ctx.db, new_dir.ino, req.new_name());
  if ((flags & kExchange) && !dst_entry) return Status(StatusCode::kNotFound, "no entry to exchange with");
  if ((flags & kNoReplace) && dst_entry) return Status(StatusCode::kAlreadyExists, "target exists");

  std::optional<Inode> src = LoadInode(ctx.db, src_entry->ino);
  if (!src) return Status(StatusCode::kInternal, "dangling entry");
  std::optional<Inode> dst;
  if (dst_entry) {
    dst = LoadInode(ctx.db, dst_entry->ino);
    if (!dst) return Status(StatusCode::kInternal, "dangling entry");
  }
  // Loops: the source may not become its own descendant; the target may not
  // be an ancestor of the source.
  if (src->IsDir() && IsAncestor(ctx.db, src->ino, new_dir.ino)) {
    return Status(StatusCode::kInvalidArgument, "directory moved under itself");
  }
  if (dst && dst->IsDir() && IsAncestor(ctx.db, dst->ino, old_dir.ino)) {
    return Status((flags & kExchange) ? StatusCode::kInvalidArgument : StatusCode::kNotEmpty,
                  "target is an ancestor of the source");
  }
  if (dst && dst->ino == src->ino) return Status::Ok();  // two names of one inode: nothing to do

  // vfs_rename: may_delete(old), then may_create or may_delete(new).
  RETURN_IF_ERROR(CheckAccess(ctx.db, old_dir, creds, kMayWrite | kMayExec));
  RETURN_IF_ERROR(CheckSticky(old_dir, *src, creds));
  RETURN_IF_ERROR(CheckAccess(ctx.db, new_dir, creds, kMayWrite | kMayExec));
  if (dst) {
    RETURN_IF_ERROR(CheckSticky(new_dir, *dst, creds));
    if (!(flags & kExchange)) {
      if (src->IsDir() && !dst->IsDir()) return Status(StatusCode::kNotADirectory, "target is not a directory");
      if (!src->IsDir() && dst->IsDir()) return Status(StatusCode::kIsADirectory, "target is a directory");
    }
  }
  if (!same_dir) {
    if (src->IsDir()) RETURN_IF_ERROR(CheckAccess(ctx.db, *src, creds, kMayWrite));
    if ((flags & kExchange) && dst->IsDir()) RETURN_IF_ERROR(CheckAccess(ctx.db, *dst, creds, kMayWrite));
    if (src->IsDir() && !(dst && dst->IsDir()) && new_dir.nlink >= kMaxLinks) {
      return Status(StatusCode::kTooManyLinks, "too many subdirectories");
    }
    if ((flags & kExchange) && dst->IsDir() && !src->IsDir() && old_dir.nlink >= kMaxLinks) {
      return Status(StatusCode::kTooManyLinks, "too many subdirectories");
    }
  }
  if (dst && dst->IsDir() && !(flags & kExchange) && !DirIsEmpty(ctx.db, dst->ino)) {
    return Status(StatusCode::kNotEmpty, "target directory not empty");
  }

  const int64_t now = ctx.now_ns;
  if (flags & kExchange) {
    // Swap the two names' targets; each keeps its cookie.
    Stmt stmt = ctx.db.Prepare("UPDATE dentries SET ino=?, type=? WHERE parent=? AND name=?");
    stmt.BindU(1, dst->ino).Bind(2, int64_t{dst->mode & S_IFMT}).BindU(3, old_dir.ino).Bind(4, req.name());
    stmt.Run();
    Stmt stmt2 = ctx.db.Prepare("UPDATE dentries SET ino=?, type=? WHERE parent=? AND name=?");
    stmt2.BindU(1, src->ino).Bind(2, int64_t{src->mode & S_IFMT}).BindU(3, new_dir.ino).Bind(4, req.new_name());
    stmt2.Run();
    if (!same_dir) {
      if (src->IsDir()) { --old_dir.nlink; ++new_dir.nlink; src->parent = new_dir.ino; }
      if (dst->IsDir()) { --new_dir.nlink; ++old_dir.nlink; dst->parent = old_dir.ino; }
    }
    src->ctime_ns = dst->ctime_ns = now;
    SaveInode(ctx.db, *dst);
  } else {
    if (dst) {
      DeleteDentry(ctx.db, new_dir.ino, req.new_name());
      if (dst->IsDir()) --new_dir.nlink;
      DropName(ctx, *dst);
    }
    DeleteDentry(ctx.db, old_dir.ino, req.name());
    InsertDentry(ctx.db, new_dir, req.new_name(), src->ino, src->mode & S_IFMT);
    if (src->IsDir() && !same_dir) {
      --old_dir.nlink;
      ++new_dir.nlink;
      src->parent = new_dir.ino;
    }
    src->ctime_ns = now;
  }
  SaveInode(ctx.db, *src);
  old_dir.mtime_ns = old_dir.ctime_ns = now;
  new_dir.mtime_ns = new_dir.ctime_ns = now;
  SaveInode(ctx.db, old_dir);
  if (!same_dir) SaveInode(ctx.db, new_dir);
  FillParentAttr(old_dir, result->mutable_parent_attr());
  if (!same_dir) FillParentAttr(new_dir, result->mutable_new_parent_attr());
  return Status::Ok();
}

}  // namespace dfs::meta::ops
