// mknod, create, mkdir, symlink: new inodes under a directory.
#include <fcntl.h>
#include <sys/stat.h>

#include "common/posix_acl.h"
#include "common/result.h"
#include "meta/state_machine/ops/ops.h"

namespace dfs::meta::ops {

using common::StatusCode;

void FillAttr(OpContext& ctx, const Inode& inode, pb::OpResult* result) {
  ToAttr(inode, inode.IsReg() ? StoredBlocks(ctx.db, inode.ino) : 0, result->mutable_attr());
}

void FillParentAttr(const Inode& dir, pb::Attr* out) { ToAttr(dir, 0, out); }

namespace {

// The checks every creation shares, in the kernel's order: name, parent
// lookup (search permission), existing name (EEXIST), write permission.
common::Result<Inode> PrepareParent(OpContext& ctx, const Creds& creds, uint64_t parent, const std::string& name,
                                    std::optional<Dentry>* existing) {
  RETURN_IF_ERROR(ValidateName(name));
  ASSIGN_OR_RETURN(Inode dir, LoadDir(ctx.db, parent, creds, kMayExec));
  *existing = LookupDentry(ctx.db, parent, name);
  if (existing->has_value()) return Status(StatusCode::kAlreadyExists, "name exists");
  RETURN_IF_ERROR(CheckAccess(ctx.db, dir, creds, kMayWrite | kMayExec));
  return dir;
}

// Builds and stores a new inode named `name` in `dir`; updates the parent.
Inode MakeInode(OpContext& ctx, const Creds& creds, Inode& dir, const std::string& name, uint32_t mode,
                uint64_t rdev) {
  Inode inode;
  inode.ino = TakeCounter(ctx.db, "next_ino");
  inode.mode = mode;
  inode.uid = creds.uid;
  inode.gid = creds.gid;
  // setgid directories: new entries take the directory's group; new
  // subdirectories inherit the bit (inode_init_owner).
  if (dir.mode & S_ISGID) {
    inode.gid = dir.gid;
    if (S_ISDIR(mode)) inode.mode |= S_ISGID;
  } else if (!S_ISDIR(mode) && (mode & S_ISGID) && creds.uid != 0 && !creds.InGroup(inode.gid)) {
    inode.mode &= ~S_ISGID;
  }
  if (!S_ISDIR(mode) && (inode.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && creds.uid != 0 &&
      !creds.InGroup(inode.gid)) {
    inode.mode &= ~S_ISGID;
  }
  inode.rdev = rdev;
  inode.atime_ns = inode.mtime_ns = inode.ctime_ns = ctx.now_ns;
  inode.replicas = dir.replicas;
  if (S_ISDIR(mode)) {
    inode.nlink = 2;
    inode.size = kDirSizeBytes;
    inode.parent = dir.ino;
    ++dir.nlink;
  } else {
    inode.nlink = 1;
  }
  InsertInode(ctx.db, inode);
  InsertDentry(ctx.db, dir, name, inode.ino, mode & S_IFMT);
  dir.mtime_ns = dir.ctime_ns = ctx.now_ns;
  SaveInode(ctx.db, dir);
  return inode;
}

// The permission bits a new inode of `type_and_mode` gets in `dir`, and the
// ACLs it inherits from `dir`'s default ACL (common::InheritAcl), which then
// replaces the umask. Entries from before Op.posix_acls apply the umask.
common::InheritedAcl NewInodeMode(OpContext& ctx, const Inode& dir, uint32_t type_and_mode, uint32_t umask) {
  if (!ctx.op.posix_acls()) return {type_and_mode & ~umask, "", ""};
  std::optional<std::string> dir_default = LoadXattr(ctx.db, dir.ino, common::kDefaultAclXattr);
  return common::InheritAcl(dir_default.value_or(""), type_and_mode, umask);
}

void StoreInheritedAcls(OpContext& ctx, const Inode& inode, const common::InheritedAcl& acl, pb::OpResult* result) {
  if (!acl.access.empty()) {
    StoreXattr(ctx.db, inode.ino, common::kAccessAclXattr, acl.access);
    result->set_inherited_acl(true);
  }
  if (!acl.default_acl.empty()) StoreXattr(ctx.db, inode.ino, common::kDefaultAclXattr, acl.default_acl);
}

uint64_t NewHandle(OpContext& ctx, uint64_t ino, uint32_t flags) {
  if (ctx.op.client_id() == 0) return 0;
  uint64_t handle = TakeCounter(ctx.db, "next_handle");
  Stmt stmt = ctx.db.Prepare("INSERT INTO handles(handle_id, client_id, ino, flags) VALUES(?,?,?,?)");
  stmt.BindU(1, handle).BindU(2, ctx.op.client_id()).BindU(3, ino).Bind(4, int64_t{flags});
  stmt.Run();
  return handle;
}

}  // namespace

Status Mknod(OpContext& ctx, const pb::MknodRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  uint32_t type = req.mode() & S_IFMT;
  if (type == 0) type = S_IFREG;
  std::optional<Dentry> existing;
  ASSIGN_OR_RETURN(Inode dir, PrepareParent(ctx, creds, req.parent(), req.name(), &existing));
  if (type == S_IFDIR) return Status(StatusCode::kNotPermitted, "mknod of a directory");
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK) {
    return Status(StatusCode::kInvalidArgument, "bad file type");
  }
  if ((type == S_IFCHR || type == S_IFBLK) && creds.uid != 0) {
    return Status(StatusCode::kNotPermitted, "device nodes need root");
  }
  const common::InheritedAcl acl = NewInodeMode(ctx, dir, type | (req.mode() & 07777), req.umask());
  uint64_t rdev = (type == S_IFCHR || type == S_IFBLK) ? req.rdev() : 0;
  Inode inode = MakeInode(ctx, creds, dir, req.name(), acl.mode, rdev);
  StoreInheritedAcls(ctx, inode, acl, result);
  FillAttr(ctx, inode, result);
  FillParentAttr(dir, result->mutable_parent_attr());
  return Status::Ok();
}

Status Create(OpContext& ctx, const pb::CreateRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  RETURN_IF_ERROR(CheckSession(ctx));
  RETURN_IF_ERROR(ValidateName(req.name()));
  ASSIGN_OR_RETURN(Inode dir, LoadDir(ctx.db, req.parent(), creds, kMayExec));
  std::optional<Dentry> existing = LookupDentry(ctx.db, req.parent(), req.name());
  if (existing) {
    // open(O_CREAT) of an existing name: EEXIST with O_EXCL, else an open.
    if (req.flags() & O_EXCL) return Status(StatusCode::kAlreadyExists, "name exists");
    if (S_ISDIR(existing->type)) return Status(StatusCode::kIsADirectory, "is a directory");
    pb::OpenRequest open;
    *open.mutable_ctx() = req.ctx();
    open.set_ino(existing->ino);
    open.set_flags(req.flags());
    RETURN_IF_ERROR(Open(ctx, open, result));
    FillParentAttr(dir, result->mutable_parent_attr());
    return Status::Ok();
  }
  RETURN_IF_ERROR(CheckAccess(ctx.db, dir, creds, kMayWrite | kMayExec));
  const common::InheritedAcl acl = NewInodeMode(ctx, dir, S_IFREG | (req.mode() & 07777), req.umask());
  Inode inode = MakeInode(ctx, creds, dir, req.name(), acl.mode, 0);
  StoreInheritedAcls(ctx, inode, acl, result);
  FillAttr(ctx, inode, result);
  FillParentAttr(dir, result->mutable_parent_attr());
  uint64_t handle = NewHandle(ctx, inode.ino, req.flags());
  result->set_handle_id(handle);
  // The first write lease rides along (one commit instead of two for a
  // small file). Without live chunkservers there is none; the client's
  // LeaseChunk then reports why.
  if (req.lease_first_chunk() && handle != 0 && (OpenAccessMask(req.flags()) & kMayWrite) &&
      !ctx.op.placement().empty()) {
    pb::ChunkLease lease;
    if (GrantLease(ctx, inode, handle, 0, ctx.op.lease_expires_unix_ms(), &lease).ok()) {
      *result->mutable_lease() = std::move(lease);
    }
  }
  return Status::Ok();
}

Status Mkdir(OpContext& ctx, const pb::MkdirRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  std::optional<Dentry> existing;
  ASSIGN_OR_RETURN(Inode dir, PrepareParent(ctx, creds, req.parent(), req.name(), &existing));
  if (dir.nlink >= kMaxLinks) return Status(StatusCode::kTooManyLinks, "too many subdirectories");
  const common::InheritedAcl acl = NewInodeMode(ctx, dir, S_IFDIR | (req.mode() & 07777), req.umask());
  Inode inode = MakeInode(ctx, creds, dir, req.name(), acl.mode, 0);
  StoreInheritedAcls(ctx, inode, acl, result);
  FillAttr(ctx, inode, result);
  FillParentAttr(dir, result->mutable_parent_attr());
  return Status::Ok();
}

Status Symlink(OpContext& ctx, const pb::SymlinkRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  if (req.target().empty()) return Status(StatusCode::kNotFound, "empty symlink target");
  if (req.target().size() > kMaxSymlinkBytes) return Status(StatusCode::kNameTooLong, "symlink target too long");
  std::optional<Dentry> existing;
  ASSIGN_OR_RETURN(Inode dir, PrepareParent(ctx, creds, req.parent(), req.name(), &existing));
  Inode inode;
  {
    inode = MakeInode(ctx, creds, dir, req.name(), S_IFLNK | 0777, 0);
    inode.target = req.target();
    inode.size = req.target().size();
    SaveInode(ctx.db, inode);
  }
  FillAttr(ctx, inode, result);
  FillParentAttr(dir, result->mutable_parent_attr());
  return Status::Ok();
}

uint32_t OpenAccessMask(uint32_t flags) {
  uint32_t mask = 0;
  switch (flags & O_ACCMODE) {
    case O_RDONLY: mask = kMayRead; break;
    case O_WRONLY: mask = kMayWrite; break;
    default: mask = kMayRead | kMayWrite; break;
  }
  if (flags & O_TRUNC) mask |= kMayWrite;
  return mask;
}

Status Open(OpContext& ctx, const pb::OpenRequest& req, pb::OpResult* result) {
  Creds creds = CredsOf(ctx, req.ctx());
  RETURN_IF_ERROR(CheckSession(ctx));
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (!inode) return Status(StatusCode::kNotFound, "no such inode");
  uint32_t mask = OpenAccessMask(req.flags());
  if (inode->IsDir() && (mask & kMayWrite)) return Status(StatusCode::kIsADirectory, "is a directory");
  RETURN_IF_ERROR(CheckAccess(ctx.db, *inode, creds, mask));
  if ((req.flags() & O_TRUNC) && inode->IsReg() && inode->size != 0) {
    TruncateFile(ctx, *inode, 0);
    SaveInode(ctx.db, *inode);
  } else if ((req.flags() & O_TRUNC) && inode->IsReg()) {
    inode->mtime_ns = inode->ctime_ns = ctx.now_ns;
    SaveInode(ctx.db, *inode);
  }
  FillAttr(ctx, *inode, result);
  result->set_handle_id(NewHandle(ctx, inode->ino, req.flags()));
  return Status::Ok();
}

Status Release(OpContext& ctx, const pb::ReleaseRequest& req, pb::OpResult*) {
  for (uint64_t chunk_id : req.unwritten_chunk_ids()) ForgetUnwrittenChunk(ctx, req.ino(), req.handle_id(), chunk_id);
  {
    Stmt stmt = ctx.db.Prepare("DELETE FROM handles WHERE handle_id=? AND client_id=?");
    stmt.BindU(1, req.handle_id()).BindU(2, ctx.op.client_id());
    stmt.Run();
  }
  {
    // The handle's write leases end with it, so the next writer need not wait
    // for their expiry. The rows stay (expired) so their versions are never
    // handed out again: a chunkserver may hold a begun, uncommitted copy.
    Stmt stmt = ctx.db.Prepare("UPDATE leases SET expires_ms=0 WHERE handle_id=? AND client_id=?");
    stmt.BindU(1, req.handle_id()).BindU(2, ctx.op.client_id());
    stmt.Run();
  }
  std::optional<Inode> inode = LoadInode(ctx.db, req.ino());
  if (inode && inode->nlink == 0 && !HasHandles(ctx.db, inode->ino)) FreeInode(ctx, *inode);
  return Status::Ok();
}

}  // namespace dfs::meta::ops
