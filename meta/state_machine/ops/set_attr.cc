// setattr: chmod, chown, truncate, utimens, with the POSIX ownership rules
// (notify_change / setattr_prepare / chown_common) and ctime as ext4 keeps it.
// suid/sgid clearing follows Linux 6.x (setattr_should_drop_sgid): setgid
// goes when group-executable, or when the caller is neither in the file's
// group nor root.
#include <fcntl.h>
#include <sys/stat.h>

#include "common/chunk_geometry.h"
#include "common/posix_acl.h"
#include "common/result.h"
#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::StatusCode;

namespace {

// setattr_should_drop_sgid: a real setgid (group-executable) always goes;
// a setgid without group exec goes unless the caller is in the group or root.
bool ShouldDropSgid(const Inode& inode, const Creds& creds) {
  if (!(inode.mode & S_ISGID)) return false;
  if (inode.mode & S_IXGRP) return true;
  return creds.uid != 0 && !creds.InGroup(inode.gid);
}

bool HandleAllowsWrite(OpContext& ctx, uint64_t handle_id, uint64_t ino) {
  if (handle_id == 0) return false;
  Stmt stmt = ctx.db.Prepare("SELECT flags FROM handles WHERE handle_id=? AND ino=?");
  stmt.BindU(1, handle_id).BindU(2, ino);
  return stmt.Step() && (OpenAccessMask(static_cast<uint32_t>(stmt.Int(0))) & kMayWrite);
}

}  // namespace

bool DropSuidSgidForWrite(Inode& inode, const Creds& creds) {
  if (!inode.IsReg()) return false;
  const uint32_t before = inode.mode;
  if (ShouldDropSgid(inode, creds)) inode.mode &= ~S_ISGID;
  inode.mode &= ~S_ISUID;
  return inode.mode != before;
}

Status SetAttr(OpContext& ctx, const pb::SetAttrRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  if (req.has_commit()) {
    // The writes came first on the client: commit them, then set. A refusal
    // below rolls both back (the Op's savepoint); the client then commits alone.
    if (req.commit().ino() != req.ino()) return Status(StatusCode::kInvalidArgument, "commit of another inode");
    RETURN_IF_ERROR(CommitWrite(ctx, req.commit(), result));
  }
  std::optional<Inode> found = LoadInode(ctx.db, req.ino());
  if (!found) return Status(StatusCode::kNotFound, "no such inode");
  Inode inode = std::move(*found);
  const uint32_t valid = req.valid();
  const bool root = creds.uid == 0;
  bool changed = false;

  // Validate everything first (setattr_prepare), then change.
  const bool set_uid = (valid & pb::SET_UID) && req.uid() != inode.uid;
  const bool set_gid = (valid & pb::SET_GID) && req.gid() != inode.gid;
  if (valid & pb::SET_UID) {
    if (!root && (req.uid() != inode.uid || creds.uid != inode.uid)) {
      return Status(StatusCode::kNotPermitted, "only root may change the owner");
    }
  }
  if (valid & pb::SET_GID) {
    if (!root && (creds.uid != inode.uid || (req.gid() != inode.gid && !creds.InGroup(req.gid())))) {
      return Status(StatusCode::kNotPermitted, "may not change the group");
    }
  }
  if (valid & pb::SET_MODE) RETURN_IF_ERROR(CheckOwner(inode, creds));
  const uint32_t explicit_times = pb::SET_ATIME | pb::SET_MTIME | pb::SET_CTIME;
  const uint32_t now_times = pb::SET_ATIME_NOW | pb::SET_MTIME_NOW;
  if (valid & explicit_times) {
    RETURN_IF_ERROR(CheckOwner(inode, creds));
  } else if (valid & now_times) {
    if (!root && creds.uid != inode.uid) RETURN_IF_ERROR(CheckAccess(ctx.db, inode, creds, kMayWrite));
  }
  if (valid & pb::SET_KILL_SUIDGID) {
    if (!HandleAllowsWrite(ctx, req.handle_id(), inode.ino)) RETURN_IF_ERROR(CheckAccess(ctx.db, inode, creds, kMayWrite));
  }
  if (valid & pb::SET_SIZE) {
    if (inode.IsDir()) return Status(StatusCode::kIsADirectory, "truncate of a directory");
    if (!inode.IsReg()) return Status(StatusCode::kInvalidArgument, "truncate of a special file");
    if (req.size() > common::kMaxFileSizeBytes) return Status(StatusCode::kOutOfRange, "file too large");
    if (!HandleAllowsWrite(ctx, req.handle_id(), inode.ino)) RETURN_IF_ERROR(CheckAccess(ctx.db, inode, creds, kMayWrite));
  }

  if (valid & pb::SET_MODE) {
    uint32_t mode = req.mode() & 07777;
    // chmod by a non-member of the file's group clears setgid (no CAP_FSETID).
    if (!root && !creds.InGroup(set_gid ? req.gid() : inode.gid)) mode &= ~S_ISGID;
    inode.mode = (inode.mode & S_IFMT) | mode;
    changed = true;
    // posix_acl_chmod: a stored access ACL follows the new bits.
    if (std::optional<std::string> acl = LoadXattr(ctx.db, inode.ino, common::kAccessAclXattr)) {
      StoreXattr(ctx.db, inode.ino, common::kAccessAclXattr, common::AclWithMode(*acl, inode.mode));
    }
  }
  if (valid & (pb::SET_UID | pb::SET_GID)) {
    // chown_common: a non-directory loses setuid (even by root) and setgid
    // as setattr_should_drop_sgid says, judged before the change.
    if (!inode.IsDir()) {
      if (ShouldDropSgid(inode, creds)) inode.mode &= ~S_ISGID;
      inode.mode &= ~S_ISUID;
    }
    if (set_uid) inode.uid = req.uid();
    if (set_gid) inode.gid = req.gid();
    changed = true;
  }
  if (valid & pb::SET_SIZE) {
    if (req.size() != inode.size) {
      TruncateFile(ctx, inode, req.size());
    } else if (req.handle_id() == 0) {
      // truncate(2) to the same size still updates mtime and ctime on ext4
      inode.mtime_ns = ctx.now_ns;
    }
    // do_truncate: without CAP_FSETID, setuid goes, setgid as above.
    if (!root) DropSuidSgidForWrite(inode, creds);
    changed = true;
  }
  // The kernel judged CAP_FSETID; what goes is judged as for a truncate.
  if ((valid & pb::SET_KILL_SUIDGID) && DropSuidSgidForWrite(inode, creds)) changed = true;
  if (valid & pb::SET_ATIME_NOW) {
    inode.atime_ns = ctx.now_ns;
    changed = true;
  } else if (valid & pb::SET_ATIME) {
    inode.atime_ns = req.atime_ns();
    changed = true;
  }
  if (valid & pb::SET_MTIME_NOW) {
    inode.mtime_ns = ctx.now_ns;
    changed = true;
  } else if (valid & pb::SET_MTIME) {
    inode.mtime_ns = req.mtime_ns();
    changed = true;
  }
  if (changed) inode.ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, inode);
  FillAttr(ctx, inode, result);
  return Status::Ok();
}

}  // namespace dfs::meta::ops
