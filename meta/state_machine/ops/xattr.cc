// Extended attributes with the Linux namespaces and limits: names of 1..255
// bytes (else ERANGE), values up to 64 KiB (else E2BIG), user.* only on
// regular files and directories, trusted.* for root only. Setting
// system.posix_acl_access changes the mode as Linux does (the ACL is stored
// only when it says more than the mode bits); CheckAccess enforces a stored
// one, and a directory's system.posix_acl_default is what new inodes in it
// inherit (make_node.cc).
#include <sys/stat.h>

#include <string_view>

#include "common/posix_acl.h"
#include "common/posix_attr.h"
#include "common/result.h"
#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::StatusCode;

namespace {
constexpr size_t kMaxXattrValueBytes = 65536;
constexpr uint32_t kXattrCreate = 1, kXattrReplace = 2;

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

void DropXattr(OpContext& ctx, uint64_t ino, std::string_view name) {
  Stmt stmt = ctx.db.Prepare("DELETE FROM xattrs WHERE ino=? AND name=?");
  stmt.BindU(1, ino).Bind(2, std::string(name));
  stmt.Run();
}

// set_posix_acl + posix_acl_update_mode: the permission bits follow the ACL
// (group from its mask), setgid goes unless the caller is in the file's
// group or root, and an ACL equal to the mode bits is not kept. No entries:
// the ACL is removed, the mode stays.
Status SetAccessAcl(OpContext& ctx, const Creds& creds, Inode& inode, const std::string& value) {
  common::Result<std::vector<common::AclEntry>> entries = common::ParseAcl(value);
  if (!entries.ok()) return Status(StatusCode::kInvalidArgument, std::string(entries.status().message()));
  if (entries->empty()) {
    DropXattr(ctx, inode.ino, common::kAccessAclXattr);
  } else {
    const common::AclMode acl = common::ModeOfAcl(*entries);
    uint32_t mode = (inode.mode & ~uint32_t{0777}) | acl.perm_bits;
    if (creds.uid != 0 && !creds.InGroup(inode.gid)) mode &= ~static_cast<uint32_t>(S_ISGID);
    inode.mode = mode;
    if (acl.equivalent) {
      DropXattr(ctx, inode.ino, common::kAccessAclXattr);
    } else {
      StoreXattr(ctx.db, inode.ino, common::kAccessAclXattr, value);
    }
  }
  inode.ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, inode);
  return Status::Ok();
}
}  // namespace

Status CheckXattrAccess(Db& db, const Inode& inode, const Creds& creds, std::string_view name, bool write) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return Status(StatusCode::kRange, "bad xattr name (empty or over 255 bytes)");
  }
  if (StartsWith(name, "user.")) {
    if (!inode.IsReg() && !inode.IsDir()) {
      return Status(write ? StatusCode::kNotPermitted : StatusCode::kNoAttribute, "user xattr on special file");
    }
    if (write && (inode.mode & S_ISVTX) && inode.IsDir() && creds.uid != 0 && creds.uid != inode.uid) {
      return Status(StatusCode::kNotPermitted, "sticky directory");
    }
    return CheckAccess(db, inode, creds, write ? kMayWrite : kMayRead);
  }
  if (StartsWith(name, "trusted.")) {
    if (creds.uid != 0) {
      return Status(write ? StatusCode::kNotPermitted : StatusCode::kNoAttribute, "trusted xattrs need root");
    }
    return Status::Ok();
  }
  if (StartsWith(name, "security.")) {
    if (write && creds.uid != 0 && creds.uid != inode.uid) return Status(StatusCode::kNotPermitted, "not owner");
    return Status::Ok();
  }
  if (name == common::kAccessAclXattr || name == common::kDefaultAclXattr) {
    if (name == common::kDefaultAclXattr && !inode.IsDir()) {
      return Status(write ? StatusCode::kPermissionDenied : StatusCode::kNoAttribute, "default ACL on non-dir");
    }
    if (write) return CheckOwner(inode, creds);
    return Status::Ok();
  }
  return Status(StatusCode::kUnimplemented, "unsupported xattr namespace");
}

Status SetXattr(OpContext& ctx, const pb::SetXattrRequest& req, pb::OpResult*) {
  Creds creds = CredsOf(ctx, req.ctx());
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (!inode) return Status(StatusCode::kNotFound, "no such inode");
  if (req.flags() & ~(kXattrCreate | kXattrReplace)) return Status(StatusCode::kInvalidArgument, "bad flags");
  if (req.value().size() > kMaxXattrValueBytes) return Status(StatusCode::kValueTooLarge, "xattr value over 64 KiB");
  RETURN_IF_ERROR(CheckXattrAccess(ctx.db, *inode, creds, req.name(), true));
  if (req.name() == common::kAccessAclXattr) return SetAccessAcl(ctx, creds, *inode, req.value());
  if (req.name() == common::kDefaultAclXattr) {
    // Kept as sent once it parses (new inodes copy it); no entries removes it.
    common::Result<std::vector<common::AclEntry>> entries = common::ParseAcl(req.value());
    if (!entries.ok()) return Status(StatusCode::kInvalidArgument, std::string(entries.status().message()));
    if (entries->empty()) {
      DropXattr(ctx, inode->ino, req.name());
      inode->ctime_ns = ctx.now_ns;
      SaveInode(ctx.db, *inode);
      return Status::Ok();
    }
  }
  const bool exists = HasXattr(ctx.db, inode->ino, req.name());
  if ((req.flags() & kXattrCreate) && exists) return Status(StatusCode::kAlreadyExists, "xattr exists");
  if ((req.flags() & kXattrReplace) && !exists) return Status(StatusCode::kNoAttribute, "no such xattr");
  StoreXattr(ctx.db, inode->ino, req.name(), req.value());
  inode->ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, *inode);
  return Status::Ok();
}

Status RemoveXattr(OpContext& ctx, const pb::RemoveXattrRequest& req, pb::OpResult*) {
  Creds creds = CredsOf(ctx, req.ctx());
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (!inode) return Status(StatusCode::kNotFound, "no such inode");
  if (req.name() == common::kCapabilityXattr && creds.uid != 0 && creds.uid != inode->uid) {
    // The kernel refuses a removal asked for without CAP_SETFCAP, so one
    // from a non-owner is the kernel dropping file capabilities for a write
    // (file_remove_privs), which needs only write access, as on ext4.
    RETURN_IF_ERROR(CheckAccess(ctx.db, *inode, creds, kMayWrite));
  } else {
    RETURN_IF_ERROR(CheckXattrAccess(ctx.db, *inode, creds, req.name(), true));
  }
  Stmt stmt = ctx.db.Prepare("DELETE FROM xattrs WHERE ino=? AND name=?");
  stmt.BindU(1, inode->ino).Bind(2, req.name());
  stmt.Run();
  if (ctx.db.Changes() == 0) return Status(StatusCode::kNoAttribute, "no such xattr");
  inode->ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, *inode);
  return Status::Ok();
}

}  // namespace dfs::meta::ops
